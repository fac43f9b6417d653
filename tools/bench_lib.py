"""Floors for tools/bench: the cost of each thing one sealed invoice cannot avoid, measured alone.

Why: this machine is noisy, so an absolute invoices/s means little on its own. The bench measures
these floors in the same run as the end-to-end figures and reports ratios against them. Each floor
reproduces what the real stack does, no less and no more:

- the pure-Python signer the emulator runs (device/signer.py) on a ~300-byte record body, and
  OpenSSL's deterministic ECDSA (pyca/cryptography) for reference;
- a durable flash program: ``os.pwrite`` of 320 bytes + ``os.fdatasync`` into an existing file, as
  device/emu_flash.py does once per sealed record;
- a pty round trip: a child echoing on the master of a raw-mode pty (device/emulator.py's setup),
  through pyserial with the ``read(in_waiting or 1)`` idiom hostd/link/client.py uses; also raw
  ``os.read``/``os.write``, and pyserial ``read(4096)`` with ``timeout=0.05`` (it returns only when
  4096 bytes came or the timeout ran out: the trap hostd/link/client.py once fell into);
- an HTTP round trip over a unix socket to a trivial aiohttp app in its own process, driven by
  hostd/sdk/transport.py ``request()`` like the real bench;
- one SQLite commit with the daemon's settings (hostd/store/store.py: WAL, synchronous=FULL);
- for ``fiscal verify``: the bare ECDSA checks (hostd.books.keys.fast_verifier) of an export's
  records beside the whole load_export + verify_export of the same export (``verify_figures``).
- the single lane's five parts once more, each call after a sleep (``woken_floors``): reported
  beside the floors, for what a step costs when it has just been woken, as in the lane.
Nothing here asserts on time (docs/CONTRIBUTING.md).
"""

import hashlib
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tty

ECHO_CHILD = """
import os, sys
fd = int(sys.argv[1])
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    while data:
        data = data[os.write(fd, data):]
"""

HTTP_CHILD = """
import sys
from aiohttp import web
async def ping(request):
    return web.Response(body=b'{"status":"ok","code":"PONG"}', content_type="application/json")
app = web.Application()
app.add_routes([web.get("/ping", ping)])
web.run_app(app, path=sys.argv[1], print=None, access_log=None, handle_signals=True)
"""


def stats(durations, elapsed=None):
    """{n, rate, p50_ms, p99_ms, mean_ms} of per-call durations (s); rate is calls per second of
    ``elapsed`` (the whole loop's wall time: concurrent calls overlap) or of their sum."""
    ordered = sorted(durations)
    n = len(ordered)
    total = elapsed if elapsed is not None else sum(ordered)
    return {"n": n, "rate": n / total, "p50_ms": 1000 * ordered[n // 2],
            "p99_ms": 1000 * ordered[min(n - 1, int(n * 0.99))], "mean_ms": 1000 * sum(ordered) / n}


def timed(fn, seconds, least=5, most=100000, idle=0.0):
    """Call fn(i) for about ``seconds`` (at least ``least`` calls); stats of the calls. With
    ``idle`` each call follows a sleep of that many seconds (not timed), as each step of a single
    lane follows a wait for the step before it; the rate is then over the calls' own time."""
    durations = []
    start = time.perf_counter()
    while len(durations) < most:
        if idle:
            time.sleep(idle)
        t0 = time.perf_counter()
        fn(len(durations))
        t1 = time.perf_counter()
        durations.append(t1 - t0)
        if len(durations) >= least and t1 - start >= seconds:
            break
    return stats(durations, None if idle else time.perf_counter() - start)


def sign_floors(seconds, native=True, idle=0.0):
    """(pure-Python signer stats, cryptography stats or None without ``native``), on distinct
    300-byte bodies, same key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from device.signer import Signer

    secret = hashlib.sha256(b"tools/bench fixed key").digest()
    bodies = [hashlib.sha256(b"%d" % i).digest() * 9 + b"x" * 12 for i in range(64)]   # 300 bytes
    signer = Signer(secret)
    pure = timed(lambda i: signer.sign(bodies[i % 64]), seconds, idle=idle)
    if not native:
        return pure, None
    key = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
    algo = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    native = timed(lambda i: key.sign(bodies[i % 64], algo), seconds / 3)
    return pure, native


def fsync_floor(seconds, workdir, record=320, size=2 * 1024 * 1024, idle=0.0):
    """pwrite + fdatasync of ``record`` bytes at increasing offsets of a pre-made file (like flash.bin)."""
    path = os.path.join(workdir, "fsync-floor.bin")
    with open(path, "wb") as fh:
        fh.write(b"\xff" * size)
        fh.flush()
        os.fsync(fh.fileno())
    fd = os.open(path, os.O_RDWR)
    data = b"\x5a" * record
    try:
        def program(i):
            os.pwrite(fd, data, (i * 336) % (size - record))   # 336: the journal's aligned record step
            os.fdatasync(fd)
        return timed(program, seconds, idle=idle)
    finally:
        os.close(fd)
        os.unlink(path)


def sqlite_floor(seconds, workdir, idle=0.0):
    """One autocommitted INSERT with hostd/store/store.py's connection settings (WAL, synchronous=FULL)."""
    from hostd.store.store import connect

    path = os.path.join(workdir, "floor.sqlite")
    db = connect(path)
    db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    try:
        return timed(lambda i: db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (i, b"\0" * 300)), seconds,
                     idle=idle)
    finally:
        db.close()


def _echo_pty():
    master, slave = os.openpty()
    tty.setraw(slave)
    child = subprocess.Popen([sys.executable, "-c", ECHO_CHILD, str(master)], pass_fds=(master,))
    os.close(master)
    return child, slave


def pty_floors(seconds, size=300, idle=0.0):
    """{raw, pyserial_read4096, pyserial_in_waiting}: round trips of ``size`` bytes to an echo
    child; with ``idle``, only {pyserial_in_waiting}, each round trip after that long a sleep."""
    import serial

    child, slave = _echo_pty()
    msg = bytes(range(256)) + bytes(size - 256)
    try:
        def raw(i):
            os.write(slave, msg)
            got = 0
            while got < size:
                select.select([slave], [], [])
                got += len(os.read(slave, 4096))
        out = {} if idle else {"raw": timed(raw, seconds)}
        port = serial.Serial(os.ttyname(slave), 115200, timeout=0.05, exclusive=True)
        try:
            def read4096(i):   # the trap hostd/link/client.py once fell into: read(4096) waits out the timeout
                port.write(msg)
                got = 0
                while got < size:
                    got += len(port.read(4096))
            if not idle:
                out["pyserial_read4096"] = timed(read4096, seconds / 2, least=5, most=40)

            def waiting_read(i):   # the usual idiom: block for 1 byte, then take what has arrived
                port.write(msg)
                got = 0
                while got < size:
                    got += len(port.read(port.in_waiting or 1))
            out["pyserial_in_waiting"] = timed(waiting_read, seconds / 2, idle=idle)
        finally:
            port.close()
        return out
    finally:
        child.kill()
        child.wait()
        os.close(slave)


def http_floor(seconds, workdir, idle=0.0):
    """GET round trips over a unix socket to a trivial aiohttp app, via hostd.sdk.transport.request."""
    from hostd.sdk.transport import DaemonUnavailable, request

    path = os.path.join(workdir, "floor.sock")
    child = subprocess.Popen([sys.executable, "-c", HTTP_CHILD, path])
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if request(path, "GET", "/ping", timeout=2)[0] == 200:
                    break
            except DaemonUnavailable:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise
                time.sleep(0.05)
        return timed(lambda i: request(path, "GET", "/ping"), seconds, idle=idle)
    finally:
        child.terminate()
        child.wait(10)


def measure_floors(seconds):
    """Every floor, ~``seconds`` each (the signer gets more: it is the slowest per call)."""
    workdir = tempfile.mkdtemp(prefix="fiscal-bench-floor-")
    try:
        pure, native = sign_floors(seconds * 1.5)
        return {"sign_pure": pure, "sign_openssl": native, "fsync": fsync_floor(seconds, workdir),
                "sqlite_commit": sqlite_floor(seconds / 2, workdir), "pty": pty_floors(seconds),
                "http": http_floor(seconds, workdir)}
    finally:
        shutil.rmtree(workdir)


def woken_floors(seconds, idle):
    """The single lane's primitives again, each call after ``idle`` seconds asleep: in a lane
    every step waits for the one before it, and on this VM a call that follows a sleep is slower
    than one in a busy loop (a pwrite + fdatasync after 4 ms asleep took 0.33 ms against 0.12 ms
    back to back). Same keys as ``measure_floors`` where tools/bench's model reads them; reported
    beside the ratios, not in place of the floors (issue 15 defines those)."""
    workdir = tempfile.mkdtemp(prefix="fiscal-bench-woken-")
    try:
        return {"idle_s": idle, "sign_pure": sign_floors(seconds, native=False, idle=idle)[0],
                "fsync": fsync_floor(seconds, workdir, idle=idle),
                "sqlite_commit": sqlite_floor(seconds, workdir, idle=idle),
                "pty": pty_floors(2 * seconds, idle=idle), "http": http_floor(seconds, workdir, idle=idle)}
    finally:
        shutil.rmtree(workdir)


def signed_pairs(records):
    """[(signing input, signature)] of an export's records, as the verifier checks them: each
    record signs the chain hash before it (genesis for record 1, a checkpoint's own prev field for
    an export that starts at one) and its body, the record without its last 64 bytes."""
    from protocol import record

    fields = record.decode(records[0])[0]
    prev = record.genesis() if fields[record.K_SEQ] == 1 else fields[record.K_PREV]
    pairs = []
    for rec in records:
        pairs.append((record.signing_input(prev, rec[:-record.SIG_LEN]), rec[-record.SIG_LEN:]))
        prev = record.record_hash(prev, rec)
    return pairs


def verify_figures(export, seconds=2.0, most=3):
    """What ``fiscal verify`` costs on this export beside the bare signature checks it contains.

    ``full``: load_export + verify_export of the export bytes (what ``fiscal verify`` runs).
    ``bare``: only fast_verifier over the same records' signing inputs (``signed_pairs``). Passes
    alternate, so a noisy moment hits both, until ``seconds`` passed (1 to ``most`` each); the
    fastest pass of each counts, as noise only ever adds time. Returns (the export's summary,
    figures); raises the export's VerificationFailed when it does not verify."""
    from hostd.books import signatures
    from hostd.books.export import load_export, verify_export
    from hostd.books.keys import fast_verifier

    full, bare = [], []
    start = time.perf_counter()
    while not full or (len(full) < most and time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        doc = load_export(export)
        summary = verify_export(doc, workers=signatures.workers())
        full.append(time.perf_counter() - t0)
        if len(full) == 1:
            check = fast_verifier(bytes.fromhex(doc["public_key"]))
            pairs = signed_pairs([bytes.fromhex(r) for r in doc["records"]])
        t0 = time.perf_counter()
        for message, sig in pairs:
            if not check(message, sig):
                raise RuntimeError("bench: a record verify_export accepted fails the bare check")
        bare.append(time.perf_counter() - t0)
    n = len(pairs)
    return summary, {"records": n, "export_bytes": len(export), "passes": len(full),
                     "full_rate": n / min(full), "full_s": min(full), "bare_rate": n / min(bare), "bare_s": min(bare)}


def median_tree(docs):
    """Field-wise median of same-shaped dicts: numbers give their median, booleans are true only
    if true in every doc, anything else is the first doc's. Why: --runs N reports medians."""
    first = docs[0]
    if isinstance(first, dict):
        return {k: median_tree([d[k] for d in docs]) for k in first}
    if isinstance(first, bool):
        return all(docs)
    if isinstance(first, (int, float)):
        return statistics.median(docs)
    return first
