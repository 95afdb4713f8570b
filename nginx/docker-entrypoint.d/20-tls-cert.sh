#!/bin/sh
# Makes sure NGINX has a usable TLS certificate and private key at TLS_CERT / TLS_KEY.
# Run by the nginx image's entrypoint before NGINX starts, and by ./stack up.
#
# It never writes over a file that exists:
# - neither file exists: generate a self-signed pair for localhost there (only when
#   TLS_GENERATE is on, the default; ./stack turns it off when the user named the files,
#   so a pair is generated only into the default location);
# - both exist: check that TLS_CERT is a PEM certificate, TLS_KEY an unencrypted PEM
#   private key, and that they belong together; write nothing;
# - anything else (one of the pair, not a certificate or key, a mismatch): refuse with one
#   line naming the file, exit 1.
# OPENSSL names the openssl binary (default: the one on PATH).
set -eu
: "${TLS_CERT:?TLS_CERT must be set}"
: "${TLS_KEY:?TLS_KEY must be set}"
OPENSSL="${OPENSSL:-openssl}"

refuse() { echo "$*; nothing was written" >&2; exit 1; }
exists() { [ -e "$1" ] || [ -L "$1" ]; }  # a dangling symlink counts: never write through it

if ! command -v "$OPENSSL" >/dev/null 2>&1; then
    echo "openssl is needed to check or generate the TLS certificate (not found: $OPENSSL)" >&2
    exit 1
fi

if exists "$TLS_CERT" && exists "$TLS_KEY"; then
    for f in "$TLS_CERT" "$TLS_KEY"; do
        name=TLS_CERT; [ "$f" = "$TLS_CERT" ] || name=TLS_KEY
        [ -f "$f" ] || refuse "$name=$f is not a regular file"
        [ -r "$f" ] || refuse "$name=$f cannot be read (permissions)"
    done
    cert_pub=$("$OPENSSL" x509 -in "$TLS_CERT" -noout -pubkey 2>/dev/null) ||
        refuse "TLS_CERT=$TLS_CERT is not a PEM certificate"
    # -passin pass: makes an encrypted key fail instead of prompting (NGINX cannot use it)
    key_pub=$("$OPENSSL" pkey -in "$TLS_KEY" -passin pass: -pubout 2>/dev/null) ||
        refuse "TLS_KEY=$TLS_KEY is not an unencrypted PEM private key"
    [ "$cert_pub" = "$key_pub" ] ||
        refuse "TLS_KEY=$TLS_KEY is not the private key of TLS_CERT=$TLS_CERT (their public keys differ)"
    exit 0
fi
if exists "$TLS_CERT"; then
    refuse "TLS_KEY=$TLS_KEY does not exist but TLS_CERT=$TLS_CERT does: give both files, or neither for a self-signed pair"
fi
if exists "$TLS_KEY"; then
    refuse "TLS_CERT=$TLS_CERT does not exist but TLS_KEY=$TLS_KEY does: give both files, or neither for a self-signed pair"
fi
case "${TLS_GENERATE:-on}" in
    on) ;;
    *) refuse "TLS_CERT=$TLS_CERT does not exist (a self-signed pair is generated only at the default location, when TLS_CERT and TLS_KEY are not set)" ;;
esac

# Neither exists: generate beside the targets, then link into place. link(2) fails when the
# target appeared meanwhile, so even a concurrent writer's file is never replaced.
mkdir -p "$(dirname "$TLS_CERT")" "$(dirname "$TLS_KEY")"
umask 077
tmp_key="$TLS_KEY.tmp.$$"
tmp_cert="$TLS_CERT.tmp.$$"
trap 'rm -f "$tmp_key" "$tmp_cert"' EXIT
"$OPENSSL" req -x509 -newkey rsa:2048 -sha256 -nodes -days "${TLS_SELF_SIGNED_DAYS:-365}" \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$tmp_key" -out "$tmp_cert" 2>/dev/null ||
    refuse "openssl could not generate a self-signed certificate"
chmod 0644 "$tmp_cert"
ln "$tmp_key" "$TLS_KEY" 2>/dev/null || refuse "TLS_KEY=$TLS_KEY appeared while generating; run again"
if ! ln "$tmp_cert" "$TLS_CERT" 2>/dev/null; then
    rm -f "$TLS_KEY"  # the key we just linked; the certificate is someone else's
    refuse "TLS_CERT=$TLS_CERT appeared while generating; run again"
fi
echo "generated a self-signed certificate for localhost at $TLS_CERT"
