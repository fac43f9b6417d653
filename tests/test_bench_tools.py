"""tools/bench and tools/bench_scale run end to end and print what they promise (issue 15).

Only that they run and report consistent figures: nothing here asserts on time
(docs/CONTRIBUTING.md); the figures themselves are for people to read.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATIOS = {"single_p50_vs_primitives", "c16_vs_signer", "batch_vs_signer", "verify_vs_bare"}


def run_tool(*args, timeout=180):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", args[0])] + list(args[1:]),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_bench_quick_json_has_the_four_ratios_and_a_verified_journal():
    doc = run_tool("bench", "--quick", "--json")
    assert set(doc["ratios"]) == RATIOS
    for name, value in doc["ratios"].items():
        assert isinstance(value, float) and value > 0, (name, value)
        assert doc["ratio_runs"][name] == [value]
    journal = doc["journal"]
    assert journal["verified"] is True
    assert journal["sent"] == journal["distinct_fiscal_numbers"] == journal["journal_invoices"] == journal["counter"]
    e2e = doc["end_to_end"]
    assert journal["sent"] == sum(e2e[p]["n"] for p in ("warmup", "one_client", "clients_16")) + e2e["batch"]["invoices"]
    assert e2e["batch"]["per_request"] == 100 and e2e["batch"]["requests"] >= 1
    parts = doc["model"]["parts_ms"]
    assert set(parts) == {"http_rtt", "pty_rtt", "sign", "flash_program", "sqlite_commit"}
    assert doc["model"]["sum_ms"] == pytest.approx(sum(parts.values()))
    assert doc["ratios"]["single_p50_vs_primitives"] == pytest.approx(e2e["one_client"]["p50_ms"] / doc["model"]["sum_ms"])
    woken = doc["woken"]   # the same parts, each after a sleep: beside the ratios, not one of them
    assert woken["idle_s"] > 0 and set(woken["model"]["parts_ms"]) == set(parts)
    assert woken["model"]["sum_ms"] == pytest.approx(sum(woken["model"]["parts_ms"].values()))
    assert woken["single_p50_vs_woken_primitives"] == pytest.approx(
        e2e["one_client"]["p50_ms"] / woken["model"]["sum_ms"])
    beside = {k: v["rate"] for k, v in e2e["signer_beside"].items()}   # the signer timed around each phase
    assert set(beside) == {"before_one", "one_to_16", "16_to_batch", "after_batch"} and min(beside.values()) > 0
    assert doc["ratios"]["c16_vs_signer"] == pytest.approx(
        e2e["clients_16"]["rate"] * 2 / (beside["one_to_16"] + beside["16_to_batch"]))
    assert doc["ratios"]["batch_vs_signer"] == pytest.approx(
        e2e["batch"]["rate"] * 2 / (beside["16_to_batch"] + beside["after_batch"]))
    assert doc["verify"]["records"] == journal["journal_records"]
    for phase in ("one_client", "clients_16", "batch"):   # where the CPU went, per process
        cpu = e2e[phase]["cpu_ms_per_invoice"]
        assert set(cpu) == {"daemon", "emulator", "client", "total"}
        assert cpu["daemon"] > 0 and cpu["emulator"] > 0 and cpu["client"] >= 0
        assert cpu["total"] == pytest.approx(cpu["daemon"] + cpu["emulator"] + cpu["client"])
        assert 0 < e2e[phase]["cores_busy"] <= (os.cpu_count() or 1) * 1.25   # clock-tick rounding


class _Clock:
    """A fake time module for tools.bench_lib.timed: sleeping and calling move it on."""

    def __init__(self):
        self.now, self.slept = 0.0, []

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_timed_sleeps_before_each_call_and_times_only_the_calls(monkeypatch):
    sys.path.insert(0, ROOT)
    from tools import bench_lib
    clock = _Clock()
    monkeypatch.setattr(bench_lib, "time", clock)

    def call(i):
        clock.now += 0.001   # each call takes 1 ms of the fake clock
    out = bench_lib.timed(call, 0.0, least=4, most=4, idle=0.02)
    assert clock.slept == [0.02] * 4                                  # one sleep before each call
    assert out["n"] == 4 and out["mean_ms"] == pytest.approx(1.0)     # the sleeps are not in the figures
    assert out["rate"] == pytest.approx(1000.0)                       # calls per second of their own time
    busy = bench_lib.timed(call, 0.0, least=4, most=4)
    assert clock.slept == [0.02] * 4 and busy["rate"] == pytest.approx(1000.0)


def test_bench_scale_smoke_at_1000_invoices():
    doc = run_tool("bench_scale", "--max", "1000", "--quick", "--requests", "50", "--json")
    assert doc["stopped"] is None and doc["failed"] is False
    [point] = doc["points"]
    assert point["invoices"] == 1000 and point["device"]["counter"] == 1000
    assert set(point["reads"]) == {"get_by_number", "list_page1", "list_queued", "list_synced", "status"}
    assert all(r["n"] == 50 for r in point["reads"].values())
    assert point["restart"]["ready_s"] >= point["restart"]["socket_s"] > 0
    assert all(v == 1.0 for v in point["p99_vs_first"].values())
