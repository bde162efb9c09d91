"""``kernel keys generate | export-signers | rotate | revoke``: the audit chain's keys.

Key files (development) live under ``KERNEL_STATE_DIR/keys`` (outside the
repository, mode 0600). ``generate --pkcs11`` creates the key pair inside the
configured PKCS#11 token instead (``KERNEL_PKCS11_*``; production), where it
cannot be exported, and prints its ``signers.json`` entry. ``export-signers``
prints the runbook's ``signers.json`` for every key file there, plus the token's
key with ``--pkcs11`` (or ``KERNEL_SIGNER_BACKEND=pkcs11``), which is what
``kernel audit-verify --signers`` reads; ``--from-log`` adds every key the
``keys`` topic's rotations introduced, with each key's validity window and
revocations (:mod:`streams.chain.windows`).

``rotate --to NEW`` (the chain signer stopped) appends a rotation link to
every chain, signed by the outgoing key (the configured signer), and the
``keyRotation`` event to the ``keys`` topic, in one Kafka transaction
(:mod:`streams.chain.rotation`; decision 0018). ``revoke KEY --from
CHAIN@SEQ`` publishes a revocation signed by the key in force.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from schemas.errors import ConfigError, ValidationError
from schemas.events import Event, now_ms, parse_ts
from streams.chain.keys import (
    generate_key,
    key_files,
    key_path,
    load_signer,
    load_signers_file,
    signers_document,
)
from streams.chain.rotation import (
    KeyHistory,
    revocation_body,
    rotation_body,
    rotation_positions,
    windows_from_log,
)
from streams.chain.signing import unb64
from streams.processor import OutputRecord

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "keys", help="signing keys of the audit chain (key files, or a PKCS#11 token)"
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    g = verbs.add_parser("generate", help="create an Ed25519 key file (never overwrites)")
    g.add_argument("--signer-id", help="default: KERNEL_SIGNER_ID (kernel-signer)")
    g.add_argument("--keys-dir", type=Path, help="default: KERNEL_STATE_DIR/keys")
    g.add_argument(
        "--if-missing", action="store_true", help="succeed without change when the key exists"
    )
    g.add_argument(
        "--pkcs11",
        action="store_true",
        help="generate the key pair inside the PKCS#11 token (KERNEL_PKCS11_*), not extractable",
    )
    g.set_defaults(func=_generate)
    e = verbs.add_parser("export-signers", help="print signers.json for every key file")
    e.add_argument("--keys-dir", type=Path, help="default: KERNEL_STATE_DIR/keys")
    e.add_argument(
        "--pkcs11", action="store_true", help="add the PKCS#11 token's key (KERNEL_PKCS11_*)"
    )
    e.add_argument(
        "--from-log",
        action="store_true",
        help="add the keys the keys topic's rotations introduced, with validity windows "
        "and revocations (needs Kafka)",
    )
    e.add_argument(
        "--base",
        type=Path,
        help="an earlier signers.json whose keys are trusted too (a token's retired key)",
    )
    e.set_defaults(func=_export)
    r = verbs.add_parser(
        "rotate",
        help="hand every chain over to a new key: a rotation link, signed by the outgoing key",
    )
    r.add_argument("--to", required=True, metavar="SIGNER_ID", help="the incoming key's signerId")
    r.add_argument(
        "--public-key",
        help="the incoming key's base64 public key (default: its key file in --keys-dir)",
    )
    r.add_argument("--keys-dir", type=Path, help="default: KERNEL_STATE_DIR/keys")
    r.add_argument("--reason", default="scheduled rotation")
    r.add_argument(
        "--wait-s",
        type=float,
        default=15.0,
        help="how long a stopped signer may take to leave its group (default 15)",
    )
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=_rotate)
    v = verbs.add_parser("revoke", help="void a key's signatures from a position of each chain")
    v.add_argument("key", metavar="KEY", help="the signerId to revoke")
    v.add_argument(
        "--from",
        dest="positions",
        action="append",
        default=[],
        metavar="CHAIN@SEQ",
        help="the first seq of CHAIN (topic/partition, or '*' for every other chain) "
        "whose record KEY signed is void; repeatable",
    )
    v.add_argument(
        "--from-time",
        metavar="RFC3339",
        help="on every chain, from the first record KEY signed with event time at or after "
        "this (read from audit_events)",
    )
    v.add_argument(
        "--signed-by",
        metavar="SIGNER_ID",
        help="the key in force, which signs the revocation: its key file in KERNEL_STATE_DIR/keys "
        "(default: the configured signer)",
    )
    v.add_argument("--reason", default="key compromised")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.set_defaults(func=_revoke)


def _generate(args: argparse.Namespace, kernel: Kernel) -> int:
    if args.pkcs11:
        return _generate_in_token(args, kernel)
    keys_dir = args.keys_dir or kernel.settings.keys_dir
    signer_id = args.signer_id or kernel.settings.signer_id
    existing = key_path(keys_dir, signer_id)
    if args.if_missing and existing.exists():
        print(f"kept {existing} (signerId {load_signer(existing).signer_id})")
        return 0
    path = generate_key(keys_dir, signer_id)
    signer = load_signer(path)
    print(f"wrote {path} (signerId {signer.signer_id})")
    print(f"set KERNEL_SIGNING_KEY={path} for the chain signer")
    return 0


def _generate_in_token(args: argparse.Namespace, kernel: Kernel) -> int:
    from ops.pkcs11_config import token_config  # noqa: PLC0415
    from streams.chain.pkcs11_signer import generate_token_key  # noqa: PLC0415

    settings = kernel.settings
    if args.signer_id:
        settings = dataclasses.replace(settings, signer_id=args.signer_id)
    config = token_config(settings)
    public, created = generate_token_key(config, if_missing=args.if_missing)
    verb = "generated" if created else "kept"
    print(
        f"{verb} Ed25519 key {config.key_label!r} inside token {config.token_label!r} "
        f"(signerId {settings.signer_id}; sensitive, not extractable)"
    )
    print("its signers.json entry, for every verifier to trust:")
    print(json.dumps(signers_document([(settings.signer_id, public)])["signers"][0]))
    print("sign with it: KERNEL_SIGNER_BACKEND=pkcs11")
    return 0


def _export(args: argparse.Namespace, kernel: Kernel) -> int:
    keys_dir = args.keys_dir or kernel.settings.keys_dir
    signers = [load_signer(p) for p in key_files(keys_dir)]
    entries = [(s.signer_id, s.public_key) for s in signers]
    if args.pkcs11 or kernel.settings.signer_backend == "pkcs11":
        from ops.pkcs11_config import token_config  # noqa: PLC0415
        from streams.chain.pkcs11_signer import token_public_key  # noqa: PLC0415

        sid = kernel.settings.signer_id
        public = token_public_key(token_config(kernel.settings))
        if any(e[0] == sid and e[1] != public for e in entries):
            raise ConfigError(
                f"signerId {sid!r} names both a key file in {keys_dir} and the token's key; "
                f"give the token's key its own KERNEL_SIGNER_ID"
            )
        entries = [e for e in entries if e[0] != sid] + [(sid, public)]
    if args.base is not None:
        base = load_signers_file(args.base)
        entries += [(sid, v.public_key) for sid, v in base.items() if sid not in dict(entries)]
    if not args.from_log:
        print(json.dumps(signers_document(entries), indent=2))
        return 0
    history = _history(kernel, dict(entries))
    print(json.dumps(signers_document(history.signers(), history.windows), indent=2))
    return 0


def _history(kernel: Kernel, initial: dict[str, bytes]) -> KeyHistory:
    """The keys and windows the ``keys`` topic's records leave ``initial`` with."""
    reader = kernel.log_reader()
    try:
        topic = kernel.names.name("keys")
        events = [r.event for p in reader.partitions(topic) for r in reader.read(topic, p, 0)]
    finally:
        reader.close()
    return windows_from_log(initial, events)


def _rotate(args: argparse.Namespace, kernel: Kernel) -> int:
    from streams.chain.signer import ChainSigner  # noqa: PLC0415

    outgoing = kernel.signer()
    incoming = _incoming_key(args, kernel)
    _wait_for_stopped_signer(kernel, f"{kernel.names.prefix}{ChainSigner.name}", args.wait_s)
    processor = ChainSigner(
        outgoing, kernel.names.audited(), kernel.names.chain, _chain_partitions()
    )
    reader = kernel.log_reader()
    try:
        assigned = [(t, p) for t in kernel.names.audited() for p in reader.partitions(t)]
        state = processor.recover(assigned, reader)
    finally:
        reader.close()
    positions = rotation_positions(state.heads.values())
    body = rotation_body(outgoing, args.to, incoming, positions, args.reason)
    event = _key_event(outgoing.signer_id, args.to, body)
    kernel.codec.encode_checked(event)  # the door's check, before anything is sent
    _, links = processor.rotate(state, event)
    record = OutputRecord(kernel.names.name("keys"), event.subject.encode(), event)
    with kernel.producer(transactional_id=f"{kernel.names.prefix}kernel-keys") as producer:
        where = producer.publish_outputs_atomic([record, *links])[0]
    if args.json:
        print(json.dumps({"keyRotation": event.to_json(), "position": str(where)}, indent=2))
        return 0
    print(
        f"rotated {len(links)} chain(s) from {outgoing.signer_id!r} to {args.to!r} "
        f"(keyRotation {event.event_id} at {where})"
    )
    for chain, seq in positions.items():
        print(f"  {chain}: rotation link at seq {seq - 1}; {args.to} signs from seq {seq}")
    print(
        f"restart the chain signer and the checkpointer signing as {args.to!r} "
        "(KERNEL_SIGNING_KEY, or KERNEL_SIGNER_ID with PKCS#11); then "
        "`kernel keys export-signers --from-log > signers.json`"
    )
    return 0


def _wait_for_stopped_signer(kernel: Kernel, group: str, wait_s: float) -> None:
    """Refuse while the signer's group has a member: its links would fork a chain.

    Signer instances are static members (``group.instance.id``): a stopped one
    stays listed until its session times out (6 s), so a stopped signer is
    waited for, a running one (heartbeating) is refused.
    """
    offsets = kernel.offsets()
    deadline = time.monotonic() + wait_s
    while running := offsets.members([group]).get(group, 0):
        if time.monotonic() >= deadline:
            raise ConfigError(
                f"the chain signer is running ({running} member(s) of group {group} after "
                f"{wait_s:.0f}s): stop it first; a link it signed during the rotation "
                "would fork its chain"
            )
        time.sleep(0.5)


def _incoming_key(args: argparse.Namespace, kernel: Kernel) -> bytes:
    path = key_path(args.keys_dir or kernel.settings.keys_dir, args.to)  # checks the id
    if args.public_key:
        try:
            key = unb64(args.public_key)
        except ValueError as exc:
            raise ConfigError(f"--public-key is not base64: {exc}") from exc
        if len(key) != 32:
            raise ConfigError("--public-key must be a raw 32-byte Ed25519 key, base64")
        return key
    if not path.exists():
        raise ConfigError(
            f"no key file for {args.to!r} at {path}: create it with "
            f"`kernel keys generate --signer-id {args.to}`, or pass --public-key "
            "(a token's key: `kernel keys generate --pkcs11` prints it)"
        )
    return load_signer(path).public_key


def _revoke(args: argparse.Namespace, kernel: Kernel) -> int:
    in_force = (
        load_signer(key_path(kernel.settings.keys_dir, args.signed_by))
        if args.signed_by
        else kernel.signer()
    )
    positions: dict[str, int] = {}
    for text in args.positions:
        chain, sep, seq = text.rpartition("@")
        if not sep or not chain or not seq.isdigit():
            raise ConfigError(f"--from {text!r}: expected CHAIN@SEQ (kernel.actions/0@12, *@0)")
        positions[chain] = min(int(seq), positions.get(chain, int(seq)))
    if args.from_time:
        for chain, seq in _first_signed_at(kernel, args.key, args.from_time).items():
            positions[chain] = min(seq, positions.get(chain, seq))
    if not positions:
        raise ConfigError(
            "nothing to revoke from: name positions with --from CHAIN@SEQ ('*@0': all), or a "
            f"--from-time at or before a record {args.key!r} signed"
        )
    body = revocation_body(in_force, args.key, positions, args.reason)
    event = _key_event(in_force.signer_id, args.key, body)
    known = _history(kernel, {**_key_file_keys(kernel), in_force.signer_id: in_force.public_key})
    if args.key not in known.keys:
        raise ConfigError(f"{args.key!r} is not a key the chains know (key files, rotations)")
    if known.current is not None and known.current != in_force.signer_id:
        raise ConfigError(
            f"the key in force is {known.current!r} (the last rotation's), not "
            f"{in_force.signer_id!r}: sign the revocation with it (--signed-by {known.current})"
        )
    with kernel.producer() as producer:
        where = producer.publish(event, kernel.names.name("keys"))
    if args.json:
        print(json.dumps({"keyRotation": event.to_json(), "position": str(where)}, indent=2))
        return 0
    shown = ", ".join(f"{c}@{s}" for c, s in sorted(positions.items()))
    print(f"revoked {args.key!r} from {shown} (signed by {in_force.signer_id!r}; at {where})")
    print("re-verify: `kernel keys export-signers --from-log > signers.json`, then audit-verify")
    return 0


def _first_signed_at(kernel: Kernel, signer_id: str, text: str) -> dict[str, int]:
    from replay.audit_postgres import connect, first_signed_at  # noqa: PLC0415

    try:
        ts_ms = parse_ts(text)
    except ValidationError as exc:
        raise ConfigError(f"--from-time {text!r}: {exc}") from exc
    with connect(kernel.settings.database_url) as conn:
        return first_signed_at(conn, signer_id, ts_ms)


def _key_file_keys(kernel: Kernel) -> dict[str, bytes]:
    return {
        s.signer_id: s.public_key for s in map(load_signer, key_files(kernel.settings.keys_dir))
    }


def _key_event(actor: str, subject: str, body: dict[str, Any]) -> Event:
    return Event(
        event_id=str(uuid.uuid4()),
        event_type="keyRotation",
        ts_ms=now_ms(),
        actor=actor,
        subject=subject,
        body=body,
        schema_version=2,
    )


def _chain_partitions() -> int:
    from schemas.topics import TOPICS  # noqa: PLC0415

    return next(t.partitions for t in TOPICS if t.name == "audit.chain")
