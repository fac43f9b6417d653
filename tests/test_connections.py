"""Issue 8: connection hygiene. Idle, half-sent connections under systemd's default fd limit never
lock a POS out, and never flood the log."""

import json
import os
import resource
import socket
import time

import pytest

from tests.daemonkit import Stack, sample

LIMIT = 1024     # systemd's default soft and hard RLIMIT_NOFILE for services
IDLE = 1030


def _limit_fds():
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


def connect(path, deadline):
    """Connect as a client does: a full accept backlog (EAGAIN) is retried until ``deadline``."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.mark.slow
def test_idle_half_sent_connections_never_lock_out_a_pos(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE + 64:   # this test process itself holds the idle connections
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    log_path = tmp_path / "daemon.log"
    stack = Stack(tmp_path)
    idle = []
    with open(log_path, "wb") as log:
        try:
            stack.start_daemon(stderr=log, preexec_fn=_limit_fds)
            status, _ = stack.pos.seal(sample(cashier_id="before"), key="before")
            assert status == 200
            log.flush()
            before = os.path.getsize(log_path)
            deadline = time.monotonic() + 60
            for _ in range(IDLE):
                sock = connect(stack.socket, deadline)
                sock.sendall(b"POST /api/v1/invoices HTTP/1.1\r\nHost: localhost\r\nContent-Type: appl")
                idle.append(sock)
            status, doc = stack.pos.seal(sample(cashier_id="during"), key="during")
            assert status == 200, doc                                  # a normal client still seals
            status, st = stack.pos.get("/api/v1/outlets/local/status")
            assert status == 200 and st["payload"]["counter"] == 2
            assert stack.daemon.poll() is None
            log.flush()
            grown = os.path.getsize(log_path) - before
            assert grown < 100 * 1024, "the log grew by %d bytes" % grown
        finally:
            for sock in idle:
                sock.close()
            stack.close()
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[-2000:]
    assert "Too many open files" not in text, text[-2000:]      # the cap kept the daemon below its fd limit


@pytest.mark.slow
def test_a_body_that_never_arrives_is_a_408_and_frees_the_connection(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.start_daemon()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(stack.socket)
        sock.sendall(b"POST /api/v1/invoices HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"merchant")
        status, sealed = stack.pos.seal(sample(cashier_id="meanwhile"), key="meanwhile")
        assert status == 200                                           # the slow client stalls no one
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), head
        while len(body) < int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]):
            body += sock.recv(4096)
        assert json.loads(body)["code"] == "REQUEST_TIMEOUT"
        sock.close()
    finally:
        stack.close()
