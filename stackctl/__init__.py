"""The local runner behind ``./stack`` (see README "./stack")."""
import sys
from pathlib import Path

# stackctl shares a few small modules with the app (request ids, health check, LOKI_URL
# forms); they live in the app's package, under service/.
_SERVICE = str(Path(__file__).resolve().parent.parent / "service")
if _SERVICE not in sys.path:
    sys.path.insert(0, _SERVICE)
