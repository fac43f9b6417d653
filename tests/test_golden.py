"""The golden vectors: CPython and real MicroPython must reproduce protocol/vectors/golden.json
byte for byte (frames, journal records, flash image), and the vectors must verify on their own."""

import hashlib
import json
import os

from protocol import frames, merkle, messages, profile_host, record, verify
from tests.upy import run_upy
from tools.gen_vectors import OUT, ROOT, run_cpython

GOLDEN_RUN = os.path.join(ROOT, "tests", "golden_run.py")


def load():
    with open(OUT) as fh:
        return json.load(fh)


def test_cpython_reproduces_the_golden_vectors():
    assert run_cpython().splitlines() == load()["lines"]


def test_micropython_reproduces_the_golden_vectors():
    with open(GOLDEN_RUN) as fh:
        out = run_upy(fh.read())
    assert out.splitlines() == load()["lines"]


def test_golden_frames_decode_and_journal_verifies():
    vectors = load()
    answers = {}
    for item in vectors["exchange"]:
        events = frames.FrameDecoder().feed(bytes.fromhex(item["hex"]))
        assert [e[0] for e in events] == ["frame"]
        if item["dir"] == "resp":
            answers.setdefault(item["message"], []).append(messages.decode_response(events[0][2]))
    public_key = answers["INFO"][0][3]["public_key"]
    records = [bytes.fromhex(r) for r in vectors["journal_records"]]
    summary = verify.verify_records(records, public_key)
    assert summary["invoices"] == 20 and summary["first_seq"] == 1 and summary["unchecked"] == []
    assert len(summary["closures"]) == 3 and summary["profile_id"] == "seed-tg" and summary["credit_root"]
    live = [bytes.fromhex(r) for r in vectors["live_records"]]
    assert verify.verify_records(live, public_key)["counter"] == summary["counter"] + 2   # and the batch
    live, batch_records = live[:-2], live[-2:]
    segment = verify.verify_records(live, public_key)          # the M closure anchors the live journal
    assert segment["checkpoints"] == [summary["last_seq"] + 1] and segment["archived_seq"] == summary["closures"][0]
    assert segment["totals"] == summary["totals"] and segment["counter"] == summary["counter"]
    assert segment["profile_hash"] == summary["profile_hash"]
    first, replay = answers["COMMIT"][0][3], answers["COMMIT"][1][3]
    assert replay["replayed"] and replay["sealed"] == first["sealed"]
    assert answers["COMMIT"][2][1] == 0x30   # NONCE_UNKNOWN
    seals = answers["SEAL"]
    assert seals[1][3]["replayed"] and seals[1][3]["sealed"] == seals[0][3]["sealed"] and seals[2][1] == 0x35
    head = answers["HEAD"][0][3]
    fields = verify.verify_head(head["statement"], head["signature"], public_key)
    assert fields[7] == b"golden audit"
    archived = [a for a in answers["ARCHIVED"]]
    assert archived[0][1] == 0x56 and archived[1][1] == 0x54     # ARCHIVE_OPEN_PERIOD, ARCHIVE_HASH_MISMATCH
    assert archived[2][3]["erased_sectors"] == 1 and archived[3][3]["erased_sectors"] == 0
    profiles = answers["PROFILE"]
    assert profiles[0][3]["installed"] and not profiles[1][3]["installed"] and profiles[2][1] == 0x82
    seed = profile_host.load_bytes("seed-tg")
    empty, read = answers["PROFILE_READ"][0][3], answers["PROFILE_READ"][1][3]
    assert empty == {"data": b"", "profile_id": "", "profile_hash": b""}
    assert read == {"data": seed, "profile_id": "seed-tg", "profile_hash": hashlib.sha256(seed).digest()}
    assert read["profile_hash"] == summary["profile_hash"] == profiles[0][3]["profile_hash"]
    evidence = answers["EVIDENCE"]
    assert evidence[0][3]["original"] == 1 and seals[3][3]["replayed"] is False
    assert evidence[1][1] == 0x93 and seals[4][1] == 0x97    # CREDIT_EVIDENCE_STALE, then CREDIT_EXCEEDS
    closes = answers["CLOSE"]
    z, m, y = closes[0][3], closes[2][3], closes[3][3]
    assert closes[1][1] == 0xA0                              # CLOSE_PERIOD: a Z of an earlier day
    assert m["seq"] == z["seq"] + 1 and y["seq"] == m["seq"] + 1
    ybody = record.decode(y["record"])[0]
    assert (ybody[record.K_KIND], ybody[record.K_PERIOD], ybody[record.K_END]) == ("Y", "2026", m["hash"])
    assert ybody[record.K_RANGE] == [m["seq"], m["seq"]] and ybody[record.K_MERKLE] == merkle.root([m["hash"]])
    assert answers["X"][0][3]["figures"][24] == [z["seq"] + 1, y["seq"]]
    assert answers["READ_JOURNAL"][0][1] == 0x52 and answers["READ_JOURNAL"][1][3]["records"] == live
    batches = [a[3] for a in answers["SEAL_BATCH"]]
    assert [b["received"] for b in batches] == [300, batches[1]["received"], 300, batches[1]["received"]]
    first, again = batches[1], batches[3]
    s = first["first"]
    assert first["records"] == batch_records and first["last"] == s + 1
    assert first["results"][:3] == [[0, s, False], [0, s + 1, False], [0, s, True]]
    assert [r[0] for r in first["results"][3:]] == [0x14, 0x20, 0x35]   # BATCH_CREDIT, malformed, reused
    assert again["results"][:3] == [[0, s, True], [0, s + 1, True], [0, s, True]] and again["records"] == []
    assert again["results"][3:] == first["results"][3:] and again["first"] == s + 2
