"""``fiscal up``: the emulator and the daemon together, for laptops, demos and end-to-end tests.

The emulator runs as a child process on the profile; a watcher thread restarts it whenever it
exits (a crash, a ``kill -9``, a simulated power cut), as plugging a board back in would. The
daemon talks to ``PROFILE/tty``, a symlink the emulator points at its new pty on every start, so
the daemon's ordinary reconnect path finds the restarted device by itself.
"""

import os
import select
import subprocess
import sys
import threading
import time

from hostd.errors import DeviceUnavailable
from hostd.daemon.server import serve


def spawn_ready(args, prefix, what, timeout=20.0):
    """Start ``python -m hostd ARGS``; return (process, first stdout line) once that line, which
    must start with ``prefix``, says it is ready. Its stderr is inherited for diagnostics."""
    proc = subprocess.Popen([sys.executable, "-m", "hostd"] + list(args), stdout=subprocess.PIPE)
    ready = select.select([proc.stdout], [], [], timeout)[0]
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith(prefix):
        proc.kill()
        proc.wait()
        raise DeviceUnavailable("%s did not start (exit %s, first line %r)" % (what, proc.poll(), line))
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
            sys.stderr.write("fiscal up: emulator exited with %s; restarting it\n" % code)
            time.sleep(0.2)
            try:
                self.proc = start_emulator(self.profile, self.extra)[0]
                self.restarts += 1
            except DeviceUnavailable as exc:
                sys.stderr.write("fiscal up: %s; retrying\n" % exc.detail)

    def stop(self):
        self.stopping.set()
        stop_emulator(self.proc)


def run_up(profile, socket_path, seed=None):
    os.makedirs(profile, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(socket_path)), exist_ok=True)
    watch = EmulatorWatch(profile, ["--exit-with-parent"] + ([] if seed is None else ["--seed", str(seed)]))

    def ready():
        sys.stdout.write("fiscal up: serving %s (profile %s)\n" % (socket_path, profile))
        sys.stdout.flush()
    try:
        serve(os.path.join(profile, "tty"), socket_path, os.path.join(profile, "fiscal.sqlite"), ready=ready)
    finally:
        watch.stop()
