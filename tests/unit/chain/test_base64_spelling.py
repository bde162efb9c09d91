"""A signature has exactly one base64 spelling (chain links, checkpoints, release manifests)."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.chain.signing import b64, unb64

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@given(st.binary(min_size=1, max_size=96))
def test_only_the_canonical_spelling_decodes(data: bytes) -> None:
    text = b64(data)
    assert unb64(text) == data
    unused = {1: 4, 2: 2, 0: 0}[len(data) % 3]  # low bits of the last character
    if not unused:
        return
    body = text.rstrip("=")
    last = ALPHABET.index(body[-1])
    for twin in range(last + 1, last + 2**unused):  # same decoded bits, unused ones set
        with pytest.raises(binascii.Error, match="not canonical"):
            unb64(body[:-1] + ALPHABET[twin] + text[len(body) :])
