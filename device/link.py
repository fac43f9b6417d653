"""The device end of the byte stream: frames in, core, frames out, with sequence replay.

A frame whose sequence byte *and* payload equal the previous request's is a retransmission: the
host lost our answer (a timeout, a USB hiccup), so we send the stored answer again without
executing anything (the Datecs / Rwanda SDC / Belgian FDM rule). Matching the payload too, not
only the sequence byte, means a restarted host that happens to reuse a sequence number for a new
request is executed rather than fed a stale answer. Bad frames are answered with a typed error in
a frame carrying the sequence byte read from the header (0 when unknown), so the host can resend.
"""

from protocol import frames, messages


class Link:
    def __init__(self, core, max_payload=frames.MAX_PAYLOAD):
        self.core = core
        self.decoder = frames.FrameDecoder(max_payload)
        self._last_key = None
        self._last_answer = None
        self.replays = 0

    def idle(self):
        """The line went quiet: drop a partial frame, so a sender that died mid-frame cannot make
        the next good frame wait until the dead frame's declared length has been filled."""
        if self.decoder.buf:
            self.decoder = frames.FrameDecoder(self.decoder.max_payload)

    def feed(self, data, emit=None):
        """Bytes from the host -> bytes to send back (zero or more whole frames). With ``emit``,
        each answer is handed to ``emit`` as soon as it is made instead (and b"" returned): a host
        that pipelines finds the answer to one request while the next one executes."""
        out = []
        for kind, seq, item in self.decoder.feed(data):
            key = (seq, bytes(item)) if kind == "frame" else None   # at most MAX_PAYLOAD bytes kept
            if key is None:
                answer = frames.encode_frame(seq if seq is not None else 0, messages.encode_error(0, item))
            elif key == self._last_key:   # compared exactly
                self.replays += 1
                answer = self._last_answer
            else:
                answer = frames.encode_frame(seq, self.core.handle(item))
                self._last_key, self._last_answer = key, answer
            if emit is None:
                out.append(answer)
            else:
                emit(answer)
        return b"".join(out)
