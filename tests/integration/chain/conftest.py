"""Fixtures of the audit chain's integration tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_chain_helpers import SIGNER, AuditDb

from projections.migrate import migrate
from streams.chain.keys import signers_document


@pytest.fixture
def audit_db(database_url: str, tmp_path: Path) -> AuditDb:
    migrate(database_url)
    signers = tmp_path / "signers.json"
    signers.write_text(json.dumps(signers_document([(SIGNER.signer_id, SIGNER.public_key)])))
    return AuditDb(database_url, signers, {})
