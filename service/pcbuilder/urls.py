"""Where the app lives under NGINX: every page, API and static URL starts with URL_PREFIX
(nginx/nginx.conf.template routes the same prefixes)."""
URL_PREFIX = "/pc-builder-app"
API_PREFIX = URL_PREFIX + "/api"
