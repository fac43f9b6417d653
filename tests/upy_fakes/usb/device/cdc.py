"""Fake ``usb.device.cdc.CDCInterface`` with the real class's stream contract, and a scripted host.

Contract of micropython-lib's CDCInterface kept here: ``readinto`` returns None when nothing
arrived before ``timeout`` ms, and otherwise at most what the 64-byte bulk endpoint delivered;
``write`` returns a *partial* count (possibly 0) when its buffer stays full. ``HOST`` is an object
with ``next_chunk(sent)`` (bytes for the device, or None when idle, given all bytes the device sent
so far) and ``done()``; ``ACCEPT`` cycles through how many bytes each write call takes.
"""

HOST = None
ACCEPT = [0, 7, 64, 1000]
RAISE_NEXT = False          # set by the host: the next readinto raises OSError, as a driver fault
INSTANCES = []


class CDCInterface:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.timeout = kwargs.get("timeout", 1000)
        self.sent = bytearray()
        self.pending = b""
        self.writes = 0
        self.partial_writes = 0
        self.idle_reads = 0
        INSTANCES.append(self)

    def readinto(self, buf):
        global RAISE_NEXT
        if RAISE_NEXT:
            RAISE_NEXT = False
            raise OSError(5, "fake USB driver fault")
        if not self.pending:
            chunk = HOST.next_chunk(bytes(self.sent))
            if chunk is None:
                self.idle_reads += 1
                return None
            self.pending = chunk
        n = min(len(buf), 64, len(self.pending))
        buf[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def write(self, buf):
        take = ACCEPT[self.writes % len(ACCEPT)]
        self.writes += 1
        n = min(take, len(buf))
        if n < len(buf):
            self.partial_writes += 1
        self.sent.extend(bytes(buf[:n]))
        return n

    def is_open(self):
        return True
