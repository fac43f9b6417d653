"""The MicroPython harness (tools/upy_run.mjs + tests/upy.py) works, and can fail.

Also pins down, as executable facts, the traps of the WebAssembly port that the other
MicroPython tests and the heap figures depend on (dict order, heap growth, deferred GC).
"""

import pytest

import protocol.errors
from tests import upy
from tests.upy import heap_stats, min_heap, run_upy, run_upy_bytes


def test_prints_a_known_value():
    assert run_upy("print(6 * 7)\nprint('done')\n") == "42\ndone\n"


def test_really_micropython():
    out = run_upy("import sys\nprint(sys.implementation.name, sys.implementation.version[:2])\n")
    assert out == "micropython (1, 27)\n"


def test_uncaught_exception_fails_with_traceback():
    with pytest.raises(AssertionError) as info:
        run_upy("def f():\n    raise ValueError('boom 123')\nprint('before')\nf()\n")
    message = str(info.value)
    assert "status 1" in message
    assert "Traceback (most recent call last):" in message
    assert 'line 2, in f' in message and "ValueError: boom 123" in message
    assert "before" in message  # stdout written before the failure is kept
    assert len(message) < 2000  # the Python traceback, not the minified JavaScript dump


def test_system_exit_status():
    with pytest.raises(AssertionError, match="status 3"):
        run_upy("import sys\nsys.exit(3)\n")
    assert run_upy("import sys\nprint('a')\nsys.exit(0)\nprint('b')\n") == "a\n"
    assert run_upy("import sys\nprint('a')\nsys.exit()\n") == "a\n"


def test_stderr_is_not_stdout():
    assert run_upy("import sys\nprint('err', file=sys.stderr)\nprint('out')\n") == "out\n"


def test_non_ascii_and_raw_bytes_pass_through():
    text = "π € ü 日本 \U0001f600"
    assert run_upy("print(%r)\n" % text) == text + "\n"
    raw = run_upy_bytes("import sys\nsys.stdout.buffer.write(bytes(range(256)))\n")
    assert raw == bytes(range(256))


def test_protocol_errors_imports_in_micropython():
    out = run_upy("import protocol.errors as e\nprint(e.code_of('NONCE_EXPIRED'))\n"
                  "print(e.name_of(0x31), e.NonceError('NONCE_EXPIRED').code)\n")
    assert out == "49\nNONCE_EXPIRED 49\n"
    assert protocol.errors.code_of("NONCE_EXPIRED") == 0x31 == 49  # same table in CPython


def test_dict_order_is_not_insertion_order():
    # The trap CONTRIBUTING.md warns about: never let an order come from a dict.
    script = ("d = {}\nfor k in ['zeta', 'alpha', 'mid', 'beta', 'omega']:\n    d[k] = 1\n"
              "print(' '.join(d))\n")
    assert run_upy(script) == "omega alpha beta mid zeta\n"
    d = {}
    for k in ["zeta", "alpha", "mid", "beta", "omega"]:
        d[k] = 1
    assert list(d) == ["zeta", "alpha", "mid", "beta", "omega"]  # CPython keeps insertion order


def test_heapsize_is_not_a_hard_limit():
    # 64 KiB initial heap, 256 KiB live: no MemoryError, the port adds a heap area instead.
    script = "b = bytearray(256 * 1024)\nprint(len(b))\n"
    assert run_upy(script, heap=64 * 1024) == "262144\n"
    stats = heap_stats(script, heap=64 * 1024)
    assert stats["grew"] == [True] and stats["arena"] < 64 * 1024
    assert 256 * 1024 <= stats["live"][0] < 256 * 1024 + 8192
    assert heap_stats(script, heap=300 * 1024)["grew"] == [False]


def test_gc_collect_inside_a_call_frees_nothing():
    # Garbage is only collected when control returns to JavaScript (a #upy:collect line).
    script = ("import gc\na0 = gc.mem_alloc()\nfor i in range(200):\n    x = bytearray(1000)\n"
              "gc.collect()\nprint(gc.mem_alloc() - a0 >= 200 * 1000)\n"
              + upy.COLLECT + "\nprint(gc.mem_alloc() - a0 < 10 * 1000)\n")
    assert run_upy(script) == "True\nTrue\n"


def test_collect_marker_collects_even_a_little_garbage():
    # below the port's 16 KiB automatic threshold: the runner itself requests the collection
    script = ("import gc\na0 = gc.mem_alloc()\nx = [bytearray(100) for i in range(20)]\nx = None\n"
              + upy.COLLECT + "\nprint(gc.mem_alloc() - a0 < 1000)\n")
    assert run_upy(script) == "True\n"


def test_collect_marker_keeps_line_numbers():
    with pytest.raises(AssertionError, match="line 5, in <module>"):
        run_upy("x = 1\n%s\n\ny = 2\nraise KeyError(y)\n" % upy.COLLECT)


def test_min_heap_counts_live_data_and_uncollected_garbage():
    keep = min_heap("b = bytearray(100000)\n", lo=64 * 1024, hi=256 * 1024)
    assert 100000 < keep < 100000 + 16 * 1024
    garbage = "for i in range(%d):\n    x = bytearray(1000)\n"  # never collected inside a part
    assert 100000 < min_heap(garbage % 100, lo=64 * 1024, hi=256 * 1024) < 100000 + 16 * 1024
    # In two parts, the garbage of the first is collected before the second runs.
    split = garbage % 50 + upy.COLLECT + "\n" + garbage % 50
    assert 50000 < min_heap(split, lo=16 * 1024, hi=128 * 1024) < 50000 + 16 * 1024


def test_min_heap_of_last_part_excludes_setup_garbage():
    setup = "keep = [bytearray(100) for i in range(300)]\njunk = [bytearray(1000) for i in range(200)]\n"
    script = setup + "del junk\n" + upy.COLLECT + "\nb = bytearray(50000)\n"
    whole = min_heap(script, lo=128 * 1024, hi=512 * 1024)
    last = min_heap(script, hi=256 * 1024, last_part=True)
    live_setup = heap_stats(script)["live"][0]
    assert whole > 200 * 1000  # the setup's garbage counts when everything is measured
    assert live_setup + 50000 < last < live_setup + 50000 + 16 * 1024


def test_missing_package_fails_with_npm_ci_hint(monkeypatch):
    monkeypatch.setattr(upy, "PACKAGE", upy.PACKAGE + ".missing")
    with pytest.raises(AssertionError, match="npm ci"):
        run_upy("print(1)\n")


def test_missing_node_fails_with_hint(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AssertionError, match="Node.js"):
        run_upy("print(1)\n")
