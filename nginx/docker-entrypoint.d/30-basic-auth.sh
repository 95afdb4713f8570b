#!/bin/sh
# Checks the htpasswd file of HTTP basic authentication before NGINX starts (docs/edge.md "Basic
# authentication"). Run by the nginx image's entrypoint and by ./stack up. Authentication
# is off when BASIC_AUTH_FILE is "off" or unset; otherwise NGINX reads BASIC_AUTH_USER_FILE,
# which must hold "user:hash" lines with hashes NGINX can verify and that are not plain
# text ({PLAIN}) or unsalted ({SHA}, 13-character DES crypt). Prints one line and exits 1
# on anything else; never prints a hash.
set -eu

if [ "${BASIC_AUTH_FILE:-off}" = off ]; then
    exit 0
fi
file="${BASIC_AUTH_USER_FILE:?BASIC_AUTH_USER_FILE must be set when BASIC_AUTH_FILE is}"

fail() {
    echo "$0: BASIC_AUTH_FILE $file: $*" >&2
    exit 1
}

[ -f "$file" ] || fail "is not a file (create it with: openssl passwd -apr1, see docs/edge.md)"
[ -r "$file" ] || fail "is not readable"
n=0
users=0
while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=$(printf '%s' "$line" | tr -d '\r')
    case "$line" in
        "" | "#"*) continue ;;
    esac
    user=${line%%:*}
    hash=${line#*:}
    if [ "$user" = "$line" ] || [ -z "$user" ]; then
        fail "line $n is not user:hash"
    fi
    case "$hash" in
        '$apr1$'?* | '$1$'?* | '$2a$'?* | '$2b$'?* | '$2y$'?* | '$5$'?* | '$6$'?* | '{SSHA}'?*) ;;
        *) fail "line $n (user $user) does not hold a salted password hash (\$apr1\$, \$5\$, \$6\$, bcrypt or {SSHA})" ;;
    esac
    users=$((users + 1))
done < "$file"
[ "$users" -gt 0 ] || fail "holds no user"
echo "$0: basic authentication on, $users user(s) in $file"
