"""The pinned images (deploy/images.yaml): what the version test checks every file against
and what the compose smoke test's stand-ins are tagged as."""
from __future__ import annotations

import yaml

from tests.support.tools import REPO_ROOT

IMAGES_FILE = REPO_ROOT / "deploy" / "images.yaml"
_DATA = yaml.safe_load(IMAGES_FILE.read_text())
#: name -> "repository:tag", e.g. "nginx" -> "nginx:1.30.7-alpine"
PINNED: dict[str, str] = _DATA["images"]
#: an image this project builds -> the name of the pinned image whose tag it carries
BUILT: dict[str, str] = _DATA.get("built") or {}


def split(ref: str) -> tuple[str, str]:
    """("nginx", "1.30.7-alpine") for nginx:1.30.7-alpine or docker.io/library/nginx:1.30.7-alpine."""
    repository, colon, tag = ref.rpartition(":")
    if not colon or "/" in tag:  # no tag (a registry's port is not one)
        repository, tag = ref, ""
    for prefix in ("docker.io/library/", "docker.io/"):
        repository = repository.removeprefix(prefix)
    return repository, tag


def qualified(ref: str) -> str:
    """The name a pull stores: docker.io/library/nginx:…, docker.io/grafana/loki:…"""
    repository, tag = split(ref)
    return f"docker.io/{'' if '/' in repository else 'library/'}{repository}:{tag}"


def tag_of(name: str) -> str:
    return split(PINNED[name])[1]
