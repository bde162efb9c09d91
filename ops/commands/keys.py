"""``kernel keys generate | export-signers``: the signing keys of the audit chain.

Key files (development) live under ``KERNEL_STATE_DIR/keys`` (outside the
repository, mode 0600). ``generate --pkcs11`` creates the key pair inside the
configured PKCS#11 token instead (``KERNEL_PKCS11_*``; production), where it
cannot be exported, and prints its ``signers.json`` entry. ``export-signers``
prints the runbook's ``signers.json`` for every key file there, plus the token's
key with ``--pkcs11`` (or ``KERNEL_SIGNER_BACKEND=pkcs11``), which is what
``kernel audit-verify --signers`` reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from schemas.errors import ConfigError
from streams.chain.keys import generate_key, key_files, key_path, load_signer, signers_document

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
    e.set_defaults(func=_export)


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
    print(json.dumps(signers_document(entries), indent=2))
    return 0
