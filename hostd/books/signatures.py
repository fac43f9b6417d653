"""Signature checks beside the walk: a long export's ECDSA checks run in a second process while
this one decodes and checks its records (issue 15: ``fiscal verify`` at >= 0.85x the bare rate).

Why a process: pyca/cryptography holds the GIL while it verifies (two threads measured as slow as
one), so only another process overlaps the two halves of the work: on two cores a valid export
costs about its signature checks alone instead of checks plus decoding.

Why deferring a check is safe: the walk (protocol/verify.py ``step``) never depends on what a
signature check answers except to stop there. ``Deferred.check`` answers True at once and queues
the pair; the queued pairs go to the worker in slices of SLICE. When any queued check fails, or
the walk itself fails, the caller walks the export again the reference way, one record after the
other with the checks in line (hostd/books/export.py ``verify_export``), so the refusal is exactly
the one a sequential walk names: the first bad record, whether its signature or anything else is
wrong. A valid export costs one walk, a bad one two.

Only the CLI asks for this (``workers()``); a library caller, the daemon and the authority walk
sequentially, in their own process.
"""

import concurrent.futures
import multiprocessing
import os
import threading

from hostd.books.keys import fast_verifier

PARALLEL_MIN = 4096   # records: below this, starting a worker (~20 ms) costs more than it saves
SLICE = 1024          # pairs per message to the worker: large enough that pickling is noise
FIRST_SLICE = 128     # the first is small, so the worker starts early

_checks = {}          # in the worker: public key -> its fast verifier, built once


def workers():
    """Worker processes ``fiscal verify`` uses: one on a machine with two cores or more, else none."""
    return 1 if (os.cpu_count() or 1) > 1 else 0


def _first_bad(public_key, pairs):
    """In the worker: the offset in ``pairs`` of the first (message, signature) that fails, or None."""
    check = _checks.get(public_key)
    if check is None:
        check = _checks[public_key] = fast_verifier(public_key)
    for offset, (message, signature) in enumerate(pairs):
        if not check(message, signature):
            return offset
    return None


class Deferred:
    """A verify_sig for protocol.verify that queues its checks for a worker process; use as a
    context manager, then ``all_good()`` once the walk is over."""

    def __init__(self, public_key):
        self.public_key = bytes(public_key)
        self.pairs = []
        self.slices = []      # [future, pairs, pairs sent up to and including these]
        self.sent = 0
        self.finished = 0     # slices[:finished] came back from the worker (their pairs dropped)
        self.confirmed = 0    # pairs in them
        # fork is ~20 ms and safe in a one-thread process (the CLI); forkserver otherwise
        method = "fork" if threading.active_count() == 1 else "forkserver"
        self.executor = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for future, _, _ in self.slices:
            if future is not None:
                future.cancel()
        self.executor.shutdown(wait=True, cancel_futures=True)
        return False

    def check(self, message, signature):
        self.pairs.append((bytes(message), bytes(signature)))
        if len(self.pairs) >= (SLICE if self.slices else FIRST_SLICE):
            self._send()
        return True

    def _send(self):
        if self.pairs:
            self.sent += len(self.pairs)
            self.slices.append([self.executor.submit(_first_bad, self.public_key, self.pairs), self.pairs, self.sent])
            self.pairs = []

    def checked(self):
        """How many queued signatures the worker has verified so far (in order; for a progress
        bar). A cursor, so asking after every record stays linear; a slice that came back needs
        its pairs no more (only a slice the worker never started is checked here)."""
        while self.finished < len(self.slices) and self.slices[self.finished][0].done():
            piece = self.slices[self.finished]
            piece[1] = None
            self.confirmed = piece[2]
            self.finished += 1
        return self.confirmed

    def all_good(self, check, progress=None):
        """Whether every queued signature verifies. The walk is over, so this process helps: it
        takes slices the worker has not started from the end with ``check`` (the same verifier),
        while the worker goes on from the front; then it waits for the worker's, calling
        ``progress`` with the number checked as each comes back."""
        self._send()
        for piece in reversed(self.slices):
            if piece[1] is None or not piece[0].cancel():
                break   # the worker has it (or had it): every earlier slice is the worker's too
            if not all([check(message, signature) for message, signature in piece[1]]):
                return False
            piece[0] = None
        for future, _, upto in self.slices:
            if future is not None and future.result() is not None:
                return False
            if progress is not None:
                progress(upto)
        return True
