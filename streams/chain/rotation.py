"""Key rotation and revocation as records: what they say, who signs them, and their links.

A ``keyRotation`` event (schema v2) is either

- **rotate**: ``oldSignerId`` hands over to ``newSignerId``/``newPublicKey``;
  ``positions[chain]`` is the first seq of that chain the incoming key signs.
  Signed by the outgoing key. Every chain with a head gets a *rotation link*:
  the next link of the chain, whose payload is the rotation event, signed by
  the outgoing key (its last record there); the incoming key signs from the
  seq after it. A chain with no record yet has no link to carry: the incoming
  key signs it from seq 0.
- **revoke**: ``oldSignerId``'s signatures are void from ``positions[chain]``
  on (``"*"``: every chain not named). Signed by the key in force
  (``newSignerId``), never by the revoked one.

The event's own ``signature`` is Ed25519 over ``SHA-256(JCS(body without
signature))`` -- a 32-byte digest like a link's, so every :class:`Signer`
backend (file, PKCS#11) signs it unchanged.

Everything here is pure: the CLI (``ops/commands/keys.py``) reads the heads
and publishes, in one Kafka transaction, the event on the ``keys`` topic and
the rotation links on the chain topic. A rotation link continues its chain
exactly like a signed input record (``seq``, ``prevHash``, the link contract
of :mod:`streams.chain.links`), names its chain's own partition as source and
keeps the head's ``sourceOffset``, so the signer's recovery and its
"already chained" check are unchanged, and its id is the link's usual
:func:`~streams.chain.signer.record_id`: the same heads and event give the same
links, byte for byte.

:func:`windows_from_log` turns the log's rotations and revocations into the
per-key windows of ``signers.json`` (:mod:`streams.chain.windows`), checking
each record's signature by the key that must have signed it.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.events import Event
from schemas.positions import LogPosition
from streams.chain.canonical import canonicalize
from streams.chain.errors import ChainError
from streams.chain.links import ChainHead, link_body
from streams.chain.signing import Signer, Verifier, b64, unb64
from streams.chain.windows import KeyWindow

__all__ = [
    "KeyHistory",
    "content_digest",
    "is_rotation_link",
    "revocation_body",
    "rotation_body",
    "rotation_link",
    "rotation_positions",
    "windows_from_log",
]

ROTATE, REVOKE = "rotate", "revoke"


def content_digest(body: Mapping[str, Any]) -> bytes:
    """What a keyRotation's ``signature`` signs: SHA-256 of the JCS of the rest of the body."""
    return hashlib.sha256(
        canonicalize({k: v for k, v in body.items() if k != "signature"})
    ).digest()


def rotation_positions(heads: Iterable[ChainHead]) -> dict[str, int]:
    """The first seq the incoming key signs on each chain: after its rotation link."""
    return {h.chain: h.seq + 2 for h in sorted(heads, key=lambda h: h.chain)}


def rotation_body(
    outgoing: Signer,
    new_signer_id: str,
    new_public_key: bytes,
    positions: Mapping[str, int],
    reason: str,
) -> dict[str, Any]:
    if new_signer_id == outgoing.signer_id:
        raise ChainError(f"the incoming key must have a new signerId, not {new_signer_id!r}")
    return _signed(
        outgoing,
        {
            "oldSignerId": outgoing.signer_id,
            "newSignerId": new_signer_id,
            "newPublicKey": b64(new_public_key),
            "reason": reason,
            "action": ROTATE,
            "positions": dict(sorted(positions.items())),
        },
    )


def revocation_body(
    in_force: Signer, revoked_signer_id: str, positions: Mapping[str, int], reason: str
) -> dict[str, Any]:
    if revoked_signer_id == in_force.signer_id:
        raise ChainError(
            f"{revoked_signer_id!r} is the key in force: rotate away from it first "
            "(`kernel keys rotate --to NEW`), then revoke it"
        )
    return _signed(
        in_force,
        {
            "oldSignerId": revoked_signer_id,
            "newSignerId": in_force.signer_id,
            "newPublicKey": b64(in_force.public_key),
            "reason": reason,
            "action": REVOKE,
            "positions": dict(sorted(positions.items())),
        },
    )


def _signed(signer: Signer, body: dict[str, Any]) -> dict[str, Any]:
    body["signature"] = b64(signer.sign(content_digest(body)))
    return body


def rotation_link(
    head: ChainHead, rotation: Event, outgoing: Signer
) -> tuple[ChainHead, dict[str, Any]]:
    """The rotation link of ``head``'s chain: ``rotation``'s event JSON, signed by ``outgoing``."""
    if rotation.body.get("oldSignerId") != outgoing.signer_id:
        raise ChainError(f"rotation names {rotation.body.get('oldSignerId')!r}, not the signer")
    if rotation.body.get("positions", {}).get(head.chain) != head.seq + 2:
        raise ChainError(f"rotation's position for {head.chain} is not after its head")
    topic, _, partition = head.chain.rpartition("/")
    source = LogPosition(topic, int(partition), head.source_offset)
    return link_body(head, rotation.to_json(), source=source, signer=outgoing)


def is_rotation_link(body: Mapping[str, Any]) -> bool:
    """An auditRecord body whose payload is a rotation (not an input record)."""
    payload = body.get("payload")
    return (
        isinstance(payload, dict)
        and payload.get("eventType") == "keyRotation"
        and isinstance(payload.get("body"), dict)
        and payload["body"].get("action", ROTATE) in (ROTATE, None)
        and body.get("signerId") == payload["body"].get("oldSignerId")
        and int(body.get("seq", -1)) + 1 == payload["body"].get("positions", {}).get(body["chain"])
    )


@dataclass
class KeyHistory:
    """Every key, its public key and its window, as the log's key records leave them."""

    keys: dict[str, bytes] = field(default_factory=dict)
    windows: dict[str, KeyWindow] = field(default_factory=dict)
    current: str | None = None  # the key the last rotation handed over to

    def signers(self) -> list[tuple[str, bytes]]:
        return sorted(self.keys.items())


def windows_from_log(initial: Mapping[str, bytes], records: Iterable[Event]) -> KeyHistory:
    """Replay the ``keys`` topic's records (in log order) over the ``initial`` keys.

    A record whose signature does not verify under the key that must have
    signed it, or that names a key it cannot (an unknown outgoing key, an
    incoming signerId already used), raises: a forged key record is an
    incident to report, never one to skip.
    """
    history = KeyHistory(dict(initial))
    valid_from: dict[str, dict[str, int]] = {}
    valid_until: dict[str, dict[str, int]] = {}
    revoked: dict[str, dict[str, int]] = {}
    for event in records:
        if event.event_type != "keyRotation":
            continue
        body = event.body
        action = body.get("action") or ROTATE
        where = f"keyRotation {event.event_id}"
        signer_id = body.get("oldSignerId") if action == ROTATE else body.get("newSignerId")
        _check_signature(history.keys, signer_id, body, where)
        positions = body.get("positions") or {}
        old, new = str(body.get("oldSignerId")), str(body["newSignerId"])
        if action == ROTATE:
            if history.current is not None and old != history.current:
                raise ChainError(f"{where}: rotates from {old!r}, not the key in force")
            if new in history.keys and history.keys[new] != unb64(body["newPublicKey"]):
                raise ChainError(f"{where}: signerId {new!r} is already another key")
            if new in valid_from or new in valid_until:
                raise ChainError(f"{where}: signerId {new!r} was used before; ids are never reused")
            history.keys[new] = unb64(body["newPublicKey"])
            valid_until[old] = dict(positions)
            valid_from[new] = dict(positions)
            history.current = new
        elif action == REVOKE:
            if old not in history.keys or old == new:
                raise ChainError(f"{where}: revokes {old!r}, unknown or its own signer")
            if history.current is not None and new != history.current:
                raise ChainError(f"{where}: signed by {new!r}, not the key in force")
            mine = revoked.setdefault(old, {})
            for chain, seq in positions.items():
                mine[chain] = min(seq, mine.get(chain, seq))
        else:
            raise ChainError(f"{where}: unknown action {action!r}")
    for sid in history.keys:
        if sid in valid_from or sid in valid_until or sid in revoked:
            history.windows[sid] = KeyWindow(
                valid_from.get(sid, {}), valid_until.get(sid), revoked.get(sid, {})
            )
    return history


def _check_signature(
    keys: Mapping[str, bytes], signer_id: Any, body: Mapping[str, Any], where: str
) -> None:
    if not isinstance(signer_id, str) or signer_id not in keys:
        raise ChainError(f"{where}: signed by {signer_id!r}, a key not known at that point")
    try:
        signature = unb64(str(body.get("signature")))
    except (binascii.Error, ValueError) as exc:
        raise ChainError(f"{where}: signature is not base64") from exc
    if not Verifier(keys[signer_id]).verify(content_digest(body), signature):
        raise ChainError(f"{where}: signature does not verify under {signer_id!r}")
