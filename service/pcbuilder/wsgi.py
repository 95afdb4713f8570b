"""WSGI entry point for uWSGI (``module = pcbuilder.wsgi:app``)."""
from . import create_app

app = create_app()
