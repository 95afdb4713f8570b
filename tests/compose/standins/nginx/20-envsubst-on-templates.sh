#!/bin/sh
# Stand-in for the official image's 20-envsubst-on-templates.sh: every
# $NGINX_ENVSUBST_TEMPLATE_DIR/*.template is rendered with envsubst, which replaces only
# variables defined in the environment, into NGINX_ENVSUBST_OUTPUT_DIR.
set -e
template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
[ -d "$template_dir" ] || exit 0
defined=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
    relative="${template#"$template_dir/"}"
    output="$output_dir/${relative%"$suffix"}"
    mkdir -p "$(dirname "$output")"
    echo "$0: Running envsubst on $template to $output"
    envsubst "$defined" < "$template" > "$output"
done
