#!/bin/sh
# Makes sure NGINX has a TLS certificate: when none exists at TLS_CERT/TLS_KEY (none was
# mounted), generate a self-signed one for localhost. Run by the nginx image's entrypoint
# before NGINX starts, and by ./stack up; it never replaces an existing certificate.
set -eu
: "${TLS_CERT:?TLS_CERT must be set}"
: "${TLS_KEY:?TLS_KEY must be set}"
if [ -s "$TLS_CERT" ] && [ -s "$TLS_KEY" ]; then
    exit 0
fi
mkdir -p "$(dirname "$TLS_CERT")" "$(dirname "$TLS_KEY")"
umask 077
openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days "${TLS_SELF_SIGNED_DAYS:-365}" \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null
chmod 0644 "$TLS_CERT"
echo "$0: generated a self-signed certificate for localhost at $TLS_CERT"
