"""RFC 6962 Merkle trees: against a literal transcription of the RFC's recursion."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.chain.merkle import (
    EMPTY_ROOT,
    CompactRange,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:  # RFC 9162 §2.1.1, verbatim
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:  # §2.1.3.1
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:  # §2.1.4.1
    if m == len(d):
        return [] if b else [mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def data(n: int) -> list[bytes]:
    return [hashlib.sha256(str(i).encode()).digest() for i in range(n)]


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def test_empty_and_single() -> None:
    assert CompactRange().root() == EMPTY_ROOT == mth([])
    assert root_of([leaf_hash(b"x")]) == mth([b"x"])


@given(st.integers(0, 300))
def test_compact_range_root_equals_rfc_root_at_every_size(n: int) -> None:
    d = data(n)
    rng = CompactRange()
    for i, x in enumerate(d):
        rng.append(x)
        if i in (0, n // 2, n - 1):
            assert rng.root() == mth(d[: i + 1])
    assert rng.size == n
    restored = CompactRange(rng.size, rng.subtrees)
    restored.append(b"next")
    assert restored.root() == mth([*d, b"next"])
    assert len(rng.subtrees) == n.bit_count()


def test_compact_range_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="subtrees"):
        CompactRange(3, [b"x" * 32])


@pytest.mark.parametrize("n", range(1, 34))
def test_inclusion_all_indices(n: int) -> None:
    d = data(n)
    leaves = [leaf_hash(x) for x in d]
    root = mth(d)
    for m in range(n):
        proof = inclusion_proof(m, leaves)
        assert proof == path(m, d)
        assert verify_inclusion(leaves[m], m, n, proof, root)
        assert len(proof) <= max(1, (n - 1).bit_length())


@pytest.mark.parametrize("n", range(1, 34))
def test_consistency_all_prefixes(n: int) -> None:
    d = data(n)
    leaves = [leaf_hash(x) for x in d]
    for m in range(0, n + 1):
        proof = consistency_proof(m, leaves)
        assert proof == ([] if m in (0, n) else subproof(m, d, True))
        assert verify_consistency(m, n, mth(d[:m]), mth(d), proof)


def test_inclusion_negative_classes() -> None:
    n, m = 21, 13
    d = data(n)
    leaves = [leaf_hash(x) for x in d]
    root, proof = mth(d), inclusion_proof(m, leaves)
    assert verify_inclusion(leaves[m], m, n, proof, root)
    for i in range(len(proof)):  # flipped bit in each proof hash
        for bit in (0, 131, 255):
            bad = list(proof)
            bad[i] = _flip(bad[i], bit)
            assert not verify_inclusion(leaves[m], m, n, bad, root)
    for wrong in (m - 1, m + 1, n, -1, 2 * n):  # wrong index
        assert not verify_inclusion(leaves[m], wrong, n, proof, root)
    # Wrong size: against the (signed) root of a tree of that size, the proof fails.
    # (With the *same* root some sizes of identical tree shape verify: the root,
    # not the size, is what binds; a checkpoint signs both together.)
    big = data(2 * n)
    for wrong in (n - 1, n + 1, m + 1, 2 * n):
        assert not verify_inclusion(leaves[m], m, wrong, proof, mth(big[:wrong]))
    for wrong in (m, 0, 2 * n, 1):  # and sizes that change the path's shape
        assert not verify_inclusion(leaves[m], m, wrong, proof, root)
    assert not verify_inclusion(leaves[m + 1], m, n, proof, root)  # wrong leaf
    assert not verify_inclusion(d[m], m, n, proof, root)  # leaf data, not leaf hash
    assert not verify_inclusion(leaves[m], m, n, [*proof, proof[0]], root)  # extra hash
    assert not verify_inclusion(leaves[m], m, n, proof[:-1], root)  # missing hash
    assert not verify_inclusion(leaves[m], m, n, [proof[0][:31], *proof[1:]], root)
    assert not verify_inclusion(leaves[m], m, n, proof, _flip(root, 7))


def test_consistency_negative_classes() -> None:
    for m, n in ((7, 21), (8, 21), (1, 2), (5, 6)):
        d = data(n)
        leaves = [leaf_hash(x) for x in d]
        old, new = mth(d[:m]), mth(d)
        proof = consistency_proof(m, leaves)
        assert verify_consistency(m, n, old, new, proof)
        for i in range(len(proof)):
            bad = list(proof)
            bad[i] = _flip(bad[i], 42)
            assert not verify_consistency(m, n, old, new, bad)
        big = data(n + 1)
        for mm, nn in ((m - 1, n), (m + 1, n), (m, n + 1), (m, n - 1), (n, m)):
            if mm < 0 or mm > len(big):
                continue
            old_w, new_w = mth(big[:mm]), mth(big[: min(nn, n + 1)])
            assert not verify_consistency(mm, nn, old_w, new_w, proof)
        assert not verify_consistency(n, m, old, new, proof)
        assert not verify_consistency(m, n, _flip(old, 1), new, proof)
        assert not verify_consistency(m, n, old, _flip(new, 1), proof)
        assert not verify_consistency(m, n, old, new, [*proof, proof[-1]])
        assert not verify_consistency(m, n, old, new, proof[1:])
    # A tree that does not extend the old one: same size, different last leaf.
    d = data(10)
    forked = [*d[:6], b"forged", *d[7:]]
    proof = consistency_proof(7, [leaf_hash(x) for x in forked])
    assert not verify_consistency(7, 10, mth(d[:7]), mth(forked), proof)
    assert not verify_consistency(3, 3, mth(d[:3]), mth(d[:3]), [mth(d[:1])])
    assert verify_consistency(0, 3, EMPTY_ROOT, mth(d[:3]), [])
    assert not verify_consistency(0, 3, EMPTY_ROOT, mth(d[:3]), [mth(d[:1])])


def test_node_hash_domain_separation() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) != leaf_hash(a + b)
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(3, [a, b])
    with pytest.raises(ValueError, match="prefix"):
        consistency_proof(3, [a, b])
