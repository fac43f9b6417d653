"""``fiscal up``: the emulator and the daemon together, for laptops, demos and end-to-end tests.

The emulator runs as a child process on the profile; a watcher thread restarts it whenever it
exits (a crash, a ``kill -9``, a simulated power cut), as plugging a board back in would. The
daemon talks to ``PROFILE/tty``, a symlink the emulator points at its new pty on every start, so
the daemon's ordinary reconnect path finds the restarted device by itself.
"""

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time

from hostd.errors import DeviceUnavailable
from hostd.daemon.server import serve

log = logging.getLogger("fiscal.up")


class StderrRelay(threading.Thread):
    """A child's stderr, held back until it is ready and then passed on to ours line by line.

    Held back, because a child that fails to start is retried (an orphan may hold the profile for
    a moment) and its error would otherwise be printed once per attempt; kept, because its last
    line is what the user needs to see when it never starts ("flash.bin is in use")."""

    def __init__(self, pipe):
        threading.Thread.__init__(self, name="stderr-relay", daemon=True)
        self.pipe = pipe
        self.lines = []
        self.live = False
        self.lock = threading.Lock()

    def run(self):
        for raw in self.pipe:
            line = raw.decode("utf-8", "replace")
            with self.lock:
                if self.live:
                    sys.stderr.write(line)
                    sys.stderr.flush()
                else:
                    self.lines.append(line)

    def go_live(self):
        with self.lock:
            sys.stderr.write("".join(self.lines))
            sys.stderr.flush()
            self.lines = []
            self.live = True

    def last_line(self):
        self.join(2.0)
        with self.lock:
            said = [line.strip() for line in self.lines if line.strip()]
        return said[-1] if said else None


def spawn_ready(args, prefix, what, timeout=20.0):
    """Start ``python -m hostd ARGS``; return (process, first stdout line) once that line, which
    must start with ``prefix``, says it is ready. Its stderr reaches ours once it is ready; if it
    never is, its last stderr line is in the error."""
    proc = subprocess.Popen([sys.executable, "-m", "hostd"] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    relay = StderrRelay(proc.stderr)
    relay.start()
    ready = select.select([proc.stdout], [], [], timeout)[0]
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith(prefix):
        proc.kill()
        proc.wait()
        said = relay.last_line()
        raise DeviceUnavailable("%s did not start (exit %s): %s" % (
            what, proc.poll(), said or "first line %r" % line))
    relay.go_live()
    return proc, line


def stop_process(proc, grace=10):
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_emulator(profile, extra=(), timeout=20.0):
    """Spawn ``fiscal emulator``; return (process, pty path)."""
    return spawn_ready(["emulator", "--profile", profile] + list(extra), "/dev/", "emulator", timeout)


def stop_emulator(proc):
    stop_process(proc, 10)


class EmulatorWatch:
    def __init__(self, profile, extra):
        self.profile = profile
        self.extra = extra
        self.stopping = threading.Event()
        deadline = time.monotonic() + 5.0
        while True:   # an orphan of a killed `fiscal up` may hold the profile for half a second
            try:
                self.proc = start_emulator(profile, extra)[0]
                break
            except DeviceUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.restarts = 0
        self.thread = threading.Thread(target=self._watch, name="emulator-watch", daemon=True)
        self.thread.start()

    def _watch(self):
        while not self.stopping.is_set():
            code = self.proc.wait()
            if self.stopping.is_set():
                return
            log.warning("emulator exited with %s; restarting it", code)
            time.sleep(0.2)
            try:
                self.proc = start_emulator(self.profile, self.extra)[0]
                self.restarts += 1
            except DeviceUnavailable as exc:
                log.warning("%s; retrying", exc.detail)

    def stop(self):
        self.stopping.set()
        stop_emulator(self.proc)


def run_up(profile, socket_path, seed=None, as_json=False, journal_kib=None, db_path=None, **more):
    """The emulator on ``profile`` and the daemon with its store in ``profile`` (or ``db_path``);
    the first stdout line says it serves (one JSON document with ``as_json``). ``journal_kib`` sizes
    a new profile's journal. ``more``: daemon settings."""
    os.makedirs(profile, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    extra = ["--exit-with-parent"] + ([] if seed is None else ["--seed", str(seed)])
    if journal_kib is not None:
        extra += ["--journal-kib", str(journal_kib)]
    watch = EmulatorWatch(profile, extra)

    def ready():
        if as_json:
            sys.stdout.write(json.dumps({"status": "serving", "socket": socket_path, "profile": profile,
                                         "pid": os.getpid()}) + "\n")
        else:
            sys.stdout.write("fiscal up: serving %s (profile %s)\n" % (socket_path, profile))
        sys.stdout.flush()
    try:
        serve(os.path.join(profile, "tty"), socket_path, db_path or os.path.join(profile, "fiscal.sqlite"), ready=ready,
              **more)
    finally:
        watch.stop()
