"""CI fails on a committed private key or token.

Every file git tracks is searched for what a secret looks like here: a PEM
private key, a Kernel key file (``"seed":``), an API bearer token
(``kt_<8 hex>_<secret>``), a URL with a password. The published test vectors
carry their seed on purpose (anyone must be able to re-derive the signatures);
they are the one allowance, and must say so.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PATTERNS = {
    "PEM private key": re.compile(rb"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "Kernel key file": re.compile(rb'"seed"\s*:\s*"[A-Za-z0-9+/=]{40,}"'),
    "bearer token": re.compile(rb"kt_[0-9a-f]{8}_[A-Za-z0-9_-]{40,}"),
    "URL with a password": re.compile(rb"postgres(?:ql)?://[^:/@\s\"']+:[^@\s\"'*{}$]{6,}@"),
}

ALLOWED = {
    # the published, deliberately public test vectors: anyone must re-derive them
    ("tests/vectors/audit_chain_v1.json", "Kernel key file"),
    ("tests/vectors/generate_audit_chain_v1.py", "Kernel key file"),
    # made-up passwords that test the redaction of URLs
    ("tests/unit/ops/test_database_roles.py", "URL with a password"),
    # this file's own samples of each kind
    *((f"tests/unit/{Path(__file__).name}", what) for what in PATTERNS),
}


def _tracked() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [ROOT / name for name in out.decode().split("\0") if name]


def scan(data: bytes) -> list[str]:
    return [what for what, pattern in PATTERNS.items() if pattern.search(data)]


def test_no_secret_is_committed() -> None:
    found = []
    for path in _tracked():
        if not path.is_file():
            continue
        rel = str(path.relative_to(ROOT))
        for what in scan(path.read_bytes()):
            if (rel, what) not in ALLOWED:
                found.append(f"{rel}: {what}")
    assert not found, "secrets committed:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "sample",
    [
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQ...",
        b"-----BEGIN EC PRIVATE KEY-----",
        b'{"signerId": "x", "seed": "' + b"A" * 43 + b'="}',
        b"Authorization: Bearer kt_0a1b2c3d_" + b"x" * 43,
        b"POSTGRES_URL=postgresql://kernel_owner:s3cr3tpassw0rd@db:5432/kernel",
    ],
)
def test_each_kind_of_secret_is_recognised(sample: bytes) -> None:
    assert scan(sample)


def test_a_redacted_url_or_a_variable_is_not_a_secret() -> None:
    assert not scan(b"postgresql://kernel:***@127.0.0.1/kernel")
    assert not scan(b"postgresql://kernel:${PASSWORD}@db/kernel")
