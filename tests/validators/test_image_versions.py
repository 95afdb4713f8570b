"""deploy/images.yaml is the one place that pins images: every file that names an image
agrees with it, and none names an image it does not pin.

Where images are named: the compose files (`image:`), the Dockerfiles and the stand-ins'
Containerfiles (`FROM`, `ARG *_IMAGE=`), the chart's values and the official charts'
values (`image: {repository, tag}`), the compose smoke test's stand-ins (tests/compose/engine.py),
and any text of the repository that writes a pinned repository with a tag (docs, comments).
Adding an image is one line in deploy/images.yaml; a file naming one that is not there fails
here with the line to add.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.compose.engine import STANDIN_IMAGES
from tests.support.images import BUILT, IMAGES_FILE, PINNED, split, tag_of
from tests.support.tools import REPO_ROOT

PINNED_TAGS = dict(split(ref) for ref in PINNED.values())  # repository -> tag
BUILT_TAGS = {image: tag_of(base) for image, base in BUILT.items()}
# images of this project that carry no pinned tag: the app (appVersion, `local`) and
# whatever a test run tags as its own
OWN = re.compile(r"^(localhost/)?pcbuilder-[\w-]+$")
# text files that lock another registry's packages, or (this one) name wrong images on purpose
NOT_SCANNED = {"tests/logql/package-lock.json", "tests/validators/test_image_versions.py"}
# past measurements and recorded responses
NOT_SCANNED_UNDER = ("bench/results/", "tests/logql/fixtures/")


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z", "--", *patterns], cwd=REPO_ROOT, check=True,
                         capture_output=True).stdout.decode()
    return [REPO_ROOT / name for name in out.split("\0") if name]


def problem(ref: str, where: str) -> str | None:
    """Why ``ref`` (named in ``where``) disagrees with deploy/images.yaml, or None."""
    repository, tag = split(ref)
    if repository in BUILT_TAGS:
        want = BUILT_TAGS[repository]
        return None if tag == want else f"{where}: {ref}, but {repository} carries {want} (built FROM {BUILT[repository]})"
    if OWN.match(repository):
        return None
    if repository not in PINNED_TAGS:
        return (f"{where}: {ref} is not pinned in {IMAGES_FILE.relative_to(REPO_ROOT)}:"
                f" add the line `  <name>: {ref}` under images:")
    want = PINNED_TAGS[repository]
    return None if tag == want else f"{where}: {ref}, but deploy/images.yaml pins {repository}:{want}"


class _ComposeLoader(yaml.SafeLoader):
    """YAML with compose's merge tags (``!reset``, ``!override``) read as plain values."""


_ComposeLoader.add_multi_constructor("!", lambda loader, _tag, node: (
    loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
    else loader.construct_scalar(node)))


def compose_images() -> list[tuple[str, str]]:
    found = []
    for path in tracked("docker-compose*.yml", "tests/compose/*.yml"):
        for name, service in (yaml.load(path.read_text(), _ComposeLoader).get("services") or {}).items():
            if "image" in service:
                found.append((service["image"].split("${")[0].rstrip(":"), f"{path.name} {name}"))
    return found


FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.I | re.M)
ARG_IMAGE = re.compile(r"^\s*ARG\s+(\w+_IMAGE)=(\S+)", re.M)


def dockerfile_images() -> list[tuple[str, str]]:
    found = []
    for path in tracked("Dockerfile", "**/Dockerfile", "*.Containerfile", "**/*.Containerfile"):
        text, rel = path.read_text(), str(path.relative_to(REPO_ROOT))
        stages = set(re.findall(r"^\s*FROM\s+\S+\s+AS\s+(\S+)", text, re.I | re.M))
        for ref in FROM.findall(text):
            if "$" not in ref and ref not in stages and ref != "scratch":
                found.append((ref, f"{rel} FROM"))
        for name, ref in ARG_IMAGE.findall(text):
            found.append((ref, f"{rel} ARG {name}"))
    return found


def _image_dicts(tree, path=()):
    if isinstance(tree, dict):
        if isinstance(tree.get("repository"), str) and "tag" in tree:
            yield "/".join(path), tree
        for key, value in tree.items():
            yield from _image_dicts(value, (*path, str(key)))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _image_dicts(value, (*path, str(i)))


def values_images() -> list[tuple[str, str]]:
    found = []
    for path in tracked("deploy/helm/*/values.yaml", "deploy/values/*.yaml"):
        rel = str(path.relative_to(REPO_ROOT))
        for key, image in _image_dicts(yaml.safe_load(path.read_text())):
            if image["tag"] in ("", None):  # the chart's appVersion (the app image)
                continue
            found.append((f"{image['repository']}:{image['tag']}", f"{rel} {key}"))
    return found


def text_mentions() -> list[tuple[str, str]]:
    """repository:tag of a pinned (or built) repository written anywhere in the text."""
    names = sorted(set(PINNED_TAGS) | set(BUILT_TAGS), key=len, reverse=True)
    mention = re.compile(r"(?<![\w./@-])((?:docker\.io/(?:library/)?)?(?:"
                         + "|".join(map(re.escape, names)) + r"):v?\d+\.\d[\w.-]*\w)")
    found = []
    for path in tracked():
        rel = str(path.relative_to(REPO_ROOT))
        if path == IMAGES_FILE or rel in NOT_SCANNED or rel.startswith(NOT_SCANNED_UNDER) or path.is_symlink():
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, IsADirectoryError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            found += [(ref, f"{rel}:{n}") for ref in mention.findall(line)]
    return found


def test_the_pins_file_is_well_formed():
    assert PINNED, "deploy/images.yaml pins nothing"
    for name, ref in PINNED.items():
        repository, tag = split(ref)
        assert re.fullmatch(r"[a-z0-9]+(?:[._/-][a-z0-9]+)*", repository), (name, ref)
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?[\w.-]*", tag), f"{name}: {ref} is not pinned to a version"
    assert len(PINNED_TAGS) == len(PINNED), "one repository pinned twice"
    assert set(BUILT.values()) <= set(PINNED), BUILT


@pytest.mark.parametrize("where", ["compose", "dockerfiles", "values", "text"])
def test_every_named_image_is_the_pinned_one(where):
    found = {"compose": compose_images, "dockerfiles": dockerfile_images,
             "values": values_images, "text": text_mentions}[where]()
    assert found, f"no image found in the {where}: the scan is broken"
    assert [p for ref, place in found if (p := problem(ref, place))] == []


def test_every_pinned_image_is_used_and_every_base_image_has_a_stand_in():
    used = {split(ref)[0] for ref, _ in compose_images() + dockerfile_images() + values_images()}
    assert set(PINNED_TAGS) <= used, set(PINNED_TAGS) - used
    # what the project's Dockerfiles build FROM must exist as a stand-in for the smoke test,
    # tagged exactly so (the stand-ins' names come from deploy/images.yaml)
    standins = {split(name) for _, names in STANDIN_IMAGES.values() for name in names}
    bases = {split(ref) for ref, place in dockerfile_images() if not place.startswith("tests/")}
    assert bases <= standins, bases - standins


def test_grafanas_npm_packages_are_the_grafana_image_version():
    """The dashboard tests shape data with @grafana/data: the version Grafana runs."""
    package = json.loads((REPO_ROOT / "tests/logql/package.json").read_text())["dependencies"]
    assert package["@grafana/data"] == package["@grafana/schema"] == tag_of("grafana")


def test_a_stray_or_unpinned_image_is_reported():
    assert problem("nginx:1.27.5-alpine", "x") == \
        f"x: nginx:1.27.5-alpine, but deploy/images.yaml pins nginx:{tag_of('nginx')}"
    assert problem(PINNED["nginx"], "x") is None
    assert "is not pinned in deploy/images.yaml: add the line `  <name>: prom/node-exporter:v1.9.1`" \
        in problem("prom/node-exporter:v1.9.1", "x")
    assert problem("pcbuilder-nginx:1.0", "x").startswith("x: pcbuilder-nginx:1.0, but pcbuilder-nginx carries")
    assert problem("localhost/pcbuilder-app:local", "x") is None
