"""Issue 13, the small parts on their own: the state directory, the tokens file rules, CORS origins,
the journald formatter, sd_notify on an abstract socket, and the board-tools install hint."""

import logging
import os
import socket
import uuid

import pytest

from hostd.api.auth import ALL, Tokens, check_scope
from hostd.api.cors import origin
from hostd.api.replies import Refusal
from hostd.boards import deploy
from hostd.daemon import logs
from hostd.daemon.lock import StoreLock, state_dir
from hostd.daemon.systemd import Notifier, listen_fds
from hostd.errors import AlreadyServing, ConfigError


def test_state_dir_prefers_systemd_then_xdg():
    assert state_dir({"STATE_DIRECTORY": "/var/lib/fiscal:/var/lib/other"}) == "/var/lib/fiscal"
    if os.geteuid() == 0:
        assert state_dir({}) == "/var/lib/fiscal"
    else:
        assert state_dir({"XDG_STATE_HOME": "/x/state"}) == "/x/state/fiscal"


def test_the_store_lock_is_exclusive_and_names_the_holder(tmp_path):
    first = StoreLock(str(tmp_path)).acquire("the store")
    with pytest.raises(AlreadyServing, match="pid %d" % os.getpid()):
        StoreLock(str(tmp_path)).acquire("the store")
    first.release()
    StoreLock(str(tmp_path)).acquire("the store").release()


def test_tokens_file_rules():
    tokens = Tokens.parse("# till tokens\n\n%s outlet-a,outlet-b   # two outlets\n%s *\n" % ("a" * 16, "b" * 16), "t")
    assert tokens.scope("Bearer " + "a" * 16) == frozenset(["outlet-a", "outlet-b"])
    assert tokens.scope("Bearer " + "b" * 16) is ALL
    with pytest.raises(Refusal):
        tokens.scope("Bearer " + "c" * 16)
    with pytest.raises(Refusal):
        tokens.scope("Bearer " + "a" * 15)
    check_scope(ALL, "anything")
    with pytest.raises(Refusal, match="outlet-c"):
        check_scope(frozenset(["outlet-a"]), "outlet-c")
    for text, words in (("short *\n", "16 to 256"), ("%s\n" % ("a" * 16), "1 fields"),
                        ("%s *\n%s x\n" % ("a" * 16, "a" * 16), "already listed"),
                        ("%s a,,b\n" % ("a" * 16), "separated by commas"), ("# nothing\n", "no token")):
        with pytest.raises(ConfigError, match=words):
            Tokens.parse(text, "t")


def test_cors_origins_are_exact_and_never_a_wildcard():
    assert origin("HTTPS://POS.Example:443/") == "https://pos.example"
    assert origin("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    for bad in ("*", "https://pos.example/till", "ftp://x", "pos.example", "https://u@pos.example",
                "http://x:99999"):
        with pytest.raises(ConfigError):
            origin(bad)


def test_journal_formatter_prefixes_every_line_with_its_priority():
    formatter = logs.JournalFormatter("%(name)s: %(message)s")
    record = logging.LogRecord("fiscal.daemon", logging.WARNING, __file__, 1, "two\nlines", None, None)
    assert formatter.format(record) == "<4>fiscal.daemon: two\n<4>lines"
    assert [logs.priority(level) for level in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    assert logs.under_systemd({"JOURNAL_STREAM": "8:123"}) and not logs.under_systemd({})


def test_sd_notify_on_an_abstract_socket_and_nothing_without_one():
    name = "fiscal-test-%s" % uuid.uuid4().hex
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)
    env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    notifier = Notifier(env)
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env   # children never inherit them
    assert notifier.watchdog_interval() == 1.5
    assert notifier.ready("serving")
    assert listener.recv(100) == b"READY=1\nSTATUS=serving"
    notifier.close()
    listener.close()
    assert not Notifier({}).notify("READY=1") and Notifier({}).watchdog_interval() is None
    assert Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled is False
    assert listen_fds({"LISTEN_FDS": "1"}) == []   # no LISTEN_PID: not for us


def test_board_commands_say_how_to_install_the_board_tools_when_missing(monkeypatch):
    runner = deploy.MpremoteRunner("/dev/null", timeout=60)
    monkeypatch.setattr(runner, "command", lambda args: [os.sys.executable, "-c", "import mpremote_is_not_here_x"])
    monkeypatch.setattr(deploy.subprocess, "run", _fake_run("No module named mpremote"))
    with pytest.raises(deploy.DeployFailed, match=r"pip install 'fiscal-device\[board\]'"):
        runner.run(["exec", "print(1)"])


def _fake_run(stderr):
    class Done:
        returncode = 1
        stdout = b""

    Done.stderr = stderr.encode()
    return lambda *a, **k: Done()
