"""The NGINX ./stack runs (Debian's package, installed by ./stack test) carries the security
fixes docs/edge.md says it does: that version or newer, its changelog naming every CVE of
the table in "NGINX versions"."""
from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

from tests.support.tools import REPO_ROOT, require_tool

CHANGELOG = Path("/usr/share/doc/nginx/changelog.Debian.gz")
EDGE = (REPO_ROOT / "docs" / "edge.md").read_text()
SECTION = EDGE[EDGE.index("## NGINX versions"):EDGE.index("## Basic authentication")]
DOCUMENTED = re.search(r"bookworm's\s+`([^`]+)`", SECTION).group(1)
TABLE = [line for line in SECTION.splitlines() if line.startswith("| `+deb12u")]


def test_the_installed_package_is_the_documented_version_or_newer():
    require_tool("nginx")
    installed = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "nginx"], capture_output=True,
                               text=True, check=True).stdout
    newer = subprocess.run(["dpkg", "--compare-versions", installed, "ge", DOCUMENTED])
    assert newer.returncode == 0, f"nginx {installed} is older than {DOCUMENTED} (docs/edge.md)"


def test_its_changelog_names_every_backport_the_docs_list():
    require_tool("nginx")
    assert CHANGELOG.exists(), f"{CHANGELOG} is missing: Debian's nginx package installs it"
    changelog = gzip.decompress(CHANGELOG.read_bytes()).decode()
    listed = {cve for row in TABLE for cve in re.findall(r"CVE-\d{4}-\d+", row)}
    assert len(listed) >= 19, TABLE  # the table was read
    assert sorted(cve for cve in listed if cve not in changelog) == []
    for row in TABLE:  # each in the version the table says
        version = re.match(r"\| `(\+deb12u\d+)`", row).group(1)
        entry = changelog.split(f"nginx (1.22.1-9{version})", 1)[1].split("\nnginx (", 1)[0]
        missing = [c for c in re.findall(r"CVE-\d{4}-\d+", row) if c not in entry]
        assert missing == [], (version, missing)
