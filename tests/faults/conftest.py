"""The fault suite's own stack (never the shared one) and a kernel on it."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from projections.migrate import migrate
from streams.chain.keys import generate_key, load_signer, signers_document
from streams.chain.links import chain_id
from streams.chain.signer import chain_partition
from tests.conftest import fresh_database
from tests.faults.fault_stack import FaultStack
from tests.integration.sentinel.test_stream_runner import DENY_BIG, activate


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[FaultStack]:
    stack = FaultStack(
        kafka_port=int(os.environ.get("KERNEL_FAULTS_KAFKA_PORT", "28092")),
        pg_port=int(os.environ.get("KERNEL_FAULTS_PG_PORT", "28432")),
    )
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def spread_prefix(chain_partitions: int = 3) -> str:
    """A topic prefix whose busy chains (actions, policy-checks) use every chain partition.

    A chain's partition is crc32(chain id) mod 3, and the chain id carries the
    prefix: with a random prefix the six busy chains often hash onto two of the
    three partitions, and the second instance of the checkpointer or the audit
    projector (which read the chain topic) would have nothing to share. The run
    proves that two instances share the load, so its input must have load to share.
    """
    while True:
        prefix = f"f{uuid.uuid4().hex[:12]}."
        used = {
            chain_partition(chain_id(f"{prefix}{topic}", p), chain_partitions)
            for topic in ("actions", "policy-checks")
            for p in range(3)
        }
        if len(used) == chain_partitions:
            return prefix


@pytest.fixture
def fault_kernel(fault_stack: FaultStack, tmp_path: Path) -> Iterator[Kernel]:
    """Topics, a migrated database, a signing key and one active deny policy."""
    base = replace(fault_stack.settings, topic_prefix=spread_prefix())
    with fresh_database(base.database_url) as url:
        key = generate_key(tmp_path / "keys", "fault-signer")
        settings = replace(base, postgres_url=url, signing_key=key, signer_id="fault-signer")
        kernel = Kernel(settings)
        kernel.topic_admin().ensure()
        migrate(url)
        with kernel.producer() as producer:
            producer.publish_batch(activate(DENY_BIG))
        yield kernel


@pytest.fixture
def signers(fault_kernel: Kernel, tmp_path: Path) -> Path:
    signer = load_signer(fault_kernel.settings.signing_key)  # type: ignore[arg-type]
    out = tmp_path / "signers.json"
    out.write_text(json.dumps(signers_document([(signer.signer_id, signer.public_key)])))
    return out
