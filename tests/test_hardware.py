"""Hardware tests, opt-in: ``.venv/bin/pytest tests/test_hardware.py --board auto``.

They run the host side against a real board flashed with ``fiscal board deploy``: handshake,
provisioning (with a throwaway test authority when the board is fresh), a sealed test invoice,
a retransmitted COMMIT, and the whole journal read back and verified. Each run adds records to
the board's journal for good: use a development board.
"""

import time

import pytest

from hostd.boards import authority
from hostd.link.client import DeviceClient
from hostd.books.keys import fast_verifier
from hostd.boards.provision import provision
from protocol import record, verify
from tests.devkit import encode_invoice, make_invoice

pytestmark = pytest.mark.board


@pytest.fixture(scope="module")
def client(board_port, tmp_path_factory):
    with DeviceClient(board_port, timeout=10.0) as probe:
        fresh = not probe.handshake()["public_key"]
    if fresh:
        auth = str(tmp_path_factory.mktemp("authority"))
        authority.init(auth)
        provision(board_port, auth)
    with DeviceClient(board_port, timeout=10.0) as c:
        info = c.handshake()
        c.set_time(max(int(time.time()), info["last_time"]))
        yield c


def test_board_identifies_itself(client):
    info = client.call("INFO")
    assert info["device_id"] and len(info["public_key"]) == 64
    assert info["fault"] == "" and info["clock"] is not None


def test_board_seals_and_replays(client):
    before = client.call("INFO")["counter"]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    canonical = encode_invoice(make_invoice(timestamp=stamp))
    rid = record.request_id_for("2p:hardware-%s" % stamp)
    prepared = client.prepare(canonical, rid)
    sealed = client.commit(prepared["nonce"])
    assert sealed["replayed"] is False and sealed["sealed"][2] == before + 1
    assert client.commit(prepared["nonce"])["sealed"] == sealed["sealed"]
    assert client.seal(rid, canonical) == sealed["sealed"]          # the device dedupes the request id


def test_board_journal_verifies(client):
    info = client.call("INFO")
    records, first = [], info["first_live"]
    while first <= info["seq"]:
        page = client.call("READ_JOURNAL", first=first, count=64)
        records += page["records"]
        first = page["next"]
    summary = verify.verify_records(records, info["public_key"], fast_verifier(info["public_key"]))
    assert summary["counter"] == info["counter"] and summary["last_hash"] == info["last_hash"]
