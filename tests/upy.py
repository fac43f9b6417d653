"""Run code in real MicroPython 1.27 (the pinned WebAssembly build) from the pytest suite.

`run_upy` executes a script through ``tools/upy_run.mjs`` with ``protocol/`` and ``device/`` on
``sys.path`` and returns its stdout; any failure (traceback, non-zero SystemExit, harness error)
becomes an AssertionError carrying stderr.  Missing node or npm package is a failure, never a skip:
the MicroPython guarantee is the point of these tests.

Heap measurement, and why it is not a plain "smallest heapsize that works" bisection
---------------------------------------------------------------------------------------
This port is built with MICROPY_GC_SPLIT_HEAP_AUTO: ``heapsize`` is only the *first* heap area;
when an allocation does not fit, the port adds a new area (up to 2 GiB of WebAssembly memory)
instead of raising MemoryError.  Worse for measurement, its ``gc_collect()`` only marks a
collection pending; garbage is really collected when control returns to JavaScript (between
``#upy:collect`` parts of a script), never inside a call, not even by ``gc.collect()``.

So inside one part every byte allocated stays allocated.  `heap_stats` reports, for a given initial
heap, whether it ever had to grow (``grew``) and the largest live heap measured after a real
collection at the end of each part (``live``).  `min_heap` bisects (1 KiB resolution) the smallest
initial heap that never grows: the heap a board would need **if it never collected** inside a part,
an upper bound of the true peak (live data plus all garbage plus fragmentation).  ``live`` is a lower
bound.  Put imports and setup in an earlier part (``#upy:collect`` line) so compiling modules from
source is not charged to the operation measured.  A part that allocates more than ~2 GiB in total
dies with MemoryError even if almost everything is garbage: split long loops into parts.
"""

import json
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tools", "upy_run.mjs")
PACKAGE = os.path.join(ROOT, "node_modules", "@micropython", "micropython-webassembly-pyscript",
                       "micropython.mjs")
COLLECT = "#upy:collect"  # a line of its own: split point where garbage is really collected


def _node():
    node = shutil.which("node")
    if node is None:
        raise AssertionError("MicroPython tests need Node.js (>= 18) on PATH, then `npm ci` in %s"
                             % ROOT)
    if not os.path.isfile(PACKAGE):
        raise AssertionError("MicroPython WebAssembly build missing (%s): run `npm ci` in %s"
                             % (PACKAGE, ROOT))
    return node


def _run(script_text, heap, timeout, want_stats):
    """Run the script; return (stdout bytes, stats dict or None).  Raise AssertionError on failure."""
    node = _node()
    with tempfile.TemporaryDirectory(prefix="upy-") as tmp:
        script = os.path.join(tmp, "script.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(script_text)
        stats = os.path.join(tmp, "stats.json")
        cmd = [node, RUNNER, "--heap", str(heap)] + (["--stats", stats] if want_stats else [])
        try:
            proc = subprocess.run(cmd + [script], capture_output=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("MicroPython script timed out after %ss; stdout so far:\n%s"
                                 % (timeout, (e.stdout or b"").decode("utf-8", "replace")))
        if proc.returncode != 0:
            raise AssertionError("MicroPython exited with status %d\n--- stderr ---\n%s--- stdout ---\n%s"
                                 % (proc.returncode, proc.stderr.decode("utf-8", "replace"),
                                    proc.stdout.decode("utf-8", "replace")))
        if not want_stats:
            return proc.stdout, None
        with open(stats, encoding="utf-8") as f:
            return proc.stdout, json.load(f)


def run_upy_bytes(script_text, heap=1 << 20, timeout=120):
    """Run ``script_text`` as __main__ in MicroPython; return its stdout exactly as bytes."""
    return _run(script_text, heap, timeout, False)[0]


def run_upy(script_text, heap=1 << 20, timeout=120):
    """Run ``script_text`` as __main__ in MicroPython; return its stdout decoded as UTF-8."""
    return run_upy_bytes(script_text, heap, timeout).decode("utf-8")


def heap_stats(script_text, heap=1 << 20, timeout=120):
    """Run the script and return {"heap", "arena", "grew", "live"} (see the module docstring).

    ``arena`` is the usable GC pool of the initial area (``heap`` minus allocation tables),
    ``grew`` whether any part needed more than that, ``live`` the largest heap use measured after
    a real collection at the end of each part.
    """
    return _run(script_text, heap, timeout, True)[1]


def min_heap(script_text, lo=4 * 1024, hi=16 << 20, timeout=120):
    """Smallest initial heap (multiple of 1 KiB, in [lo, hi]) in which no part of the script ever
    needs the heap to grow: an upper bound of the peak heap on a board (see the module docstring).
    """
    lo_k, hi_k = lo // 1024, -(-hi // 1024)

    def fits(kib):
        return not heap_stats(script_text, kib * 1024, timeout)["grew"]

    if not fits(hi_k):
        raise AssertionError("script needs more than %d bytes of MicroPython heap" % (hi_k * 1024))
    if fits(lo_k):
        return lo_k * 1024
    while hi_k - lo_k > 1:  # invariant: lo_k does not fit, hi_k fits
        mid = (lo_k + hi_k) // 2
        if fits(mid):
            hi_k = mid
        else:
            lo_k = mid
    return hi_k * 1024
