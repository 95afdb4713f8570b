"""``./stack``: runs the PC-builder stack (NGINX + uWSGI instances) as local processes."""
