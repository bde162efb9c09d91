"""``kernel release`` and ``kernel verify-release``: signed release artifacts.

``release`` builds the sdist, the wheel and the image build context of a commit
into an empty directory and signs their manifest with the release key
(:mod:`ops.release`). ``verify-release MANIFEST`` checks the manifest against a
trusted ``signers.json`` (or one public key), then every artifact's size and
SHA-256, and that the directory holds nothing unsigned
(:mod:`replay.release_manifest`). Exit 0 verified, 1 a check failed, 2 error.
See docs/releasing.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ops.bootstrap import Kernel
from ops.commands import Subparsers
from ops.release import build_release, release_signer
from replay.release_manifest import verify_release
from schemas.errors import ConfigError
from streams.chain.errors import SignerError
from streams.chain.keys import load_signers_file, signers_document
from streams.chain.signing import Verifier, unb64

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    r = sub.add_parser(
        "release", help="build the wheel, sdist and image context of a commit; sign the manifest"
    )
    r.add_argument("--out", type=Path, default=Path("dist/release"), help="an empty directory")
    r.add_argument("--commit", default="HEAD", help="what to release (default HEAD)")
    r.add_argument("--repo", type=Path, default=Path(), help="the git checkout (default .)")
    r.set_defaults(func=_release)
    v = sub.add_parser("verify-release", help="check a release manifest, its signer, its artifacts")
    v.add_argument("manifest", type=Path, help="release-manifest.json")
    trust = v.add_mutually_exclusive_group(required=True)
    trust.add_argument("--signers", type=Path, help="signers.json of the trusted release keys")
    trust.add_argument("--public-key", help="the trusted release key, base64 raw Ed25519")
    v.add_argument(
        "--signer-id", default="kernel-release", help="with --public-key (default kernel-release)"
    )
    v.add_argument("--dir", type=Path, help="where the artifacts are (default: the manifest's)")
    v.set_defaults(func=_verify)


def _release(args: argparse.Namespace, kernel: Kernel) -> int:
    signer = release_signer(kernel.settings)
    try:
        release = build_release(args.repo, args.out, signer, commit=args.commit)
    finally:
        close = getattr(signer, "close", None)
        if callable(close):
            close()
    body = release.body
    print(f"release {body['project']} {body['version']} of commit {body['commit']}")
    if _dirty(args.repo):
        print("note: the checkout has uncommitted changes; they are not in the release")
    for a in body["artifacts"]:
        print(f"  {a['name']}  {a['size']} bytes  sha256 {a['sha256']}")
    print(f"signed by {body['signerId']}: {release.manifest}")
    print("the key to verify it with (signers.json):")
    print(json.dumps(signers_document([(signer.signer_id, signer.public_key)])))
    return 0


def _verify(args: argparse.Namespace, kernel: Kernel) -> int:
    if args.signers is not None:
        trusted = load_signers_file(args.signers)
    else:
        try:
            trusted = {args.signer_id: Verifier(unb64(args.public_key))}
        except (ValueError, SignerError) as exc:
            raise ConfigError(f"--public-key is not a base64 Ed25519 key: {exc}") from exc
    report = verify_release(args.manifest, trusted, args.dir)
    for line in report.checked:
        print(f"ok    {line}")
    for line in report.problems:
        print(f"FAIL  {line}", file=sys.stderr)
    if not report.ok:
        print(f"release NOT verified: {args.manifest}", file=sys.stderr)
        return 1
    body = report.body
    print(
        f"release verified: {body['project']} {body['version']} of commit {body['commit']}, "
        f"signed by {body['signerId']}"
    )
    return 0


def _dirty(repo: Path) -> bool:
    done = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    )
    return bool(done.stdout.strip())
