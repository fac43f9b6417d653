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
from protocol import messages, record, timefmt, verify
from tests.devkit import fast_verifier

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "samples")


def rid(text):
    return record.request_id_for("1p:" + text)


def canonical(name):
    """A sample's canonical bytes, dated now (the samples carry no timestamp: the host dates an
    invoice as it accepts it, and the device refuses one outside its window). Take them once per
    invoice: a retry under the same request id must carry the same bytes."""
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
        first = [dev.seal(rid("e2e-%d" % i), inv) for i, inv in enumerate(invoices)]
        assert dev.seal(rid("e2e-1"), invoices[1]) == first[1]        # the device dedupes the retry
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
            dev.prepare(invoices[0], rid("e2e-3"))          # power-up: the clock must be set first
        assert refused.value.name == "CLOCK_UNSET"
        dev.set_time()
        assert dev.seal(rid("e2e-0"), invoices[0]) == first[0]      # after a kill -9 too
        third = dev.seal(rid("e2e-3"), invoices[0])
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
        nonce = dev.prepare(canonical("invoice-002-services.json"), rid("stale"))["nonce"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc, tty = emulator()
    with DeviceClient(tty) as dev:
        dev.handshake()
        dev.set_time()
        assert dev.status(nonce)["state"] == messages.UNKNOWN   # pending nonces live in RAM
        assert dev.status(request_id=rid("stale"))["state"] == messages.UNKNOWN   # never sealed
        with pytest.raises(DeviceRefused) as refused:
            dev.commit(nonce)
        assert refused.value.name == "NONCE_UNKNOWN"


def test_power_cut_switch_in_the_emulator(emulator):
    """--cut-after makes the emulator die mid-COMMIT; after restart STATUS tells the truth."""
    # Boot writes a power-up record (program 1) and a new profile's tax profile record (it crosses
    # a page: programs 2 and 3), SET_TIME a time record (4); the COMMIT record crosses a page
    # (programs 5 and 6): its second program is cut.
    goods = canonical("invoice-000-goods.json")
    proc, tty = emulator("--cut-after", "5", "--cut-bytes", "7")
    with DeviceClient(tty, timeout=1.0, retries=0) as dev:
        assert dev.handshake()["seq"] == 2                  # POWER_UP and PROFILE
        dev.set_time()
        nonce = dev.prepare(goods, rid("cut"))["nonce"]
        with pytest.raises(Exception):
            dev.commit(nonce)
    assert proc.wait(10) == 75
    proc, tty = emulator()
    with DeviceClient(tty) as dev:
        dev.handshake()
        dev.set_time()
        state = dev.status(request_id=rid("cut"))["state"]
        counter = dev.call("INFO")["counter"]
        assert (state, counter) in ((messages.UNKNOWN, 0), (messages.COMMITTED, 1))
        assert dev.seal(rid("cut"), goods)[2] == 1                  # sealed once, either way
        assert dev.seal(rid("after"), goods)[2] == 2


def test_journal_kib_sizes_a_new_profile_and_an_existing_one_keeps_its_size(emulator, tmp_path):
    from click.testing import CliRunner

    from hostd.cli.device import emulator as emulator_cmd

    proc, tty = emulator("--journal-kib", "64")
    with DeviceClient(tty) as dev:
        info = dev.handshake()
        assert info["journal_size"] == 64 * 1024 and info["reserve"] == 2 * 4096
        assert info["first_live"] == 1 and info["archived_seq"] == 0 and 0 < info["fill_ppm"] < 10000
    stop_emulator(proc)
    assert os.path.getsize(tmp_path / "profile" / "flash.bin") == 64 * 1024
    proc, tty = emulator()                                   # no size given: the profile keeps 64 KiB
    with DeviceClient(tty) as dev:
        assert dev.handshake()["journal_size"] == 64 * 1024
    stop_emulator(proc)
    runner = CliRunner()
    result = runner.invoke(emulator_cmd, ["--profile", str(tmp_path / "profile"), "--journal-kib", "128"])
    assert result.exit_code == 2 and "has a 64 KiB journal; it keeps that size" in result.stderr
    for bad in ("30", "34"):
        result = runner.invoke(emulator_cmd, ["--profile", str(tmp_path / "new"), "--journal-kib", bad])
        assert result.exit_code == 2 and "--journal-kib" in result.stderr
    assert not os.path.exists(tmp_path / "new" / "flash.bin")


def test_client_archives_reads_live_records_and_gets_a_signed_head(emulator):
    from protocol.errors import VerifyError

    proc, tty = emulator("--journal-kib", "32")
    inv = canonical("invoice-002-services.json")
    with DeviceClient(tty) as dev:
        info = dev.handshake()
        dev.set_time()
        sealed = [dev.seal(rid("arch-%d" % i), inv) for i in range(30)]
        # the device never archives the open period: close it (a Z of the device clock's day) first
        day = timefmt.format_time(dev.call("INFO")["clock"])[:10]
        z = dev.close_period("Z", day)
        records = dev.records()
        key = info["public_key"]
        summary = verify.verify_records(records, key, fast_verifier(key))
        assert summary["last_seq"] == z["seq"]                       # the Z is the newest record
        answer = dev.archived(summary["last_seq"], summary["last_hash"])
        assert answer["first_live"] == summary["last_seq"] + 1 and answer["erased_sectors"] >= 1
        with pytest.raises(DeviceRefused) as refused:
            dev.records(1)
        assert refused.value.name == "RANGE_INVALID" and "first_live is %d" % answer["first_live"] in str(refused.value)
        live = dev.records(None)
        assert dev.first_live == answer["first_live"] and record.type_of(live[0]) == record.CHECKPOINT
        head = dev.head(b"auditor")
        fields = verify.verify_head(head["statement"], head["signature"], key)
        assert fields[record.H_SEQ] == answer["checkpoint_seq"] and fields[record.H_CHALLENGE] == b"auditor"
        with pytest.raises(VerifyError):
            verify.verify_head(head["statement"], head["signature"][:-1] + bytes([head["signature"][-1] ^ 1]), key)
        assert dev.status(request_id=rid("arch-0"))["state"] == messages.UNKNOWN   # archived: the host dedupes
        assert dev.seal(rid("arch-new"), inv)[2] == sealed[-1][2] + 1
