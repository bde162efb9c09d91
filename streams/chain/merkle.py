"""RFC 6962 / RFC 9162 Merkle trees over a chain's record hashes.

Leaves are the chain's records in ``seq`` order; a leaf's data is the raw
32-byte record hash (``bytes.fromhex(hash)``)::

    leaf(d)     = SHA-256(0x00 || d)
    node(l, r)  = SHA-256(0x01 || l || r)
    MTH({})     = SHA-256("")
    MTH(D[n])   = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of 2 < n

:class:`CompactRange` is what a streaming signer keeps: the roots of the
perfect subtrees that make up the tree so far (one per set bit of the size, at
most 64 hashes), so appending is amortised O(1) and a checkpoint's root is
O(log n) -- never a recomputation from the first record.

Proofs follow RFC 9162 §2.1.3 (inclusion) and §2.1.4 (consistency): O(log n)
hashes each. Generation (for ``kernel audit-prove``) takes the leaf hashes and
is O(n) hashing; verification takes only the proof, the root(s) and sizes.
Verifiers return False on any mismatch and never raise on hostile input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


class CompactRange:
    """The Merkle tree of everything appended so far, in O(log n) memory."""

    __slots__ = ("_size", "_stack")

    def __init__(self, size: int = 0, subtrees: Sequence[bytes] = ()) -> None:
        if size < 0 or len(subtrees) != size.bit_count():
            raise ValueError(f"a compact range of size {size} has {size.bit_count()} subtrees")
        self._size = size
        self._stack = list(subtrees)  # left to right, largest subtree first

    @property
    def size(self) -> int:
        return self._size

    @property
    def subtrees(self) -> tuple[bytes, ...]:
        """The state to persist: with :attr:`size` it restores the range."""
        return tuple(self._stack)

    def append(self, data: bytes) -> None:
        """Append one leaf's data (a record's raw 32-byte hash)."""
        self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, h: bytes) -> None:
        stack = self._stack
        size = self._size
        # Each trailing 1 bit of the old size is a same-height subtree to merge with.
        while size & 1:
            h = node_hash(stack.pop(), h)
            size >>= 1
        stack.append(h)
        self._size += 1

    def root(self) -> bytes:
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1]
        for s in reversed(self._stack[:-1]):
            r = node_hash(s, r)
        return r


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf *hashes* (already :func:`leaf_hash`-ed)."""
    rng = CompactRange()
    for h in leaves:
        rng.append_leaf_hash(h)
    return rng.root()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 §2.1.3.1, over leaf hashes."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of size {len(leaves)}")
    proof: list[bytes] = []
    lo, hi, m = 0, len(leaves), index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            proof.append(root_of(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root_of(leaves[lo : lo + k]))
            lo, m = lo + k, m - k
    proof.reverse()  # the recursion appends outermost first; the path is leaf-first
    return proof


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1, over leaf hashes."""
    n = len(leaves)
    if not 0 <= old_size <= n:
        raise ValueError(f"size {old_size} is not a prefix of a tree of size {n}")
    if old_size in (0, n):
        return []
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(root_of(leaves[lo + k : hi]))
            hi = lo + k
        else:
            proof.append(root_of(leaves[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(root_of(leaves[lo:hi]))
    proof.reverse()
    return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2; ``leaf`` is the leaf *hash*."""
    if not 0 <= index < size or any(len(p) != 32 for p in proof):
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, with the trivial cases (old size 0 or equal sizes) made explicit."""
    if not 0 <= old_size <= new_size or any(len(p) != 32 for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof  # the empty tree is a prefix of every tree
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a subtree
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
