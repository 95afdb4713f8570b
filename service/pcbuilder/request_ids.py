"""Request ids: the one format every layer accepts (NGINX validates with the same pattern)."""
import re
import uuid

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{8,128}")


def is_valid(value) -> bool:
    return isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex
