#!/bin/sh
# render-config.sh TEMPLATE OUTPUT: copies TEMPLATE to OUTPUT with each ${NAME} replaced by
# the environment's $NAME, like stackctl/render.py's substitute() does for ./stack. A name
# the environment lacks is an error (exit 1, naming it), never an empty value. POSIX sh and
# awk only: the Prometheus and Alertmanager images (busybox) run it before their program.
set -eu
[ $# -eq 2 ] || { echo "usage: render-config.sh TEMPLATE OUTPUT" >&2; exit 2; }
awk '
{
    line = $0; out = ""
    while (match(line, /\$\{[A-Z][A-Z0-9_]*\}/)) {
        name = substr(line, RSTART + 2, RLENGTH - 3)
        if (!(name in ENVIRON)) { printf "render-config.sh: %s needs a value for %s\n", FILENAME, name > "/dev/stderr"; failed = 1; exit 1 }
        out = out substr(line, 1, RSTART - 1) ENVIRON[name]
        line = substr(line, RSTART + RLENGTH)
    }
    print out line
}
END { if (failed) exit 1 }' "$1" > "$2.tmp"
mv "$2.tmp" "$2"
