"""The host's archive of journal segments (issue 10): what the device may erase, kept first here.

Before the device may erase anything (ARCHIVED, PROTOCOL.md 4.17), the daemon writes the records
up to that point into an append-only segment file in its state directory (``archive/`` beside
the store), makes it durable (``fsync`` of the file, then of the directory: a rename or a new
file is only durable once its directory is, fsync(2)), and records the file's SHA-256, its seq
range and the hash of its last record in the store. Only then is the device told. The German TSE
refuses to delete what was not exported (``ErrorUnexportedStoredData``); so do we, on the host side
of the same rule.

Segment file layout (``journal-<first>-<last>.seg``): the 8 bytes ``FMDSEG1\\n``, then per record
a u32 big-endian length and the record (body || signature), oldest first; nothing after the last
record. The file's SHA-256 in the store catches a damaged or swapped file; the records themselves
verify with the device key like any export.
"""

import hashlib
import os
import struct

from hostd.store.files import write_durably

MAGIC = b"FMDSEG1\n"


class ArchiveError(Exception):
    """A segment file is missing, damaged or not what the store says (raised, never swallowed)."""


class Archive:
    def __init__(self, store, directory):
        self.store = store
        self.directory = directory

    def _conn(self):
        return self.store.conn()

    def segments(self):
        return self._conn().execute("SELECT * FROM archives ORDER BY first_seq").fetchall()

    def last_seq(self):
        return self._conn().execute("SELECT COALESCE(MAX(last_seq), 0) FROM archives").fetchone()[0]

    def acknowledged_seq(self):
        """The last seq the device confirmed it may erase (ARCHIVED answered)."""
        return self._conn().execute("SELECT COALESCE(MAX(last_seq), 0) FROM archives WHERE acknowledged=1").fetchone()[0]

    def write(self, first_seq, records, last_hash, now):
        """Write one durable segment of ``records`` (from ``first_seq``) and index it; return its row id."""
        last_seq = first_seq + len(records) - 1
        name = "journal-%010d-%010d.seg" % (first_seq, last_seq)
        path = os.path.join(self.directory, name)
        data = MAGIC + b"".join(struct.pack(">I", len(r)) + bytes(r) for r in records)
        write_durably(path, data)
        self._conn().execute("INSERT OR REPLACE INTO archives (first_seq, last_seq, file, sha256, last_hash, created, "
                             "acknowledged) VALUES (?, ?, ?, ?, ?, ?, 0)",
                             (first_seq, last_seq, name, hashlib.sha256(data).hexdigest(), last_hash, now))
        return first_seq

    def acknowledge(self, first_seq):
        self._conn().execute("UPDATE archives SET acknowledged=1 WHERE first_seq=?", (first_seq,))

    def read(self, row):
        """The records of one indexed segment, after checking the file against its SHA-256."""
        path = os.path.join(self.directory, row["file"])
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise ArchiveError("archive segment %s cannot be read: %s" % (path, exc))
        if hashlib.sha256(data).hexdigest() != row["sha256"] or not data.startswith(MAGIC):
            raise ArchiveError("archive segment %s does not match its SHA-256 in the store" % path)
        out, pos = [], len(MAGIC)
        while pos < len(data):
            (length,) = struct.unpack(">I", data[pos:pos + 4])
            out.append(data[pos + 4:pos + 4 + length])
            pos += 4 + length
        if len(out) != row["last_seq"] - row["first_seq"] + 1:
            raise ArchiveError("archive segment %s holds %d records, the store says %d"
                               % (path, len(out), row["last_seq"] - row["first_seq"] + 1))
        return out

    def records_before(self, seq):
        """Every archived record with a seq below ``seq``, oldest first: [(seq, record)]."""
        out = []
        for row in self.segments():
            if row["first_seq"] >= seq:
                break
            for i, rec in enumerate(self.read(row)):
                if row["first_seq"] + i < seq:
                    out.append((row["first_seq"] + i, rec))
        return out
