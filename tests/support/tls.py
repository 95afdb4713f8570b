"""Certificates as a user would bring them, made with the openssl ./stack test installed."""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.tools import require_tool


def user_pair(folder: Path, cn: str = "user.example", algorithm: str = "ec") -> tuple[Path, Path]:
    """A certificate and key as a user would bring them (not the script's RSA/localhost)."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "user-cert.pem", folder / "user-key.pem"
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if algorithm == "ec" else \
        ["-newkey", "rsa:2048"]
    subprocess.run([require_tool("openssl"), "req", "-x509", *newkey, "-nodes", "-days", "2",
                    "-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key
