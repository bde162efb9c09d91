"""``kernel keys generate | export-signers``: development signing keys.

Key files live under ``KERNEL_STATE_DIR/keys`` (outside the repository, mode
0600). ``export-signers`` prints the runbook's ``signers.json`` for every key
there, which is what ``kernel audit-verify --signers`` reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from streams.chain.keys import generate_key, key_files, key_path, load_signer, signers_document

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("keys", help="development signing keys of the audit chain")
    verbs = p.add_subparsers(dest="verb", required=True)
    g = verbs.add_parser("generate", help="create an Ed25519 key file (never overwrites)")
    g.add_argument("--signer-id", help="default: KERNEL_SIGNER_ID (kernel-signer)")
    g.add_argument("--keys-dir", type=Path, help="default: KERNEL_STATE_DIR/keys")
    g.add_argument(
        "--if-missing", action="store_true", help="succeed without change when the key exists"
    )
    g.set_defaults(func=_generate)
    e = verbs.add_parser("export-signers", help="print signers.json for every key file")
    e.add_argument("--keys-dir", type=Path, help="default: KERNEL_STATE_DIR/keys")
    e.set_defaults(func=_export)


def _generate(args: argparse.Namespace, kernel: Kernel) -> int:
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


def _export(args: argparse.Namespace, kernel: Kernel) -> int:
    keys_dir = args.keys_dir or kernel.settings.keys_dir
    signers = [load_signer(p) for p in key_files(keys_dir)]
    doc = signers_document([(s.signer_id, s.public_key) for s in signers])
    print(json.dumps(doc, indent=2))
    return 0
