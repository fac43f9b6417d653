"""Host end of the device link: pyserial, frames, and the exactly-once PREPARE -> COMMIT dance.

Rules from DESIGN-NOTES sections 4-6 and reference ecosystem-and-reliability.md E2:

- the port is opened with ``exclusive=True`` (the daemon is the only owner);
- pyserial discards input on open, so every connection starts with a handshake (PING, INFO) and
  never relies on bytes the device sent before;
- a request that gets no answer in time is retransmitted *unchanged* (same sequence byte, same
  payload): the device replays its stored answer if it had executed it, so a retransmission never
  executes twice;
- if the link dies mid-COMMIT or mid-SEAL, the caller asks STATUS (by request id: the device
  answers it from the journal, also after its own power cut) instead of sealing blindly again.

Protocol 3 adds the country profile (PROFILE, PROFILE_READ), credit evidence (EVIDENCE), closures
(CLOSE, with the Z or M records of an M or Y packed into frames) and X (PROTOCOL.md 4.18-4.23).
"""

import errno
import os
import time

import serial

from protocol import batch, frames, messages
from protocol.errors import FiscalError, code_of, name_of
from hostd.intake import fastcbor
from hostd.link.discovery import permission_error
from hostd.errors import DeviceRefused, DeviceTimeout, DeviceUnavailable

CHUNK = frames.MAX_PAYLOAD - 64
FRAME_ERRORS = (code_of("FRAME_MALFORMED"), code_of("FRAME_OVERSIZE"), code_of("FRAME_CRC"))


class DeviceClient:
    def __init__(self, port, timeout=2.0, retries=2, on_sent=None):
        self.port = port
        self.on_sent = on_sent   # called with the message name once its frame is written
        self.timeout = timeout
        self.retries = retries
        self.decoder = frames.FrameDecoder()
        self.seq = int.from_bytes(os.urandom(1), "big")
        try:
            # write_timeout: a device that stops reading must not block the owner thread forever.
            self.serial = serial.Serial(port, 115200, timeout=0.05, write_timeout=timeout, exclusive=True)
        except (serial.SerialException, OSError) as exc:
            # pyserial wraps the os.open error as SerialException(errno, text): keep its errno.
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise permission_error(port)
            raise DeviceUnavailable("cannot open %s: %s" % (port, exc))
        self.info = None
        self.first_live = None
        self.awaited = set()   # sequence bytes of requests sent by ``start`` whose answers are unread
        self.early = {}        # sequence byte -> answer payload read while waiting for another one

    def close(self):
        self.serial.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _exchange(self, frame, seq, name):
        self._send(frame, name)
        return self._await(seq)

    def _send(self, frame, name):
        self._write(frame)
        if self.on_sent is not None:
            self.on_sent(name)

    def _await(self, seq):
        """The payload of the answer carrying ``seq``, or None when none came within the timeout.

        Answers to other requests still awaited (``self.awaited``: sent with ``start`` and not
        finished yet) are kept for their own ``_await``; any other sequence is a stale answer and
        dropped. One read may bring several answers: all of them are looked at."""
        if seq in self.early:
            return self.early.pop(seq)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                # read(4096) would wait out the whole timeout for an answer shorter than 4096 bytes:
                # take what has arrived, or block for the first byte (tools/bench measured 23x).
                data = self.serial.read(self.serial.in_waiting or 1)
            except (serial.SerialException, OSError) as exc:
                raise DeviceUnavailable("device link lost: %s" % exc)
            for kind, got_seq, item in self.decoder.feed(data):
                # A damaged frame is treated as no answer, so the retransmission gets the device's
                # stored answer again.
                if kind == "frame" and (got_seq == seq or got_seq in self.awaited):
                    self.early[got_seq] = item
            if seq in self.early:
                return self.early.pop(seq)
        return None

    def _write(self, data):
        try:
            self.serial.write(data)
        except (serial.SerialException, OSError) as exc:
            raise DeviceUnavailable("device link lost: %s" % exc)

    def call(self, name, **fields):
        """Send one request, wait for its answer, return the response fields by name.

        No answer, a damaged-frame answer (FRAME_*: our request was corrupted on the way) or an
        answer to another message all count as "no answer yet": the identical frame is sent again,
        which the device either executes (it never got it) or answers from its replay slot.
        """
        seq, frame = self._frame(name, fields)
        return self._answer(name, seq, frame, self._exchange(frame, seq, name))

    def start(self, name, **fields):
        """Send one request and return at once; ``finish`` waits for its answer.

        Several requests may be out at once (the owner pipelines SEAL_BATCH, hostd/owner/
        batching.py): the device executes frames in the order they arrive and answers each in
        turn, and answers read while waiting for another one are kept. Only the request sent last
        may be retransmitted, though: the device replays only the previous request's answer
        (device/link.py), so an earlier one sent again would execute again. ``finish`` of an
        earlier request with no usable answer within the timeout is DeviceTimeout at once."""
        seq, frame = self._frame(name, fields)
        self.awaited.add(seq)
        self._send(frame, name)
        return name, seq, frame

    def finish(self, started):
        """The response fields of a request ``start`` sent."""
        name, seq, frame = started
        payload = self._await(seq)
        self.awaited.discard(seq)
        return self._answer(name, seq, frame, payload, resend=seq == self.seq)

    def abandon(self, started):
        """Give up on a request ``start`` sent: its answer, when it comes, is dropped."""
        self.awaited.discard(started[1])
        self.early.pop(started[1], None)

    def _frame(self, name, fields):
        self.seq = self.seq % 255 + 1   # 1..255: seq 0 is what the device uses for unreadable frames
        return self.seq, frames.encode_frame(self.seq, messages.encode_request(name, **fields))

    def _answer(self, name, seq, frame, payload, resend=True):
        """The fields of the first usable answer, ``payload`` being the first try's; on silence
        the identical frame is sent again, up to ``retries`` times (never when ``resend`` is
        false: a request sent before the last one would execute again)."""
        for attempt in range(self.retries + 1):
            if attempt and not resend:
                break
            if attempt:
                payload = self._exchange(frame, seq, name)
            if payload is None:
                continue
            try:
                got, status, detail, answer = messages.decode_response(payload)
            except FiscalError as exc:
                raise DeviceUnavailable("device sent an unreadable answer: %s" % exc)
            if status in FRAME_ERRORS or got not in (name, None):
                continue
            if status != messages.OK:
                raise DeviceRefused(status, name_of(status), detail)
            return answer
        if not resend:
            raise DeviceTimeout("%s got no usable answer within %.1f s, and requests sent after it keep it from "
                                "being sent again" % (name, self.timeout))
        raise DeviceTimeout("%s got no answer within %d tries of %.1f s" % (name, self.retries + 1, self.timeout))

    # -- operations ----------------------------------------------------------------------------
    def handshake(self):
        # A previous owner may have died mid-frame: enough zero bytes complete any partial frame
        # (whose CRC then fails) so the device's decoder is resynchronised before our first request.
        self._write(b"\x00" * (frames.MAX_PAYLOAD + frames.HEADER_LEN + frames.CRC_LEN))
        probe = os.urandom(8)
        if self.call("PING", data=probe)["data"] != probe:
            raise DeviceUnavailable("device echoed the wrong PING data")
        self.info = self.call("INFO")
        return self.info

    def set_time(self, t=None):
        return self.call("SET_TIME", time=int(time.time()) if t is None else t)

    def _chunks(self, name, canonical, **fields):
        """Upload ``canonical`` in chunks of at most CHUNK bytes; the last chunk's answer."""
        total = len(canonical)
        offset = 0
        while True:
            chunk = canonical[offset:offset + CHUNK]
            answer = self.call(name, total=total, offset=offset, data=chunk, **fields)
            offset += len(chunk)
            if offset >= total:
                return answer

    def prepare(self, canonical, request_id):
        """PREPARE: a nonce, or ``sealed`` + ``replayed`` when the request id is sealed already."""
        return self._chunks("PREPARE", canonical, request_id=request_id)

    def commit(self, nonce):
        return self.call("COMMIT", nonce=nonce)

    def status(self, nonce=None, request_id=None):
        """STATUS by exactly one of ``nonce`` or ``request_id``."""
        if (nonce is None) == (request_id is None):
            raise ValueError("status() takes exactly one of nonce or request_id")
        if nonce is not None:
            return self.call("STATUS", nonce=nonce)
        return self.call("STATUS", request_id=request_id)

    def abort(self, nonce):
        return self.call("ABORT", nonce=nonce)

    def seal(self, request_id, canonical):
        """SEAL in one call (chunked when large); the sealed result. If the last chunk's fate is
        unknown, ask STATUS(request_id) instead of sealing again (the device dedupes anyway)."""
        try:
            return self._chunks("SEAL", canonical, request_id=request_id)["sealed"]
        except DeviceTimeout:
            answer = self.status(request_id=request_id)
            if answer["state"] == messages.COMMITTED:
                return answer["sealed"]
            raise

    def seal_batch_start(self, entries, pipelined=False):
        """SEAL_BATCH of [(request id, canonical invoice)] (PROTOCOL.md 4.24); ``seal_batch_finish``
        reads its answer. Every chunk but the last is sent and answered, unless ``pipelined``: then
        every chunk is only sent (behind a batch the device is still sealing), and their answers
        are read by ``seal_batch_finish``."""
        doc = batch.encode(entries)
        offset, acks = 0, []
        while len(doc) - offset > CHUNK:
            fields = {"total": len(doc), "offset": offset, "data": doc[offset:offset + CHUNK]}
            if pipelined:
                acks.append(self.start("SEAL_BATCH", **fields))
            else:
                self.call("SEAL_BATCH", **fields)
            offset += CHUNK
        return acks, self.start("SEAL_BATCH", total=len(doc), offset=offset, data=doc[offset:]), entries

    def seal_batch_finish(self, started):
        """The outcome of a SEAL_BATCH: {"outcomes": one per entry, ("sealed", sealed result,
        replayed) or ("refused", error name, detail); "first", "prev", "records": every record
        the batch wrote, in order; "in_answer": how many of them the answer itself carried}. The
        records the answer had no room for are read with READ_JOURNAL, the sealed result of an
        entry sealed before the batch with STATUS."""
        acks, token, entries = started
        try:
            for ack in acks:
                self.finish(ack)
        except (DeviceRefused, DeviceUnavailable):
            for left in acks + [token]:
                self.abandon(left)
            raise
        answer = self.finish(token)
        first, last, records = answer["first"], answer["last"], list(answer["records"])
        in_answer = len(records)
        while first + len(records) <= last:
            page = self.call("READ_JOURNAL", first=first + len(records), count=last + 1 - first - len(records))
            if not page["records"]:
                raise DeviceUnavailable("device holds no record %d the batch wrote" % (first + len(records)))
            records.extend(page["records"][:last + 1 - first - len(records)])
        try:
            sealed = batch.sealed_from(first, answer["prev"], records, fastcbor.decode_record)
        except FiscalError as exc:
            raise DeviceUnavailable("SEAL_BATCH answer does not hold its records: %s" % exc)
        outcomes = []
        for (rid, _), result in zip(entries, answer["results"]):
            if result[0] != messages.OK:
                outcomes.append(("refused", name_of(result[0]), result[1]))
            elif result[1] in sealed:
                outcomes.append(("sealed", sealed[result[1]], result[2]))
            else:   # sealed before the batch
                state = self.status(request_id=rid)
                if state["state"] != messages.COMMITTED:
                    raise DeviceUnavailable("device answered record %d for a request STATUS does not know"
                                            % result[1])
                outcomes.append(("sealed", state["sealed"], True))
        if len(outcomes) != len(entries):
            raise DeviceUnavailable("SEAL_BATCH answered %d results for %d entries" % (len(outcomes), len(entries)))
        return {"outcomes": outcomes, "first": first, "prev": answer["prev"], "records": records,
                "in_answer": in_answer}

    def seal_batch(self, entries):
        return self.seal_batch_finish(self.seal_batch_start(entries))

    def head(self, challenge=b""):
        """HEAD: the signed statement of the journal head, over ``challenge`` (0..64 bytes)."""
        return self.call("HEAD", challenge=challenge)

    def archived(self, seq, record_hash):
        """ARCHIVED(seq, hash): the device checkpoints and erases what is archived up to ``seq``."""
        return self.call("ARCHIVED", seq=seq, hash=record_hash)

    def records(self, first=1, limit=None):
        """Every journal record from ``first`` on (at most about ``limit``: whole pages of 64),
        paging through READ_JOURNAL. Records before the device's first_live were archived and
        erased: asking for them is RANGE_INVALID (a DeviceRefused naming first_live);
        ``first=None`` starts at first_live. ``self.first_live`` is what the device last reported."""
        if first is None:
            first = self.call("INFO")["first_live"]
        out = []
        while True:
            answer = self.call("READ_JOURNAL", first=first, count=64)
            self.first_live = answer["first_live"]
            out.extend(answer["records"])
            if answer["next"] > answer["last"] or not answer["records"] or (limit is not None and len(out) >= limit):
                return out
            first = answer["next"]

    # -- protocol 3: profile, credits, closures ---------------------------------------------------
    def install_profile(self, data):
        """PROFILE: install the country profile (canonical CBOR, protocol/profile_host.py) while no
        invoice is sealed; the same bytes again answer ``installed`` false."""
        return self.call("PROFILE", data=data)

    def read_profile(self):
        """PROFILE_READ: the installed profile's bytes (empty when none), id and hash."""
        return self.call("PROFILE_READ")

    def evidence(self, record_bytes, prev, credited, proof):
        """EVIDENCE: arm a credit of the original ``record_bytes`` (body || signature, previous
        record hash ``prev``) with what was credited so far and its credit-tree proof."""
        return self.call("EVIDENCE", record=record_bytes, prev=prev, credited=credited, proof=proof)

    def close_period(self, kind, period, records=()):
        """CLOSE: a Z (no records), or an M (Y) from the Z (M) records given, packed into as few
        frames as fit; the answer of the last frame carries the CLOSURE record, hash and seq."""
        records = [bytes(r) for r in records]
        if kind == "Z" or not records:
            return self.call("CLOSE", kind=kind, period=period, offset=0, records=records, last=True)
        budget = CHUNK - 32 - len(period.encode())
        offset, answer = 0, None
        while offset < len(records):
            chunk, size = [], 0
            while offset + len(chunk) < len(records):
                rec = records[offset + len(chunk)]
                if chunk and size + len(rec) + 3 > budget:
                    break
                chunk.append(rec)
                size += len(rec) + 3
            last = offset + len(chunk) == len(records)
            answer = self.call("CLOSE", kind=kind, period=period, offset=offset, records=chunk, last=last)
            offset += len(chunk)
        return answer

    def x(self):
        """X: the open period's figures (a Z body that is not written, key 22 = "X")."""
        return self.call("X")["figures"]
