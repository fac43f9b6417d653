"""The signer's fixed-base table read from a data file, so a board keeps its 61,440 bytes in flash.

device/p256_table.py holds the table as a bytes constant: imported on a board from a ``.py`` or a
non-frozen ``.mpy`` it is copied into RAM, which is 30% of a 200 KB heap. The board instead ships
the same bytes as ``p256_table.bin`` (``fiscal board deploy`` writes it from that constant and
checks its SHA-256) and the signer reads the one 64-byte entry it needs per window: at most 64
small reads per signature, served from littlefs's cache. The signer only needs ``len(table)`` and
``table[a:b]``, which is all this class provides.
"""


class TableFile:
    def __init__(self, path):
        self._fh = open(path, "rb")
        self._fh.seek(0, 2)
        self._len = self._fh.tell()
        self._buf = bytearray(64)

    def __len__(self):
        return self._len

    def __getitem__(self, index):
        start = index.start or 0
        stop = self._len if index.stop is None else index.stop
        if not 0 <= start <= stop <= self._len:
            raise IndexError("table slice %r:%r outside 0..%d" % (start, stop, self._len))
        n = stop - start
        buf = self._buf if n == 64 else bytearray(n)
        self._fh.seek(start)
        got = self._fh.readinto(buf)
        if got != n:
            raise OSError("short read of the fixed-base table at %d" % start)
        return bytes(buf)

    def close(self):
        self._fh.close()
