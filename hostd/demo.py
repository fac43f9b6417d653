"""The README's main job until the daemon lands: a real emulator process, a real pty, real frames.

It starts ``fiscal emulator`` as a child process, reads the pty path from its first stdout line,
opens the pty with the same client the daemon will use, sets the clock, seals each invoice with
PREPARE -> COMMIT, then reads the whole journal back and verifies it offline with the public key
the device reported.
"""

import os
import select
import subprocess
import sys
import tempfile

from protocol import verify
from hostd.canonical import to_canonical
from hostd.device import DeviceClient
from hostd.errors import DeviceUnavailable, VerificationFailed
from protocol.errors import VerifyError


def start_emulator(profile, extra=(), timeout=20.0):
    """Spawn the emulator; return (process, pty path). Its stderr is inherited for diagnostics."""
    cmd = [sys.executable, "-m", "hostd", "emulator", "--profile", profile] + list(extra)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    ready = select.select([proc.stdout], [], [], timeout)[0]
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("/dev/"):
        proc.kill()
        proc.wait()
        raise DeviceUnavailable("emulator did not start (exit %s, first line %r)" % (proc.poll(), line))
    return proc, line


def stop_emulator(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_demo(profile=None, files=()):
    from hostd.cli import samples_dir

    if profile is None:
        profile = tempfile.mkdtemp(prefix="fiscal-demo-")
    if not files:
        files = [os.path.join(samples_dir(), name) for name in ("invoice-002-services.json", "invoice-000-goods.json")]
    canonicals = []
    for path in files:
        with open(path, "rb") as fh:
            canonicals.append((path, to_canonical(fh.read())[0]))
    proc, tty = start_emulator(profile)
    try:
        with DeviceClient(tty) as dev:
            info = dev.handshake()
            dev.set_time()
            sealed = []
            for path, canonical in canonicals:
                s = dev.seal(canonical)
                sealed.append({"file": os.path.basename(path), "fiscal_number": s[1], "counter": s[2],
                               "auth_code": s[3], "timestamp": s[4], "qr_payload": s[5],
                               "ledger_hash": s[7].hex()})
            records = dev.records()
    finally:
        stop_emulator(proc)
    try:
        summary = verify.verify_records(records, info["public_key"])
    except VerifyError as exc:
        raise VerificationFailed(exc.detail)
    summary["last_hash"] = summary["last_hash"].hex()
    return {"profile": profile, "tty": tty, "public_key": info["public_key"].hex(), "sealed": sealed,
            "journal": summary}
