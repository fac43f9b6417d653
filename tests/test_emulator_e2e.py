"""The real emulator process over its pty, driven with pyserial by the host client.

Seals the two seed invoices (in canonical form), kills the emulator with SIGKILL, restarts it on
the same profile, and checks the next fiscal number follows on and the journal still verifies.
"""

import os
import signal

import pytest
import serial

from hostd.intake.canonical import to_canonical
from hostd.daemon.supervisor import start_emulator, stop_emulator
from hostd.link.client import DeviceClient
from hostd.errors import DeviceRefused
from protocol import messages, verify
from tests.devkit import fast_verifier

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "samples")


def canonical(name):
    with open(os.path.join(SAMPLES, name), "rb") as fh:
        return to_canonical(fh.read())[0]


@pytest.fixture
def emulator(tmp_path):
    procs = []

    def start(*extra):
        proc, tty = start_emulator(str(tmp_path / "profile"), ["--seed", "7"] + list(extra))
        procs.append(proc)
        return proc, tty
    yield start
    for proc in procs:
        if proc.poll() is None:
            stop_emulator(proc)


def test_seal_kill9_restart_follows_on(emulator):
    invoices = [canonical("invoice-002-services.json"), canonical("invoice-000-goods.json")]
    proc, tty = emulator()
    with DeviceClient(tty) as dev:
        info = dev.handshake()
        assert info["counter"] == 0
        dev.set_time()
        first = [dev.seal(inv) for inv in invoices]
    assert [s[2] for s in first] == [1, 2]
    assert first[1][1] == "%s-%08d" % (info["device_id"], 2)

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc, tty = emulator()
    with DeviceClient(tty) as dev:
        again = dev.handshake()
        assert again["counter"] == 2 and again["device_id"] == info["device_id"]
        assert again["public_key"] == info["public_key"]
        with pytest.raises(DeviceRefused) as refused:
            dev.prepare(invoices[0])          # power-up: the clock must be set first
        assert refused.value.name == "CLOCK_UNSET"
        dev.set_time()
        third = dev.seal(invoices[0])
        assert third[2] == 3
        records = dev.records()
    summary = verify.verify_records(records, info["public_key"], fast_verifier(info["public_key"]))
    assert summary["invoices"] == 3 and summary["counter"] == 3


def test_exclusive_open_and_stale_nonce_after_restart(emulator):
    proc, tty = emulator()
    with DeviceClient(tty) as dev:
        dev.handshake()
        with pytest.raises(serial.SerialException):
            serial.Serial(tty, exclusive=True)     # a second owner cannot steal the device
        dev.set_time()
        nonce = dev.prepare(canonical("invoice-002-services.json"))["nonce"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc, tty = emulator()
    with DeviceClient(tty) as dev:
        dev.handshake()
        dev.set_time()
        assert dev.status(nonce)["state"] == messages.UNKNOWN   # never committed: safe to PREPARE again
        with pytest.raises(DeviceRefused) as refused:
            dev.commit(nonce)
        assert refused.value.name == "NONCE_UNKNOWN"


def test_power_cut_switch_in_the_emulator(emulator):
    """--cut-after makes the emulator die mid-COMMIT; after restart STATUS tells the truth."""
    # Boot writes a power-up record, SET_TIME a time record, then the COMMIT record is cut.
    proc, tty = emulator("--cut-after", "4", "--cut-bytes", "7")
    with DeviceClient(tty, timeout=1.0, retries=0) as dev:
        dev.handshake()
        dev.set_time()
        nonce = dev.prepare(canonical("invoice-000-goods.json"))["nonce"]
        with pytest.raises(Exception):
            dev.commit(nonce)
    assert proc.wait(10) == 75
    proc, tty = emulator()
    with DeviceClient(tty) as dev:
        dev.handshake()
        dev.set_time()
        state = dev.status(nonce)["state"]
        counter = dev.call("INFO")["counter"]
        assert (state, counter) in ((messages.UNKNOWN, 0), (messages.COMMITTED, 1))
        assert dev.seal(canonical("invoice-000-goods.json"))[2] == counter + 1
