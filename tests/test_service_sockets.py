"""Issue 13, socket safety and systemd: real daemon processes, real sockets.

- a second daemon on a live socket refuses (exit 3) and the first stays reachable; a second daemon
  on the same store refuses; a stale socket is replaced, a file that is not a socket never is;
- SIGTERM and SIGINT remove the socket and release the store's lock;
- socket activation: a listening socket passed on fd 3 with LISTEN_FDS=1 and LISTEN_PID set by a
  wrapper to its own pid before exec is served (and left in place at exit: systemd owns it);
  LISTEN_PID of another process is ignored and the daemon binds by itself;
- sd_notify: STATUS= while the device is away, READY=1 only once it answers, WATCHDOG=1 pings,
  STOPPING=1, all read from a real AF_UNIX datagram socket.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from hostd.daemon.supervisor import start_emulator, stop_emulator
from hostd.sdk.transport import request
from tests.daemonkit import Stack, wait_for_socket

pytestmark = pytest.mark.slow

WRAPPER = """
import os, sys
os.dup2(int(os.environ.pop("FD_TO_PASS")), 3)
os.environ["LISTEN_FDS"] = "1"
if os.environ.get("LISTEN_PID") != "other":
    os.environ["LISTEN_PID"] = str(os.getpid())   # what systemd sets: the pid that will run the daemon
else:
    os.environ["LISTEN_PID"] = "1"
os.execv(sys.executable, [sys.executable, "-m", "hostd"] + sys.argv[1:])
"""


def daemon(device, socket_path, db, extra=(), env=None, pass_fds=(), wrapper=False, stderr=subprocess.PIPE):
    args = ["daemon", "--device", device, "--socket", socket_path, "--db", db] + list(extra)
    cmd = [sys.executable, "-c", WRAPPER] + args if wrapper else [sys.executable, "-m", "hostd"] + args
    full = dict(os.environ)
    for key in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC", "JOURNAL_STREAM", "INVOCATION_ID"):
        full.pop(key, None)
    full.update(env or {})
    return subprocess.Popen(cmd, env=full, pass_fds=pass_fds, stderr=stderr, stdout=subprocess.DEVNULL)


def alive(path):
    status, _, data = request(path, "GET", "/api/v1/tax-groups", timeout=10)
    return status == 200 and json.loads(data)["code"] == "TAX_GROUPS"


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    s.start_daemon()
    yield s
    s.close()


def test_a_second_daemon_on_a_live_socket_refuses_and_the_first_stays_reachable(stack, tmp_path):
    second = daemon(os.path.join(stack.profile, "tty"), stack.socket, str(tmp_path / "other" / "fiscal.sqlite"))
    _, err = second.communicate(timeout=60)
    assert second.returncode == 3, err
    assert b"already serves" in err and stack.socket.encode() in err and b"Traceback" not in err
    assert alive(stack.socket)
    assert stack.daemon.poll() is None


def test_a_second_daemon_on_the_same_store_refuses(stack, tmp_path):
    other_socket = str(tmp_path / "second.sock")
    second = daemon(os.path.join(stack.profile, "tty"), other_socket, stack.db)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 3, err
    assert b"already uses the store" in err and b"pid %d" % stack.daemon.pid in err
    assert not os.path.exists(other_socket)
    assert alive(stack.socket)


def test_a_stale_socket_is_replaced_and_a_file_that_is_not_a_socket_is_not(tmp_path):
    stale = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(stale)
    dead.close()   # the socket file stays, nobody listens: a daemon killed with -9
    s = Stack(tmp_path)
    try:
        s.socket = stale
        s.pos.socket = stale
        s.start_daemon()
        assert alive(stale)
        s.stop_daemon()
        plain = tmp_path / "plain.sock"
        plain.write_text("not a socket")
        refused = daemon(os.path.join(s.profile, "tty"), str(plain), s.db)
        _, err = refused.communicate(timeout=60)
        assert refused.returncode == 3 and b"is not a socket" in err, err
        assert plain.read_text() == "not a socket"
    finally:
        s.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_remove_the_socket_and_release_the_store(stack, sig):
    assert os.path.exists(stack.socket)
    stack.daemon.send_signal(sig)
    assert stack.daemon.wait(30) == 0
    assert not os.path.exists(stack.socket)
    stack.start_daemon()   # the same store and socket again: the lock was released
    assert alive(stack.socket)


def _listening_unix(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(16)
    return sock


def test_socket_activation_serves_the_socket_passed_on_fd_3(tmp_path):
    profile = str(tmp_path / "profile")
    emu, _ = start_emulator(profile, ["--seed", "5"])
    activated = str(tmp_path / "activated.sock")
    listener = _listening_unix(activated)
    own = str(tmp_path / "own.sock")
    proc = daemon(os.path.join(profile, "tty"), own, str(tmp_path / "fiscal.sqlite"), wrapper=True,
                  env={"FD_TO_PASS": str(listener.fileno())}, pass_fds=(listener.fileno(),))
    listener.close()   # only the daemon holds it now
    try:
        wait_for_socket(activated, proc)
        assert alive(activated)
        assert not os.path.exists(own), "with LISTEN_FDS the daemon must not bind --socket itself"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert b"socket-activated" in err
        assert os.path.exists(activated), "the socket belongs to systemd: the daemon must leave it"
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_emulator(emu)


def test_listen_fds_for_another_pid_are_ignored_and_the_daemon_binds_by_itself(tmp_path):
    profile = str(tmp_path / "profile")
    emu, _ = start_emulator(profile, ["--seed", "5"])
    listener = _listening_unix(str(tmp_path / "not-ours.sock"))
    own = str(tmp_path / "own.sock")
    proc = daemon(os.path.join(profile, "tty"), own, str(tmp_path / "fiscal.sqlite"), wrapper=True,
                  env={"FD_TO_PASS": str(listener.fileno()), "LISTEN_PID": "other"}, pass_fds=(listener.fileno(),))
    try:
        wait_for_socket(own, proc)
        assert alive(own)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
        listener.close()
        stop_emulator(emu)


def _datagrams(sock, until, limit=200):
    """Notifications (dicts of KEY=VALUE) until ``until(seen)`` holds; 60 s at most per datagram."""
    seen = []
    sock.settimeout(60)
    while not until(seen) and len(seen) < limit:
        text = sock.recv(4096).decode()
        seen.append(dict(line.split("=", 1) for line in text.split("\n") if line))
    return seen


def test_sd_notify_status_then_ready_after_the_handshake_then_watchdog(tmp_path):
    notify_path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    profile = str(tmp_path / "profile")
    os.makedirs(profile)
    sock_path = str(tmp_path / "api.sock")
    # The daemon starts before the device exists: it must say it waits, and not be READY.
    proc = daemon(os.path.join(profile, "tty"), sock_path, str(tmp_path / "fiscal.sqlite"),
                  env={"NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "400000"})
    emu = None
    try:
        early = _datagrams(notify, lambda seen: sum("waiting for the device" in d.get("STATUS", "") for d in seen))
        assert not any("READY" in d for d in early)
        wait_for_socket(sock_path, proc)   # serving (503 for the device) before READY
        emu, _ = start_emulator(profile, ["--seed", "5"])
        later = _datagrams(notify, lambda seen: any("READY" in d for d in seen))
        ready = [d for d in later if "READY" in d][0]
        assert ready["READY"] == "1" and "device EMU-" in ready["STATUS"] and "counter 0" in ready["STATUS"]
        pings = _datagrams(notify, lambda seen: sum(d.get("WATCHDOG") == "1" for d in seen) >= 2)
        assert sum(d.get("WATCHDOG") == "1" for d in early + later + pings) >= 2
        proc.send_signal(signal.SIGTERM)
        last = _datagrams(notify, lambda seen: any("STOPPING" in d for d in seen))
        assert [d for d in last if "STOPPING" in d][0]["STOPPING"] == "1"
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        if emu is not None:
            stop_emulator(emu)
        notify.close()


def _read_until(proc, needle, timeout=30.0):
    """What the process wrote on stderr up to and including ``needle`` (or all of it at the deadline)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.1)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            seen += chunk
    return seen


def test_under_systemd_log_lines_carry_a_priority_and_no_timestamp(tmp_path):
    profile = str(tmp_path / "profile")
    os.makedirs(profile)
    sock_path = str(tmp_path / "api.sock")
    proc = daemon(os.path.join(profile, "tty"), sock_path, str(tmp_path / "fiscal.sqlite"),
                  env={"INVOCATION_ID": "0123456789abcdef"})
    early = b""
    try:
        wait_for_socket(sock_path, proc)
        # The first connection attempt runs beside the listener, so its warning may come after
        # the socket is served: read stderr until it is there before asking anything.
        early = _read_until(proc, b"<4>fiscal.daemon: device not available yet")
        request(sock_path, "GET", "/api/v1/tax-groups")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = (early + err).decode().splitlines()
    assert lines and all(line[:3] in ("<2>", "<3>", "<4>", "<6>", "<7>") for line in lines), lines
    assert any(line.startswith("<6>fiscal.daemon: serving unix:") for line in lines)
    assert any(line.startswith("<4>fiscal.daemon: device not available yet") for line in lines)
    assert any(line.startswith("<6>fiscal.access: GET /api/v1/tax-groups 200 ") and line.endswith(" ms")
               for line in lines), lines
