"""nginx/docker-entrypoint.d/20-tls-cert.sh, the one script compose and ./stack run before
NGINX starts (no data loss): it never writes over a file that exists; it generates
a self-signed pair only when neither file exists (and generation is allowed); any other
case is refused with one line naming the file. Real openssl, no stack."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from stackctl import render
from tests.support.tls import user_pair
from tests.support.tools import require_tool


def run_script(cert: Path, key: Path, generate: str = "on") -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "TLS_CERT": str(cert), "TLS_KEY": str(key),
           "OPENSSL": require_tool("openssl"), "TLS_GENERATE": generate}
    return subprocess.run(["sh", str(render.TLS_CERT_SCRIPT)], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def digest(*paths: Path) -> list[str | None]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths]


def refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """The refusal is exit 1 and exactly one line (naming what it must name)."""
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert lines[0].endswith("nothing was written")
    return lines[0]


def subject(cert: Path) -> str:
    return subprocess.run([require_tool("openssl"), "x509", "-in", str(cert), "-noout", "-subject"],
                          capture_output=True, text=True, check=True).stdout


def test_neither_file_generates_a_pair_once_and_then_leaves_it_alone(tmp_path):
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    first = run_script(cert, key)
    assert first.returncode == 0 and "generated a self-signed certificate" in first.stdout
    assert "CN = localhost" in subject(cert) and oct(key.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in cert.parent.iterdir()) == ["cert.pem", "key.pem"]  # no temp files left
    before = digest(cert, key)
    again = run_script(cert, key)
    assert again.returncode == 0 and again.stdout == "" and digest(cert, key) == before


def test_neither_file_at_a_path_the_user_named_is_refused_not_generated(tmp_path):
    cert, key = tmp_path / "mine" / "cert.pem", tmp_path / "mine" / "key.pem"
    refused(run_script(cert, key, generate="off"), f"TLS_CERT={cert} does not exist")
    assert not (tmp_path / "mine").exists()


def test_a_users_pair_is_used_as_it_is(tmp_path):
    cert, key = user_pair(tmp_path)
    before = digest(cert, key)
    result = run_script(cert, key)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert digest(cert, key) == before and "user.example" in subject(cert)


def test_only_the_certificate_the_key_path_empty(tmp_path):
    """The issue's case: TLS_CERT set to a real certificate, TLS_KEY left at its default."""
    cert, _ = user_pair(tmp_path / "user")
    key = tmp_path / "default" / "key.pem"
    before = digest(cert)
    refused(run_script(cert, key), f"TLS_KEY={key} does not exist but TLS_CERT={cert} does")
    assert digest(cert) == before and not key.exists()


def test_only_the_key(tmp_path):
    _, key = user_pair(tmp_path / "user")
    cert = tmp_path / "default" / "cert.pem"
    before = digest(key)
    refused(run_script(cert, key), f"TLS_CERT={cert} does not exist but TLS_KEY={key} does")
    assert digest(key) == before and not cert.exists()


@pytest.mark.parametrize("broken, content, message", [
    ("cert", b"garbage\n", "is not a PEM certificate"),
    ("cert", b"", "is not a PEM certificate"),
    ("key", b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
     "is not an unencrypted PEM private key"),
])
def test_a_file_that_is_not_a_certificate_or_key_is_refused_and_kept(tmp_path, broken, content, message):
    cert, key = user_pair(tmp_path)
    (cert if broken == "cert" else key).write_bytes(content)
    before = digest(cert, key)
    name, path = ("TLS_CERT", cert) if broken == "cert" else ("TLS_KEY", key)
    refused(run_script(cert, key), f"{name}={path} {message}")
    assert digest(cert, key) == before


def test_an_encrypted_key_is_refused_without_prompting(tmp_path):
    cert, key = user_pair(tmp_path, algorithm="rsa")
    locked = tmp_path / "locked.pem"
    subprocess.run([require_tool("openssl"), "pkey", "-in", str(key), "-aes256", "-passout", "pass:pw",
                    "-out", str(locked)], check=True, capture_output=True)
    refused(run_script(cert, locked), f"TLS_KEY={locked} is not an unencrypted PEM private key")


def test_a_key_of_another_certificate_is_refused(tmp_path):
    cert, _ = user_pair(tmp_path / "a", cn="a.example")
    _, other_key = user_pair(tmp_path / "b", cn="b.example")
    before = digest(cert, other_key)
    refused(run_script(cert, other_key), f"TLS_KEY={other_key} is not the private key of TLS_CERT={cert}")
    assert digest(cert, other_key) == before


def test_a_directory_is_not_a_certificate(tmp_path):
    _, key = user_pair(tmp_path)
    (tmp_path / "certdir").mkdir()
    refused(run_script(tmp_path / "certdir", key), f"TLS_CERT={tmp_path / 'certdir'} is not a regular file")
