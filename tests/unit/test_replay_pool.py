"""The replay's link pool: pooled, in-process and the original verifier agree exactly.

Raw chain records are built the way the signer builds them (``ChainStep`` over
arbitrary events, Avro-encoded), some tampered with; then

* ``VerifyPool`` with worker processes and in this process return identical
  batches (verdicts and COPY text), whatever the batch size;
* feeding those verdicts in log order (``ChainChecks.link_checked``) names the
  same first failure -- chain, seq, id, reason -- as ``ChainVerifier.feed`` over
  the decoded rows, which is what replay did before the pool;
* the COPY text is byte for byte what ``AuditProjection.write`` sends through
  psycopg for the same records.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg._copy_base import TextFormatter
from psycopg.adapt import Transformer

from projections.audit import AuditProjection
from replay.audit_rebuild import ChainChecks
from replay.audit_replay import AuditReplay
from replay.link_decode import LinkDecoder
from replay.verify import CheckedLink, Failure
from replay.verify_pool import COPY_COLUMNS, CheckedBatch, VerifyPool, audit_row, copy_line
from schemas.catalog import catalog
from schemas.codec import EventCodec
from schemas.errors import ConfigError, KernelError
from schemas.events import Event, new_event
from schemas.positions import LogPosition
from streams.chain.links import ChainHead, ChainStep
from streams.chain.signing import LocalEd25519Signer, Verifier
from streams.processor import InputRecord
from tests.strategies import events, json_objects

SIGNER = LocalEd25519Signer(b"\x05" * 32, "unit-signer")
VERIFIERS = {"unit-signer": Verifier(SIGNER.public_key)}
CODEC = EventCodec()
TAMPERS = ["payload", "signature", "signer", "hash", "seq", "prev", "drop", "garbage", "other"]


@pytest.fixture(scope="module")
def pool() -> Iterator[VerifyPool]:
    with VerifyPool(catalog(), VERIFIERS, workers=2) as p:
        yield p


def _chain_records(audited: list[tuple[int, Event]], tamper: tuple[int, str] | None) -> list[bytes]:
    """The chain topic's raw records for ``audited`` (chain index, event), in order."""
    step = ChainStep(SIGNER)
    heads: dict[int, ChainHead] = {}
    out: list[bytes] = []
    for i, (chain, event) in enumerate(audited):
        source = LogPosition("t.actions", chain, i)
        head, body = step(heads.get(chain), event.to_json(), source)
        heads[chain] = head
        kind = tamper[1] if tamper is not None and tamper[0] == i else None
        if kind == "drop":
            continue
        if kind == "garbage":
            out.append(b"\xc3\x01not avro at all")
            continue
        if kind == "other":
            out.append(CODEC.encode(event))  # not an auditRecord: the in-process way
        body = _tampered(body, kind)
        out.append(CODEC.encode(new_event("auditRecord", "signer", body["chain"], body)))
    return out


def _tampered(body: dict[str, Any], kind: str | None) -> dict[str, Any]:
    body = dict(body)
    if kind == "payload":
        body["payload"] = {**body["payload"], "actor": "mallory"}
    elif kind == "signature":
        body["signature"] = "A" * 86 + "=="
    elif kind == "signer":
        body["signerId"] = "mallory"
    elif kind == "hash":
        body["hash"] = "f" * 64
    elif kind == "seq":
        body["seq"] += 1
    elif kind == "prev":
        body["prevHash"] = "0" * 64
    return body


def _checked(p: VerifyPool, raw: list[bytes], size: int) -> list[CheckedBatch]:
    futures = [
        p.submit(list(range(i, min(i + size, len(raw)))), raw[i : i + size])
        for i in range(0, len(raw), size)
    ]
    return [f.result() for f in futures]


def _first_failure_pooled(raw: list[bytes], batches: list[CheckedBatch]) -> Failure | None:
    """What ShadowRebuild does with the pool's verdicts (offsets go the in-process way)."""
    checks = ChainChecks(VERIFIERS, resume=False)
    for entries, _ in batches:
        for entry in entries:
            if isinstance(entry, int):
                try:
                    event = CODEC.decode(raw[entry])
                except KernelError:
                    continue
                if event.event_type == "auditRecord" and checks.link(audit_row(event.body)):
                    return checks.failures[0]
            elif checks.link_checked(entry) is not None:
                return checks.failures[0]
    return None


def _first_failure_reference(raw: list[bytes]) -> Failure | None:
    """Replay before the pool: decode (skip undecodable), ChainVerifier.feed in order."""
    checks = ChainChecks(VERIFIERS, resume=False)
    for data in raw:
        try:
            event = CODEC.decode(data)
        except KernelError:
            continue
        if event.event_type == "auditRecord" and checks.link(audit_row(event.body)):
            return checks.failures[0]
    return None


class _Copy:
    def __init__(self) -> None:
        self.formatter = TextFormatter(Transformer())
        self.data = bytearray()

    def __enter__(self) -> _Copy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.data += self.formatter.end()

    def write_row(self, row: tuple[Any, ...]) -> None:
        self.data += self.formatter.write_row(row)


class _Cursor:
    """Just enough of a psycopg cursor for AuditProjection.write's COPY."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.copy_data = _Copy()

    def copy(self, statement: str) -> _Copy:
        self.statements.append(statement)
        return self.copy_data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    audited=st.lists(st.tuples(st.integers(0, 2), events()), min_size=1, max_size=14),
    tamper=st.none() | st.tuples(st.integers(0, 13), st.sampled_from(TAMPERS)),
    size=st.integers(1, 6),
)
def test_pooled_and_in_process_batches_and_first_failures_are_identical(
    pool: VerifyPool,
    audited: list[tuple[int, Event]],
    tamper: tuple[int, str] | None,
    size: int,
) -> None:
    raw = _chain_records(audited, tamper)
    with VerifyPool(catalog(), VERIFIERS, workers=0) as inline:
        in_process = _checked(inline, raw, size)
    pooled = _checked(pool, raw, size)

    assert pooled == in_process
    assert _first_failure_pooled(raw, pooled) == _first_failure_reference(raw)


def test_a_tampered_link_mid_batch_is_named_and_nothing_else_is(pool: VerifyPool) -> None:
    audited = [
        (i % 2, new_event("kernelAction", "svc", f"s{i}", {"action": "a"})) for i in range(9)
    ]
    raw = _chain_records(audited, (5, "payload"))  # chain 1, seq 2, in the middle of a batch
    batches = _checked(pool, raw, 4)

    failure = _first_failure_pooled(raw, batches)

    links: list[CheckedLink] = [e for b, _ in batches for e in b if not isinstance(e, int)]
    assert [link[5] for link in links].count(None) == 8
    assert failure == Failure(
        "t.actions/1",
        2,
        audited[5][1].event_id,
        "hash does not match SHA-256(JCS(payload) || prev_hash): payload or hash edited",
    )
    assert failure == _first_failure_reference(raw)


def test_a_relinked_or_missing_link_is_caught_in_order_not_by_the_pool(pool: VerifyPool) -> None:
    audited = [(0, new_event("kernelAction", "svc", "s", {"action": "a"})) for _ in range(6)]
    for kind, reason in [
        ("drop", "seq 3 is missing: the chain jumps to 4 (deleted row)"),
        ("seq", "seq 3 is missing: the chain jumps to 4 (deleted row)"),
        ("prev", "prev_hash 0000000000000000... does not link to the previous record's hash "),
    ]:
        raw = _chain_records(audited, (3, kind))
        batches = _checked(pool, raw, 2)
        verdicts = [e[5] for b, _ in batches for e in b if not isinstance(e, int)]
        # A re-linked record's own hash no longer matches; linkage is still named first.
        assert verdicts.count(None) == len(verdicts) - (kind == "prev")
        failure = _first_failure_pooled(raw, batches)
        assert failure is not None and failure.reason.startswith(reason)
        assert failure == _first_failure_reference(raw)


@settings(max_examples=60, deadline=None)
@given(audited=st.lists(st.tuples(st.integers(0, 1), events()), min_size=1, max_size=8))
def test_copy_text_is_what_the_projector_sends(audited: list[tuple[int, Event]]) -> None:
    raw = _chain_records(audited, None)
    with VerifyPool(catalog(), VERIFIERS, workers=0) as inline:
        ((entries, copy_text),) = _checked(inline, raw, len(raw))
    records = [
        InputRecord("t.chain", 0, i, 0, None, CODEC.decode(data)) for i, data in enumerate(raw)
    ]
    cursor = _Cursor()
    AuditProjection("t.chain", "t.checkpoints").write(cursor, records)  # type: ignore[arg-type]

    assert not any(isinstance(e, int) for e in entries)
    assert cursor.statements == [f"COPY audit_events ({COPY_COLUMNS}) FROM STDIN"]
    assert copy_text == bytes(cursor.copy_data.data)


@settings(max_examples=200, deadline=None)
@given(
    strings=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00")), min_size=11, max_size=11
    ),
    numbers=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=3, max_size=3),
    payload=json_objects,
)
def test_copy_lines_escape_every_field_as_psycopg_does(
    strings: list[str], numbers: list[int], payload: dict[str, Any]
) -> None:
    event_id, event_type, ts, chain, prev, hash_, sig, signer, topic, *_ = strings
    body = {
        "chain": chain, "seq": numbers[0], "prevHash": prev, "hash": hash_, "signature": sig,
        "signerId": signer, "sourceTopic": topic, "sourcePartition": numbers[1],
        "sourceOffset": numbers[2],
        "payload": {**payload, "eventId": event_id, "eventType": event_type, "ts": ts},
    }  # fmt: skip
    event = Event("e", "auditRecord", 0, "a", "s", body)
    cursor = _Cursor()
    AuditProjection("t.chain", "t.checkpoints").write(
        cursor,  # type: ignore[arg-type]
        [InputRecord("t.chain", 0, 0, 0, None, event)],
    )

    assert (copy_line(body) or "").encode() == bytes(cursor.copy_data.data)


@settings(max_examples=300, deadline=None)
@given(
    event=events("auditRecord"),
    ts_ms=st.sampled_from([0, 1, 253_402_300_799_999, 253_402_300_800_000, -1]) | st.none(),
    cut=st.none() | st.integers(0, 400),
    flip=st.none() | st.tuples(st.integers(10, 400), st.integers(1, 255)),
)
def test_the_link_decoder_reads_what_the_codec_reads_or_declines(
    event: Event, ts_ms: int | None, cut: int | None, flip: tuple[int, int] | None
) -> None:
    if ts_ms is not None:
        event = replace(event, ts_ms=ts_ms)
    try:
        data = CODEC.encode(event)
    except KernelError:
        return  # not encodable: never on the log
    if cut is not None:
        data = data[:cut]
    if flip is not None and flip[0] < len(data):
        data = data[: flip[0]] + bytes([data[flip[0]] ^ flip[1]]) + data[flip[0] + 1 :]
    fast = LinkDecoder(catalog()).decode(data)
    try:
        decoded = CODEC.decode(data)
    except KernelError:
        assert fast is None
        return
    if fast is not None:  # declining is always allowed; reading differently never
        assert decoded.event_type == "auditRecord"
        assert fast == decoded.body
    if cut is None and flip is None and 0 <= event.ts_ms < 253_402_300_800_000:
        assert fast == decoded.body  # and a plain link takes the fast path


def test_a_replay_without_kafka_bootstrap_is_refused_before_it_starts() -> None:
    replay = AuditReplay(
        reader=None,  # type: ignore[arg-type]  # never reached
        database_url="postgresql://nowhere/none",
        projection=AuditProjection("t.chain", "t.checkpoints"),
        verifiers=VERIFIERS,
    )
    with pytest.raises(ConfigError, match="bootstrap"):
        replay.run(verify_only=True)
