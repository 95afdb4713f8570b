#!/bin/sh
# Run by the official nginx image's /docker-entrypoint.sh (as root) before
# 20-envsubst-on-templates.sh renders nginx.conf and before nginx starts.
# NGINX refuses to start if the directory of a configured log file is missing,
# and the shared `logs` volume may be fresh, so create it here.
set -eu

: "${LOG_DIR:?LOG_DIR must be set (compose sets /var/log/stack)}"

mkdir -p "$LOG_DIR/nginx"
# Alloy tails these files from another container; make them world-readable.
chmod 0755 "$LOG_DIR/nginx"
echo "$0: ensured $LOG_DIR/nginx exists"
