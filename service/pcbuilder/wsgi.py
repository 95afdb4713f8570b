"""WSGI entry point for uWSGI (``module = pcbuilder.wsgi:app``)."""
import gc

from . import create_app

app = create_app()
# uWSGI's master loads this module once and forks the workers: move everything loaded so
# far (modules, the app, templates) out of the garbage collector's sight. Full collections
# in the workers then walk only what requests allocate (shorter GC pauses, fewer
# copy-on-write page copies); measured in bench/README.md.
gc.freeze()
