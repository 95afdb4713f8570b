"""``./stack trace <request-id>``: the twelve steps of one request, from its log lines.

- ``steps.py``: the twelve steps, defined once (number, name, layer, the field that times it);
- ``sources.py``: the request's lines, from Loki or the local files (ids as pasted, ``--last``);
- ``lines.py``: which of those lines each step reads;
- ``derivation.py``: one function per step (``step_NN_<key>``), and the whole trace;
  ``hops.py`` the durations between steps and the order check, ``detail.py`` the app's fine events;
- ``waterfall.py`` (the default view), ``table.py`` (``--table``); ``--json`` is the trace as derived;
- ``logql.py``: the same steps in LogQL, one function per step with the same name, for the
  request-trace dashboard (``stackctl/dashboards.py`` writes it).
"""
from .sources import TraceError, collect, recent
from .derivation import derive

__all__ = ["TraceError", "collect", "derive", "recent"]
