"""Rendering deploy/helm/pc-builder with the Helm that ./stack test builds (.tools/bin)."""
from __future__ import annotations

import yaml

from stackctl import k8s
from tests.support.tools import REPO_ROOT, require_tool

PRODUCTION = REPO_ROOT / "deploy" / "helm" / "pc-builder" / "ci" / "production-values.yaml"


def render(*values_files, extra: list[str] = ()) -> list[dict]:
    require_tool("helm")
    text = k8s.template(list(values_files), extra=list(extra))
    return [doc for doc in yaml.safe_load_all(text) if doc]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name_suffix: str) -> dict:
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"{kind} *{name_suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]
