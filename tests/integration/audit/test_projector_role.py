"""As the projector's role: INSERT audit rows, nothing else."""

from __future__ import annotations

import psycopg
import pytest

from ops.bootstrap import Kernel


def test_projector_role_can_only_insert(audit_kernel: Kernel) -> None:
    with psycopg.connect(audit_kernel.settings.database_url, autocommit=True) as conn:
        conn.execute("SET ROLE kernel_projector")
        conn.execute(
            "INSERT INTO audit_events (id, chain, seq, event_type, payload, prev_hash, hash,"
            " signature, signer_id, ts, source_topic, source_partition, source_offset) VALUES"
            " (gen_random_uuid(), 'c/0', 0, 'kernelAction', '{}', '', 'h', 's', 'k', now(),"
            " 'c', 0, 0)"
        )
        for sql in (
            "SELECT * FROM audit_events",
            "UPDATE audit_events SET seq = 1",
            "DELETE FROM audit_events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
