"""The real stack for tools/bench and tools/bench_scale: `fiscal up` as a child, and the POS calls
they time against it.

Why not hostd.cli.demo.start_up: it relays the child's stderr through a thread of *this* process
(hostd/daemon/supervisor.py StderrRelay), so every access-log line of the daemon would be decoded
and printed by the process whose clients are being timed, and would land in the bench's own
output. Here `fiscal up` writes stdout and stderr straight into a log file in its profile, and we
know it is up when its socket answers.

Every call that does not get the answer a POS needs (a sealed 200, each batch item 200, a GET 200)
raises BenchError naming the request: a bench that timed errors would report nonsense.
"""

import json
import os
import resource
import subprocess
import sys
import threading
import time

from hostd.sdk.transport import DaemonUnavailable, call_json, request
from tools.bench_lib import stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "samples", "invoice-002-services.json")
STATUS = "/api/v1/outlets/local/status"
JSON = {"Content-Type": "application/json"}


class BenchError(Exception):
    """The stack did not answer what a POS needs; the message says which request and what came back."""


class Up:
    """One `fiscal up` on ``profile`` (emulator + daemon), its output in PROFILE/up.log."""

    def __init__(self, profile, journal_kib):
        self.profile = profile
        self.socket = os.path.join(profile, "api.sock")
        self.log = os.path.join(profile, "up.log")
        self.journal_kib = journal_kib
        self.proc = None

    def start(self, timeout=60.0):
        """Spawn it and wait until the device is ready; (seconds to socket served, seconds to ready)."""
        args = [sys.executable, "-m", "hostd", "up", "--profile", self.profile, "--socket", self.socket,
                "--journal-kib", str(self.journal_kib)]
        with open(self.log, "ab") as out:
            t0 = time.perf_counter()
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        served = ready = None
        deadline = time.monotonic() + timeout
        while ready is None:
            try:
                payload = call_json(self.socket, "GET", STATUS, timeout=5)[1]["payload"]
                served = served or time.perf_counter() - t0
                if payload.get("device_state") == "ready":
                    ready = time.perf_counter() - t0
            except DaemonUnavailable:
                pass   # not serving yet: the socket does not exist or does not accept yet
            if ready is None:
                if self.proc.poll() is not None:
                    raise BenchError("fiscal up exited with %s before its device was ready; log %s:\n%s"
                                     % (self.proc.returncode, self.log, self.tail()))
                if time.monotonic() > deadline:
                    raise BenchError("device not ready after %.0f s; log %s:\n%s" % (timeout, self.log, self.tail()))
                time.sleep(0.02)
        return served, ready

    def stop(self, grace=20.0):
        """SIGTERM (the daemon closes its store and the emulator cleanly), SIGKILL after ``grace``."""
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def emulator_pid(self):
        with open(os.path.join(self.profile, "emu.pid")) as fh:
            return int(fh.read())

    def cpu(self, emulator):
        """CPU seconds (user + system) used so far by the daemon (the `fiscal up` process), the
        emulator (process ``emulator``, its child) and this process (the bench's client threads)."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {"daemon": cpu_seconds(self.proc.pid), "emulator": cpu_seconds(emulator),
                "client": own.ru_utime + own.ru_stime}

    def tail(self, lines=15):
        with open(self.log, "rb") as fh:
            return b"\n".join(fh.read().splitlines()[-lines:]).decode("utf-8", "replace")


def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()   # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metered(up, phase, invoices_of):
    """Run ``phase()`` (its stats dict) and add where the CPU went: ``cpu_ms_per_invoice`` for the
    daemon, the emulator, the bench's clients and their sum, and ``cores_busy`` (all CPU over wall
    time: near os.cpu_count() means the machine, not the stack, set the pace)."""
    emulator = up.emulator_pid()
    before, t0 = up.cpu(emulator), time.perf_counter()
    out = phase()
    if up.emulator_pid() != emulator:   # restarted mid-phase: two processes' CPU would mix
        raise BenchError("the emulator restarted during a phase; log %s:\n%s" % (up.log, up.tail()))
    after, wall = up.cpu(emulator), time.perf_counter() - t0
    n = max(1, invoices_of(out))
    per = {k: 1000.0 * (after[k] - before[k]) / n for k in before}
    per["total"] = sum(per.values())
    out.update({"cpu_ms_per_invoice": per, "cores_busy": per["total"] * n / 1000.0 / wall})
    return out


class Invoices:
    """Distinct invoices (the sample, cashier_id varied) with unique keys, and the fiscal numbers
    they were sealed under. Thread-safe: the bench's client threads share one."""

    def __init__(self, tag):
        with open(SAMPLE) as fh:
            self.doc = json.load(fh)
        self.tag = tag
        self.sent = 0
        self.fiscal_numbers = []
        self.lock = threading.Lock()

    def next(self):
        """(idempotency key, invoice document) of a new invoice."""
        with self.lock:
            self.sent += 1
            n = self.sent
        return "%s-%07d" % (self.tag, n), dict(self.doc, cashier_id="bench-%07d" % n)

    def sealed(self, numbers):
        with self.lock:
            self.fiscal_numbers.extend(numbers)


def post_one(socket_path, key, doc):
    """One POST /api/v1/invoices; (seconds, fiscal number)."""
    body = json.dumps(doc).encode()
    t0 = time.perf_counter()
    status, _, data = request(socket_path, "POST", "/api/v1/invoices", body, dict(JSON, **{"Idempotency-Key": key}),
                              timeout=120)
    took = time.perf_counter() - t0
    reply = json.loads(data)
    if status != 200 or "fiscal_number" not in reply.get("payload", {}):
        raise BenchError("invoice %s was not sealed: HTTP %d %s" % (key, status, data[:300]))
    return took, reply["payload"]["fiscal_number"]


def post_batch(socket_path, items):
    """One POST /api/v1/invoices/batch of [(key, doc)]; (seconds, [fiscal numbers] in input order)."""
    body = json.dumps({"invoices": [{"idempotency_key": k, "invoice": d} for k, d in items]}).encode()
    t0 = time.perf_counter()
    status, _, data = request(socket_path, "POST", "/api/v1/invoices/batch", body, JSON, timeout=600)
    took = time.perf_counter() - t0
    if status != 200:
        raise BenchError("batch starting with %s refused: HTTP %d %s" % (items[0][0], status, data[:300]))
    results = json.loads(data)["payload"]["results"]
    bad = [r for r in results if r["http_status"] != 200]
    if len(results) != len(items) or bad:
        raise BenchError("batch starting with %s: %d of %d items not sealed, first: %s"
                         % (items[0][0], len(bad) + len(items) - len(results), len(items),
                            json.dumps(bad[0])[:300] if bad else "results missing"))
    return took, [r["response"]["payload"]["fiscal_number"] for r in results]


def get_ok(socket_path, path):
    """One GET that must answer 200; seconds taken."""
    t0 = time.perf_counter()
    status, _, data = request(socket_path, "GET", path, timeout=120)
    took = time.perf_counter() - t0
    if status != 200:
        raise BenchError("GET %s answered HTTP %d %s" % (path, status, data[:300]))
    return took


def in_threads(clients, fn, seconds=None, count=None):
    """Each of ``clients`` threads calls fn() again and again, until ``count`` calls were started
    in all or ``seconds`` have passed (a phase bounded by time takes its budget however fast or slow
    the machine is right now). Returns (the results in completion order, wall seconds). The first
    exception of any thread is raised here once all threads stopped, so a failed request ends the
    bench instead of vanishing."""
    results, errors, lock = [], [], threading.Lock()
    started = [0]
    start = time.perf_counter()

    def take():
        with lock:
            if errors or (count is not None and started[0] >= count) or \
                    (seconds is not None and time.perf_counter() - start >= seconds):
                return False
            started[0] += 1
            return True

    def worker():
        try:
            while take():
                out = fn()
                with lock:
                    results.append(out)
        except BaseException as exc:   # re-raised below, in the caller's thread
            with lock:
                errors.append(exc)
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return results, elapsed


def seal_phase(up, invoices, clients, seconds=None, count=None):
    """Single POSTs over ``clients`` threads for ``seconds`` (or ``count`` of them); stats, rate =
    sealed / wall time."""
    done, elapsed = in_threads(clients, lambda: post_one(up.socket, *invoices.next()), seconds, count)
    invoices.sealed([number for _, number in done])
    return stats([took for took, _ in done], elapsed)


def batch_phase(up, invoices, clients, per_request=100, seconds=None, count=None):
    """Batch POSTs of ``per_request`` invoices over ``clients`` threads, for ``seconds`` (or
    ``count`` requests); stats of the requests, and ``rate`` = invoices sealed / wall time."""
    done, elapsed = in_threads(clients, lambda: post_batch(up.socket, [invoices.next() for _ in range(per_request)]),
                               seconds, count)
    for _, numbers in done:
        invoices.sealed(numbers)
    out = stats([took for took, _ in done], elapsed)
    out.update({"requests": len(done), "per_request": per_request, "clients": clients,
                "invoices": len(done) * per_request, "rate": len(done) * per_request / elapsed})
    return out
