"""Reading the project's config files as text: Loki's ${VAR:-default} expansion, and the
Alloy block the Helm chart copies."""
from __future__ import annotations

import re

ENV_REF = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand_env(text: str, env: dict[str, str]) -> str:
    """Mimic Loki's -config.expand-env: ${VAR} / ${VAR:-default}."""

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        return env.get(name) or (default if default is not None else "")

    return ENV_REF.sub(sub, text)


def shared_block(src: str) -> str:
    """The block the Helm chart copies (deploy/helm/pc-builder/templates/_helpers.tpl)."""
    match = re.search(r"(?s)// >>> pc-builder shared stages.*// <<< pc-builder shared stages[^\n]*", src)
    assert match, "config.alloy has no shared-stages block"
    return match.group(0)
