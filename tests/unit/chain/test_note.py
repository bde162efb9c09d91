"""C2SP signed notes and chain checkpoints: round trip and strict rejection."""

from __future__ import annotations

import base64
import hashlib

import pytest

from streams.chain.note import ChainCheckpoint, NoteError, key_hash, open_note, sign_note
from streams.chain.signing import LocalEd25519Signer, Verifier

SIGNER = LocalEd25519Signer(hashlib.sha256(b"note signer").digest(), "kernel-signer")
OTHER = LocalEd25519Signer(hashlib.sha256(b"other signer").digest(), "witness")
VERIFIERS = {"kernel-signer": Verifier(SIGNER.public_key)}
CP = ChainCheckpoint("kernel.actions/0", 5, hashlib.sha256(b"root").digest(), "ab" * 32)


def test_round_trip_and_format() -> None:
    note = CP.sign(SIGNER)
    lines = note.split("\n")
    assert lines[:4] == [
        "kernel.audit/kernel.actions/0",
        "5",
        base64.b64encode(CP.root).decode(),
        "head " + "ab" * 32,
    ]
    assert lines[4] == ""
    assert lines[5].startswith("\u2014 kernel-signer ")
    blob = base64.b64decode(lines[5].split(" ")[2])
    assert blob[:4] == hashlib.sha256(b"kernel-signer\n\x01" + SIGNER.public_key).digest()[:4]
    assert blob[:4] == key_hash("kernel-signer", SIGNER.public_key)
    assert Verifier(SIGNER.public_key).verify(CP.body().encode(), blob[4:])
    assert note.endswith("\n") and lines[6] == ""
    assert ChainCheckpoint.open(note, VERIFIERS) == (CP, ["kernel-signer"])


def test_empty_chain_checkpoint_has_no_head_line() -> None:
    empty = ChainCheckpoint("t/1", 0, hashlib.sha256(b"").digest(), "")
    assert empty.body().count("\n") == 3
    assert ChainCheckpoint.open(empty.sign(SIGNER), VERIFIERS)[0] == empty


def test_unknown_cosigner_is_ignored_known_one_must_verify() -> None:
    note = CP.sign(SIGNER)
    cosig = sign_note(CP.body(), OTHER).split("\n\n", 1)[1]
    assert ChainCheckpoint.open(note + cosig, VERIFIERS)[0] == CP
    with pytest.raises(NoteError, match="not signed by any key"):
        open_note(sign_note(CP.body(), OTHER), VERIFIERS)


def _reject(text: str, match: str | None = None) -> None:
    with pytest.raises(NoteError, match=match):
        ChainCheckpoint.open(text, VERIFIERS)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: "garbage\n" + n,  # preceding garbage
        lambda n: "\n" + n,
        lambda n: " " + n,
        lambda n: n + "garbage\n",  # trailing garbage
        lambda n: n + "\n",
        lambda n: n + "\u2014 x AAAA\n",
        lambda n: n[:-1],  # no final newline
        lambda n: n.replace("\n", "\r\n"),
        lambda n: n.replace("\n5\n", "\n6\n"),  # edited size
        lambda n: n.replace("\n5\n", "\n05\n"),
        lambda n: n.replace("head ab", "head ac"),  # edited head
        lambda n: n.replace("kernel.actions/0", "kernel.actions/1"),  # edited origin
        lambda n: n.replace("\u2014 ", "- "),  # not an em dash
        lambda n: n.replace("\n\n", "\n"),  # no blank line
    ],
)
def test_malformed_or_edited_notes_are_rejected(mutate: object) -> None:
    note = CP.sign(SIGNER)
    _reject(mutate(note))  # type: ignore[operator]


def test_flipped_signature_bits_are_rejected() -> None:
    note = CP.sign(SIGNER)
    body, sigline = note.split("\n\n")
    prefix, blob64 = sigline.rsplit(" ", 1)
    blob = base64.b64decode(blob64)
    for i in (0, 3, 4, 40, 67):
        bad = bytearray(blob)
        bad[i] ^= 0x10
        text = f"{body}\n\n{prefix} {base64.b64encode(bytes(bad)).decode()}\n"
        _reject(text)  # bytes 0-3: key hash no longer matches -> "not signed by any key"


def test_wrong_key_under_the_right_name_is_rejected() -> None:
    impostor = LocalEd25519Signer(hashlib.sha256(b"impostor").digest(), "kernel-signer")
    _reject(CP.sign(impostor), "not signed by any key")


def test_checkpoint_body_is_strict() -> None:
    root = base64.b64encode(CP.root).decode()
    for body in (
        f"other/x\n5\n{root}\n",
        f"kernel.audit/\n5\n{root}\n",
        f"kernel.audit/c\n-5\n{root}\n",
        f"kernel.audit/c\n5\n{root[:-4]}\n",
        f"kernel.audit/c\n5\n{root}\nhead XY\n",
        f"kernel.audit/c\n5\n{root}\n",  # size > 0 needs a head
        f"kernel.audit/c\n5\n{root}\nhead {'ab' * 32}\nmore\n",
    ):
        with pytest.raises(NoteError):
            ChainCheckpoint.parse(body)
