"""Merkle trees over record hashes (RFC 6962 section 2.1, RFC 9162 section 2.1): closure roots and
inclusion proofs.

A CLOSURE record carries the root over the record hashes of its period (PROTOCOL.md 7.10), so one
receipt can be shown to belong to a closed day with a path of about log2(n) hashes, without the
journal. Leaves are SHA-256(0x00 || record hash), nodes SHA-256(0x01 || left || right), the tree of
n leaves splits at the largest power of two below n, and the empty tree's root is SHA-256 of
nothing (RFC 6962 MTH).

``Stream`` computes a root with an O(log n) stack while the device reads its records from flash
one by one (MicroPython). ``root``, ``path`` and ``verify`` are the host's and the verifier's:
``path`` is RFC 6962 PATH(m, D[n]), ``verify`` the algorithm of RFC 9162 2.1.3.2.
"""

import hashlib


def leaf(data):
    return hashlib.sha256(b"\x00" + bytes(data)).digest()


def node(left, right):
    h = hashlib.sha256(b"\x01")
    h.update(left)
    h.update(right)
    return h.digest()


def empty():
    return hashlib.sha256(b"").digest()


class Stream:
    """Root of a sequence of leaves given one at a time: a stack of (size, hash) of perfect
    subtrees of decreasing size, merged while the top two are equal, folded right to left at
    the end (that is the RFC 6962 split)."""

    def __init__(self):
        self.stack = []
        self.count = 0

    def add(self, data):
        size, h = 1, leaf(data)
        while self.stack and self.stack[-1][0] == size:
            h = node(self.stack.pop()[1], h)
            size *= 2
        self.stack.append((size, h))
        self.count += 1

    def root(self):
        if not self.stack:
            return empty()
        h = self.stack[-1][1]
        for i in range(len(self.stack) - 2, -1, -1):
            h = node(self.stack[i][1], h)
        return h


def _split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(leaves):
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node(_mth(leaves[:k]), _mth(leaves[k:]))


def root(items):
    """Root over a list of record hashes."""
    return _mth([leaf(x) for x in items]) if items else empty()


def path(items, m):
    """The inclusion proof (audit path, RFC 6962 2.1.1) of item ``m`` among ``items``."""
    if not 0 <= m < len(items):
        raise ValueError("index %d outside a tree of %d" % (m, len(items)))
    leaves = [leaf(x) for x in items]
    out = []

    def walk(lo, hi):
        if hi - lo == 1:
            return
        k = _split(hi - lo)
        if m < lo + k:
            walk(lo, lo + k)
            out.append(_mth(leaves[lo + k:hi]))
        else:
            walk(lo + k, hi)
            out.append(_mth(leaves[lo:lo + k]))
    walk(0, len(items))
    return out


def verify(item, m, n, proof, want):
    """Whether ``proof`` shows item ``m`` of ``n`` under root ``want`` (RFC 9162 2.1.3.2)."""
    if not 0 <= m < n:
        return False
    fn, sn, r = m, n - 1, leaf(item)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == want
