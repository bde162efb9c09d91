"""The local broker's cluster id never reads as an option to the format tool."""

from __future__ import annotations

import base64
import uuid

import pytest

from ops.stack import kafka_server


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    dash = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    fine = uuid.UUID(int=1)
    drawn = iter([dash, dash, fine])
    monkeypatch.setattr(kafka_server.uuid, "uuid4", lambda: next(drawn))
    cluster = kafka_server._cluster_id()
    assert not cluster.startswith("-")
    assert base64.urlsafe_b64decode(cluster + "==") == fine.bytes
    monkeypatch.undo()
    assert len({kafka_server._cluster_id() for _ in range(200)}) == 200
