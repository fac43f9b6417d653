"""Frames over a byte stream: how device and host find message boundaries on USB CDC-ACM or a pty.

Why framing at all: a serial stream has no message boundaries, and CDC-ACM and ptys hand over
arbitrary chunks (one byte, half a frame, three frames and a bit).  Each frame therefore carries
a magic to resynchronise on, an explicit length, and a CRC-32 so that line noise, a host that was
killed mid-write or a reconnect never turns into a wrong message.  Payloads are canonical CBOR
(see protocol/cbor.py, RFC 8949 / RFC 7049 §3.9); this module does not look inside them.

Layout (all multi-byte fields big-endian)::

    offset   size  field
    0        2     magic 0xF1 0x5C
    2        1     version, always 1
    3        1     seq, 0..255, chosen by the sender, echoed by the responder
    4        2     L, payload length, 0..MAX_PAYLOAD (2048)
    6        L     payload
    6+L      4     CRC-32 (IEEE 802.3, as binascii.crc32) of bytes 2 .. 6+L-1,
                   i.e. version, seq, length and payload; the magic is not covered

Receiving rules (FrameDecoder): bytes before a magic are skipped and counted in ``skipped``.
A candidate frame with a version other than 1 (FRAME_MALFORMED), a length above max_payload
(FRAME_OVERSIZE, reported from the header alone so an absurd length never makes the receiver wait
for or buffer the payload) or a wrong CRC (FRAME_CRC) yields an error event; then only the first
byte of that candidate is dropped and the buffered bytes are scanned again, so a real frame that
followed garbage or a truncated frame is still found.  A frame behind a truncated one is found as
soon as enough bytes have arrived to complete the truncated candidate's declared length (at most
10 + max_payload bytes); after that the bad candidate fails its CRC.  Runs unchanged in MicroPython.
"""

import binascii

from protocol.errors import FrameError

MAGIC = b"\xf1\x5c"
VERSION = 1
HEADER_LEN = 6
CRC_LEN = 4
MAX_PAYLOAD = 2048


def _crc(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def encode_frame(seq, payload):
    """Return the frame carrying ``payload`` (bytes) with sequence number ``seq`` (0..255)."""
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= 255:
        raise FrameError("FRAME_MALFORMED", "seq %r is not an int in 0..255" % (seq,))
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise FrameError("FRAME_MALFORMED",
                         "payload must be bytes, not %s" % type(payload).__name__)
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise FrameError("FRAME_OVERSIZE", "payload of %d bytes exceeds MAX_PAYLOAD %d"
                         % (len(payload), MAX_PAYLOAD))
    body = bytes((VERSION, seq)) + len(payload).to_bytes(2, "big") + payload
    return MAGIC + body + _crc(body).to_bytes(4, "big")


class FrameDecoder:
    """Incremental frame finder: ``feed`` any chunk, get back the events it completed.

    Events are tuples, in stream order: ``("frame", seq, payload_bytes)`` for a frame whose CRC
    matched, ``("error", seq_or_None, FrameError)`` for a refused candidate (seq is None when the
    version is unknown, since the rest of such a header has no defined meaning).

    ``buf`` holds only the bytes that may still start or complete a frame: after every ``feed``
    it is shorter than one maximal frame (HEADER_LEN + max_payload + CRC_LEN), so memory stays
    bounded by that plus the size of the chunk being fed.  ``skipped`` counts bytes dropped
    silently while looking for a magic; the first byte of a refused candidate is not counted
    there since an error event already reported it.
    """

    def __init__(self, max_payload=MAX_PAYLOAD):
        self.max_payload = max_payload
        self.buf = bytearray()
        self.skipped = 0

    def feed(self, data):
        buf = self.buf
        buf.extend(data)
        end = len(buf)
        pos = 0
        events = []
        while True:
            i = buf.find(MAGIC, pos)
            if i < 0:
                # nothing to find, but a last 0xF1 may be the first half of a magic
                keep = end - 1 if end > pos and buf[end - 1] == MAGIC[0] else end
                self.skipped += keep - pos
                pos = keep
                break
            self.skipped += i - pos
            pos = i
            if end - pos < 3:
                break
            if buf[pos + 2] != VERSION:
                events.append(("error", None, FrameError(
                    "FRAME_MALFORMED", "unknown frame version %d" % buf[pos + 2])))
                pos += 1
                continue
            if end - pos < HEADER_LEN:
                break
            seq = buf[pos + 3]
            n = (buf[pos + 4] << 8) | buf[pos + 5]
            if n > self.max_payload:
                events.append(("error", seq, FrameError(
                    "FRAME_OVERSIZE", "frame %d declares %d payload bytes, limit %d"
                    % (seq, n, self.max_payload))))
                pos += 1
                continue
            body_end = pos + HEADER_LEN + n
            if end < body_end + CRC_LEN:
                break
            want = int.from_bytes(bytes(buf[body_end:body_end + CRC_LEN]), "big")
            if _crc(buf[pos + 2:body_end]) != want:
                events.append(("error", seq, FrameError(
                    "FRAME_CRC", "frame %d of %d payload bytes fails its CRC" % (seq, n))))
                pos += 1
                continue
            events.append(("frame", seq, bytes(buf[pos + HEADER_LEN:body_end])))
            pos = body_end + CRC_LEN
        if pos:
            # one copy per feed (MicroPython bytearrays do not support slice deletion)
            self.buf = buf[pos:]
        return events
