"""Boards for the deploy tests: real MicroPython on a pty for mpremote, and a fake runner.

SimBoard: real MicroPython 1.27 (tools/upy_board.mjs under Node) behind a pty.

mpremote only talks to serial ports, so the board's REPL (stdin/stdout of the Node process) is
bridged to the master side of a pty; the slave path is what ``mpremote connect`` (and
``fiscal board deploy --port``) opens. The slave is put in raw mode at once, before anyone opens
it, so the line discipline neither echoes nor rewrites the raw-REPL control bytes, and this side
keeps a slave descriptor open so the master never reads EIO between two mpremote runs (the same
reasons as device/emulator.py). ``stop()`` ends the board's stdin: the board writes its files
under ``dump_dir`` and exits, so tests can check them without going through mpremote.

FakeBoard: a runner (hostd.boards.deploy's interface) for the fast tests of the step logic and its
failure paths, which a real board cannot be made to produce on demand.
"""

import hashlib
import os
import select
import subprocess
import sys
import threading
import tty

from hostd.boards.deploy import PROBE_SCRIPT
from tests.upy import _node

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD = os.path.join(ROOT, "tools", "upy_board.mjs")
GUARD_S = 60  # only against a hung harness; no test asserts on time


class SimBoard:
    def __init__(self, dump_dir, extra_args=()):
        self.dump_dir = dump_dir
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.proc = subprocess.Popen([_node(), BOARD, "--dump", dump_dir] + list(extra_args),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.log = []
        self._wake_r, self._wake_w = os.pipe()
        self._ready = threading.Event()
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._to_board, self._from_board,
                                                                           self._read_log)]
        for t in self._threads:
            t.start()
        if not self._ready.wait(GUARD_S):
            self.stop()
            raise AssertionError("simulated board did not boot:\n" + "\n".join(self.log))

    def _to_board(self):
        """Host writes on the pty -> the board's stdin, until stop()."""
        while True:
            readable, _, _ = select.select([self.master, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            data = os.read(self.master, 4096)
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def _from_board(self):
        """The board's stdout -> the pty, so the host reads it from the slave."""
        while True:
            data = self.proc.stdout.read1(4096)
            if not data:
                return
            while data:
                data = data[os.write(self.master, data):]

    def _read_log(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.log.append(line)
            if line == "upy_board: ready":
                self._ready.set()

    def stop(self):
        """End the board (it dumps its files, then exits 0); return its exit status."""
        os.write(self._wake_w, b"x")
        self._threads[0].join(GUARD_S)
        self.proc.stdin.close()
        code = self.proc.wait(GUARD_S)
        for t in self._threads[1:]:
            t.join(GUARD_S)
        for fd in (self.master, self.slave, self._wake_r, self._wake_w):
            os.close(fd)
        return code


class FakeBoard:
    """A runner that interprets mpremote's command lines against a directory as the board's FS.

    exec scripts run in CPython with the board directory as cwd (they are plain Python); the
    probe answers ``mpy_version``; ``corrupt`` paths get a flipped byte when written."""

    def __init__(self, root, mpy_version=6, corrupt=(), fail=None, fail_times=10 ** 6):
        self.root, self.mpy_version, self.corrupt, self.fail = str(root), mpy_version, set(corrupt), fail
        self.fail_times = fail_times
        self.calls = []

    def run(self, args):
        self.calls.append(list(args))
        if self.fail and self.fail[0] == args[0] and self.fail_times:
            self.fail_times -= 1
            return 1, "", self.fail[1]
        out = []
        while args:
            cut = args.index("+") if "+" in args else len(args)
            out.append(self._one(args[:cut]))
            args = args[cut + 1:]
        return 0, "".join(out), ""

    def _one(self, args):
        if args[0] == "exec" and args[1] == PROBE_SCRIPT:
            return "mpy %d\n" % self.mpy_version
        if args[0] == "exec":
            proc = subprocess.run([sys.executable, "-c", args[1]], cwd=self.root, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            return proc.stdout
        if args[:2] == ["fs", "cp"]:
            dest = args[3][1:]
            with open(args[2], "rb") as fh:
                data = fh.read()
            if self._sha(dest) == hashlib.sha256(data).hexdigest():
                return "Up to date: %s\n" % dest
            if dest in self.corrupt:
                data = bytes([data[0] ^ 1]) + data[1:]
            with open(os.path.join(self.root, dest), "wb") as fh:
                fh.write(data)
            return "cp %s %s\n" % (args[2], args[3])
        if args[:2] == ["fs", "sha256sum"]:
            return "".join("sha256sum %s\n%s\n" % (p, self._sha(p[1:])) for p in args[2:])
        if args[0] in ("mip", "reset"):
            return ""
        raise AssertionError("unexpected mpremote command %r" % args)

    def _sha(self, path):
        full = os.path.join(self.root, path)
        if not os.path.isfile(full):
            return None
        with open(full, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
