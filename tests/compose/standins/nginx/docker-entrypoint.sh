#!/bin/sh
# Stand-in for the official NGINX image's /docker-entrypoint.sh (same behaviour where the
# project relies on it): when the command is nginx, every /docker-entrypoint.d/ file runs
# in version order, *.envsh sourced (so what they export reaches the templates) and
# executable *.sh run; a failing one stops the container.
set -e
if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    for f in $(find /docker-entrypoint.d/ -follow -type f -print | sort -V); do
        case "$f" in
            *.envsh) if [ -x "$f" ]; then echo "$0: Sourcing $f"; . "$f"; else echo "$0: Ignoring $f, not executable"; fi ;;
            *.sh) if [ -x "$f" ]; then echo "$0: Launching $f"; "$f"; else echo "$0: Ignoring $f, not executable"; fi ;;
            *) echo "$0: Ignoring $f" ;;
        esac
    done
    echo "$0: Configuration complete; ready for start up"
fi
exec "$@"
