"""Issue 8: the emulator on a full filesystem, and an emulator whose host stopped reading."""

import os
import signal
import subprocess
import sys
import time

from protocol import frames, messages
from hostd.daemon.supervisor import start_emulator


def test_a_new_profile_on_a_full_filesystem_is_a_clear_error_and_leaves_nothing(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    os.symlink("/dev/full", str(profile / "flash.bin.new"))   # every write there is ENOSPC
    done = subprocess.run([sys.executable, "-m", "hostd", "emulator", "--profile", str(profile)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert "cannot create the flash image" in done.stderr and "No space left on device" in done.stderr
    assert "Traceback" not in done.stderr
    assert os.listdir(profile) == []                             # no flash.bin, no flash.bin.new left


def test_sigterm_stops_an_emulator_blocked_on_a_host_that_stopped_reading(tmp_path):
    proc, path = start_emulator(str(tmp_path / "profile"))
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        ping = messages.encode_request("PING", data=b"x" * 64)
        # One answer first: the emulator prints its pty path before it installs its SIGTERM
        # handler, so a flood (and the SIGTERM) sent before it serves could kill it by signal.
        os.write(fd, frames.encode_frame(255, ping))
        deadline = time.monotonic() + 20
        while True:
            try:
                if os.read(fd, 4096):
                    break
            except BlockingIOError:
                assert time.monotonic() < deadline, "the emulator never answered"
                time.sleep(0.01)
        sent = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:   # until the emulator, blocked on its answers, stops reading
            try:
                os.write(fd, frames.encode_frame(sent % 255 + 1, ping))
                sent += 1
            except BlockingIOError:
                break
        assert sent > 100                    # answers to many more than the pty buffer holds
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        os.close(fd)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
