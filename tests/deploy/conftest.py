"""Rendered Kubernetes manifests of deploy/helm/pc-builder, shared by tests/deploy.

Rendering needs Helm, which ./stack test builds into .tools/bin (stackctl/tools.py).
"""
from __future__ import annotations

import pytest

from tests.support.chart import PRODUCTION, render


@pytest.fixture(scope="session")
def default_docs() -> list[dict]:
    return render()


@pytest.fixture(scope="session")
def production_docs() -> list[dict]:
    return render(PRODUCTION)


@pytest.fixture(scope="session", params=["default", "production"])
def docs(request, default_docs, production_docs) -> list[dict]:
    return default_docs if request.param == "default" else production_docs
