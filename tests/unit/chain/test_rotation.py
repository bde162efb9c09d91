"""Key rotation and revocation as chain records, and the windows verification honours.

Driven without a broker: the signer's pure step and rotation, the windows the
log's key records leave, ``signers.json`` round-trip, and the verifier's flags.
The property: over random chains, rotation and revocation positions, and
records signed by the wrong key on either side of the rotation, exactly the
records outside their key's window or after its revocation are flagged.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.verify import AuditRow, ChainVerifier, VerificationReport
from replay.verify_pool import audit_row
from schemas.codec import EventCodec
from schemas.events import Event, new_event, now_ms
from streams.chain.errors import ChainError, KeyFileError, SignerError
from streams.chain.keys import parse_signers, signers_document
from streams.chain.rotation import (
    content_digest,
    is_rotation_link,
    revocation_body,
    rotation_body,
    rotation_positions,
    windows_from_log,
)
from streams.chain.signer import ChainSigner, SignerState
from streams.chain.signing import LocalEd25519Signer, Verifier, unb64
from streams.processor import InputRecord, OutputRecord

OLD = LocalEd25519Signer(b"\x01" * 32, "key-old")
NEW = LocalEd25519Signer(b"\x02" * 32, "key-new")
TOPICS = ["t.actions", "t.keys"]


def _input(topic: str, partition: int, offset: int) -> InputRecord:
    event = new_event("kernelAction", "svc", "s", {"action": "a", "context": {"n": offset}})
    return InputRecord(topic, partition, offset, 0, b"s", event)


def _key_event(body: dict[str, Any], actor: str, subject: str) -> Event:
    return Event(str(uuid.uuid4()), "keyRotation", now_ms(), actor, subject, body, 2)


def _rotation(state: SignerState, by: LocalEd25519Signer = OLD) -> Event:
    positions = rotation_positions(state.heads.values())
    return _key_event(rotation_body(by, NEW.signer_id, NEW.public_key, positions, "test"), "o", "n")


def _rows(outputs: Sequence[OutputRecord]) -> list[AuditRow]:
    return sorted((audit_row(o.event.body) for o in outputs), key=lambda r: (r.chain, r.seq))


def _verify(rows: list[AuditRow], records: list[Event]) -> VerificationReport:
    history = windows_from_log({OLD.signer_id: OLD.public_key}, records)
    doc = signers_document(history.signers(), history.windows)
    return ChainVerifier(parse_signers(doc)).feed_all(rows)


def test_rotation_links_every_chain_signed_by_the_outgoing_key_and_verifies() -> None:
    old, new = ChainSigner(OLD, TOPICS, "t.chain", 3), ChainSigner(NEW, TOPICS, "t.chain", 3)
    state, outs = old.initial(), []
    for rec in [_input("t.actions", 0, 0), _input("t.actions", 1, 0), _input("t.actions", 0, 1)]:
        state, out = old.step(state, rec)
        outs += out
    rotation = _rotation(state)
    assert rotation.body["positions"] == {"t.actions/0": 3, "t.actions/1": 2}
    state, links = old.rotate(state, rotation)
    assert [(o.event.body["chain"], o.event.body["seq"]) for o in links] == [
        ("t.actions/0", 2),
        ("t.actions/1", 1),
    ]
    for link in links:
        body = link.event.body
        assert body["signerId"] == OLD.signer_id
        assert body["payload"] == rotation.to_json()
        assert body["sourceTopic"] == "t.actions"
        assert is_rotation_link(body)
    # Byte for byte again from the same heads and event (deterministic: replay).
    again_state = SignerState({h.chain: h for h in _heads_before(outs)}, state.seen)
    assert [o.event for o in old.rotate(again_state, rotation)[1]] == [o.event for o in links]
    # The codec takes what it will be published as (schema v2, derived links).
    codec = EventCodec()
    assert codec.decode(codec.encode_checked(rotation)).body == rotation.body
    for link in links:
        assert codec.decode(codec.encode(link.event)).body == link.event.body
    # The incoming key signs on after the link; the input's offsets are not disturbed.
    state, after = new.step(state, _input("t.actions", 0, 2))
    assert after[0].event.body["seq"] == 3
    assert after[0].event.body["prevHash"] == links[0].event.body["hash"]
    report = _verify(_rows(outs + links + after), [rotation])
    assert report.ok, report.to_json()


def _heads_before(outs: list[OutputRecord]) -> list[Any]:
    from streams.chain.links import ChainHead

    last: dict[str, Any] = {}
    for o in outs:
        last[o.event.body["chain"]] = ChainHead.of_record(o.event.body)
    return list(last.values())


def test_recover_refuses_the_outgoing_key_after_a_rotation() -> None:
    old = ChainSigner(OLD, TOPICS, "t.chain", 1)
    state, out = old.step(old.initial(), _input("t.actions", 0, 0))
    _, links = old.rotate(state, _rotation(state))
    reader = _Reader(
        [InputRecord("t.chain", 0, i, 0, o.key, o.event) for i, o in enumerate(out + links)]
    )
    with pytest.raises(SignerError, match="rotated to key 'key-new'"):
        old.recover([("t.actions", 0)], reader)
    heads = ChainSigner(NEW, TOPICS, "t.chain", 1).recover([("t.actions", 0)], reader).heads
    assert heads["t.actions/0"].seq == 1


def test_old_signers_json_loads_unbounded_and_windows_round_trip() -> None:
    plain = parse_signers(signers_document([(OLD.signer_id, OLD.public_key)]))
    assert plain[OLD.signer_id].window is None
    history = windows_from_log(
        {OLD.signer_id: OLD.public_key},
        [
            _key_event(
                rotation_body(OLD, NEW.signer_id, NEW.public_key, {"c/0": 4}, "r"), "o", "n"
            ),
            _key_event(revocation_body(NEW, OLD.signer_id, {"c/0": 2, "*": 0}, "x"), "n", "o"),
        ],
    )
    doc = signers_document(history.signers(), history.windows)
    by_id = {e["signerId"]: e for e in doc["signers"]}
    assert by_id["key-old"]["validUntil"] == {"c/0": 4}
    assert by_id["key-old"]["revokedFrom"] == {"*": 0, "c/0": 2}
    assert by_id["key-new"]["validFrom"] == {"c/0": 4}
    assert "validUntil" not in by_id["key-new"]
    parsed = parse_signers(doc)
    assert parsed["key-old"].window == history.windows["key-old"]
    with pytest.raises(KeyFileError, match="validFrom must map"):
        parse_signers({"signers": [{**by_id["key-new"], "validFrom": {"c/0": -1}}]})


def test_forged_or_reusing_key_records_are_refused() -> None:
    intruder = LocalEd25519Signer(b"\x09" * 32, "key-old")  # claims the old key's id
    forged = rotation_body(intruder, NEW.signer_id, NEW.public_key, {}, "evil")
    with pytest.raises(ChainError, match="does not verify under 'key-old'"):
        windows_from_log({OLD.signer_id: OLD.public_key}, [_key_event(forged, "o", "n")])
    tampered = rotation_body(OLD, NEW.signer_id, NEW.public_key, {"c/0": 4}, "r")
    tampered["positions"] = {"c/0": 40}
    with pytest.raises(ChainError, match="does not verify"):
        windows_from_log({OLD.signer_id: OLD.public_key}, [_key_event(tampered, "o", "n")])
    there = rotation_body(OLD, NEW.signer_id, NEW.public_key, {}, "r")
    back = rotation_body(NEW, OLD.signer_id, OLD.public_key, {}, "r")
    with pytest.raises(ChainError, match="used before"):
        windows_from_log(
            {OLD.signer_id: OLD.public_key},
            [_key_event(there, "o", "n"), _key_event(back, "n", "o")],
        )
    with pytest.raises(ChainError, match="key in force"):
        revocation_body(NEW, NEW.signer_id, {"*": 0}, "no")
    signed = rotation_body(OLD, NEW.signer_id, NEW.public_key, {}, "r")
    assert Verifier(OLD.public_key).verify(content_digest(signed), unb64(signed["signature"]))


# -- the property -------------------------------------------------------------------------

chains_st = st.dictionaries(
    st.sampled_from(["t.actions/0", "t.actions/1", "t.keys/0"]),
    st.tuples(
        st.lists(st.booleans(), max_size=5),  # before: True = signed by the *new* key (wrong)
        st.lists(st.booleans(), max_size=5),  # after: True = signed by the *old* key (wrong)
    ),
    min_size=1,
)
revocations_st = st.dictionaries(
    st.sampled_from(["t.actions/0", "t.actions/1", "t.keys/0", "*"]),
    st.integers(0, 12),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(chains=chains_st, revoked=revocations_st)
def test_exactly_the_records_outside_windows_or_after_revocation_are_flagged(
    chains: Mapping[str, tuple[list[bool], list[bool]]], revoked: Mapping[str, int]
) -> None:
    signers = {OLD.signer_id: ChainSigner(OLD, TOPICS, "t.chain", 3)}
    signers[NEW.signer_id] = ChainSigner(NEW, TOPICS, "t.chain", 3)
    state = signers[OLD.signer_id].initial()
    outs: list[OutputRecord] = []
    offsets: dict[str, int] = defaultdict(int)

    def sign(chain: str, key: str) -> None:
        nonlocal state
        topic, _, part = chain.rpartition("/")
        state, out = signers[key].step(state, _input(topic, int(part), offsets[chain]))
        offsets[chain] += 1
        outs.extend(out)

    for chain, (before, _) in chains.items():
        for wrong in before:
            sign(chain, NEW.signer_id if wrong else OLD.signer_id)
    rotation = _rotation(state)
    positions = rotation.body["positions"]
    state, links = signers[OLD.signer_id].rotate(state, rotation)
    outs += links
    for chain, (_, after) in chains.items():
        for wrong in after:
            sign(chain, OLD.signer_id if wrong else NEW.signer_id)
    revocation = _key_event(revocation_body(NEW, OLD.signer_id, revoked, "x"), "n", "o")

    report = _verify(_rows(outs), [rotation, revocation])

    expected: dict[tuple[str, int], str] = {}
    for o in outs:
        body = o.event.body
        chain, seq, key = body["chain"], body["seq"], body["signerId"]
        revoked_at = revoked.get(chain, revoked.get("*"))
        rotated_at = positions.get(chain)  # None: no record there before the rotation
        if key == OLD.signer_id:
            if revoked_at is not None and seq >= revoked_at:
                expected[chain, seq] = "revoked"
            elif rotated_at is None or seq >= rotated_at:
                expected[chain, seq] = "outside"
        elif rotated_at is not None and seq < rotated_at:
            expected[chain, seq] = "outside"
    got = {(f.chain, f.seq): f.reason for f in report.flagged}
    assert set(got) == set(expected), (got, expected)
    for where, kind in expected.items():
        assert (kind == "revoked") == got[where].startswith("signed by revoked key"), got[where]
    assert not report.failures  # the links themselves are intact
    assert report.ok == (not expected)


class _Reader:
    def __init__(self, records: list[InputRecord]) -> None:
        self.records = records

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def read(
        self, topic: str, partition: int, start: int, end: int | None = None
    ) -> Sequence[InputRecord]:
        rows = [r for r in self.records if r.topic == topic]
        return [r for r in rows if r.offset >= start and (end is None or r.offset < end)]

    def read_keyed(
        self, topic: str, partition: int, start: int, end: int, keys: frozenset[bytes]
    ) -> Sequence[InputRecord]:
        return [r for r in self.read(topic, partition, start, end) if r.key in keys]

    def end_offset(self, topic: str, partition: int) -> int:
        return len([r for r in self.records if r.topic == topic])

    def committed(self, topic: str, partition: int) -> int:
        return 0


def test_a_rotation_or_revocation_not_by_the_key_in_force_is_refused() -> None:
    third = LocalEd25519Signer(b"\x03" * 32, "key-third")
    keys = {OLD.signer_id: OLD.public_key, third.signer_id: third.public_key}
    first = _key_event(rotation_body(OLD, NEW.signer_id, NEW.public_key, {}, "r"), "o", "n")
    from_retired = rotation_body(third, "key-fourth", b"\x04" * 32, {}, "r")
    with pytest.raises(ChainError, match="not the key in force"):
        windows_from_log(keys, [first, _key_event(from_retired, "t", "f")])
    by_other = revocation_body(third, OLD.signer_id, {"*": 0}, "x")
    with pytest.raises(ChainError, match="not the key in force"):
        windows_from_log(keys, [first, _key_event(by_other, "t", "o")])
