"""A kernel with a signing key, topics and a migrated database of its own."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from projections.migrate import migrate
from streams.chain.keys import generate_key, load_signer, signers_document


@pytest.fixture
def audit_kernel(db_kernel: Kernel, tmp_path: Path) -> Kernel:
    keys = tmp_path / "keys"
    path = generate_key(keys, "test-signer")
    migrate(db_kernel.settings.database_url)
    settings = replace(
        db_kernel.settings,
        signing_key=path,
        signer_id="test-signer",
        checkpoint_every=10,
        state_dir=tmp_path,
    )
    return Kernel(settings)


@pytest.fixture
def signers_file(audit_kernel: Kernel, tmp_path: Path) -> Path:
    signer = load_signer(audit_kernel.settings.signing_key)  # type: ignore[arg-type]
    out = tmp_path / "signers.json"
    out.write_text(json.dumps(signers_document([(signer.signer_id, signer.public_key)])))
    return out
