"""The credit tree: a sparse Merkle tree of what has been credited against each original invoice.

Why (DESIGN-NOTES invariant 11, issue 11): a credit must never exceed what it credits, per tax
group, also after the original's records were archived and erased, and a host replaying stale
evidence must not be able to over-refund. The device cannot keep a balance per invoice in RAM or
in every checkpoint, so it keeps one 32-byte root; the host keeps the leaves and proves a leaf with
a path. Any change of any leaf changes the root, so old evidence never verifies again.

Layout (PROTOCOL.md 7.9): depth 32, the key is the original's fiscal counter (bit 31 chooses at
the root, bit 0 at the leaves). A leaf is SHA-256("FMDSMT1L" || canonical CBOR of the credited
``[[code, base, tax], ...]`` so far, sorted by code); a key never credited holds the leaf of ``[]``.
A node is SHA-256("FMDSMT1N" || left || right). ``default(i)`` is the hash of an empty subtree of
height i (``default(0)`` the empty leaf). A proof is a 4-byte big-endian bitmap (bit i set: the
sibling at height i is not ``default(i)``) followed by those siblings, lowest first, 32 bytes each.

Shared by the device (MicroPython: verify a proof, compute the root after a credit) and the host
(``Tree``: the leaves, the non-default nodes, proofs). The default hashes are computed on first use.
"""

import hashlib

from protocol import cbor

DEPTH = 32
LEAF_TAG = b"FMDSMT1L"
NODE_TAG = b"FMDSMT1N"
_DEFAULTS = []


def leaf(credited):
    """Leaf hash of the credited list ``[[code, base, tax], ...]`` (sorted by code)."""
    return hashlib.sha256(LEAF_TAG + cbor.encode(credited)).digest()


def node(left, right):
    h = hashlib.sha256(NODE_TAG)
    h.update(left)
    h.update(right)
    return h.digest()


def default(height):
    """Hash of an empty subtree of ``height`` (0: the leaf of ``[]``; DEPTH: the empty root)."""
    if not _DEFAULTS:
        h = leaf([])
        for _ in range(DEPTH + 1):
            _DEFAULTS.append(h)
            h = node(h, h)
    return _DEFAULTS[height]


def empty_root():
    return default(DEPTH)


def proof_siblings(proof):
    """The 32 siblings (lowest first) a proof stands for; ValueError when it is malformed."""
    if len(proof) < 4:
        raise ValueError("a proof starts with a 4-byte bitmap")
    bitmap = int.from_bytes(proof[:4], "big")
    out = []
    at = 4
    for height in range(DEPTH):
        if bitmap >> height & 1:
            if at + 32 > len(proof):
                raise ValueError("the proof lacks the sibling at height %d" % height)
            out.append(bytes(proof[at:at + 32]))
            at += 32
        else:
            out.append(default(height))
    if at != len(proof):
        raise ValueError("the proof has %d bytes after its siblings" % (len(proof) - at))
    return out


def root_of(key, leaf_hash, siblings):
    """The root a leaf at ``key`` gives with these siblings (from proof_siblings)."""
    h = leaf_hash
    for height in range(DEPTH):
        if key >> height & 1:
            h = node(siblings[height], h)
        else:
            h = node(h, siblings[height])
    return h


class Tree:
    """The host's copy (CPython; MicroPython works too): leaves by key and the non-default
    nodes, so a proof costs DEPTH lookups and an update DEPTH hashes."""

    def __init__(self):
        self.leaves = {}    # key -> credited list
        self.nodes = {}     # (height, key >> height) -> hash, non-default only

    def _get(self, height, index):
        return self.nodes.get((height, index), default(height))

    def root(self):
        return self._get(DEPTH, 0)

    def credited(self, key):
        return self.leaves.get(key, [])

    def set(self, key, credited):
        """Store the credited list of ``key`` and update the path to the root."""
        self.leaves[key] = credited
        h = leaf(credited)
        for height in range(DEPTH + 1):
            index = key >> height
            if h == default(height):
                self.nodes.pop((height, index), None)
            else:
                self.nodes[(height, index)] = h
            if height == DEPTH:
                break
            sibling = self._get(height, index ^ 1)
            h = node(sibling, h) if index & 1 else node(h, sibling)
        return self.root()

    def proof(self, key):
        """The proof of ``key``'s leaf: bitmap then the non-default siblings, lowest first."""
        bitmap, parts = 0, []
        for height in range(DEPTH):
            sibling = (height, (key >> height) ^ 1)
            if sibling in self.nodes:
                bitmap |= 1 << height
                parts.append(self.nodes[sibling])
        return bitmap.to_bytes(4, "big") + b"".join(parts)
