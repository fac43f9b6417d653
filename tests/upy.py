"""Run code in real MicroPython 1.27 (the pinned WebAssembly build) from the pytest suite.

`run_upy` executes a script through ``tools/upy_run.mjs`` with ``protocol/`` and ``device/`` on
``sys.path`` and returns its stdout; any failure (traceback, non-zero SystemExit, harness error)
becomes an AssertionError carrying stderr.  Missing node or npm package is a failure, never a skip:
the MicroPython guarantee is the point of these tests.

Heap measurement: read this before quoting a number
---------------------------------------------------
This port is built with MICROPY_GC_SPLIT_HEAP_AUTO: ``heapsize`` is only the *first* heap area;
when an allocation does not fit, the port adds a new area (up to 2 GiB of WebAssembly memory)
instead of raising MemoryError.  Worse for measurement, its ``gc_collect()`` only marks a
collection pending; garbage is really collected when control returns to JavaScript (between
``#upy:collect`` parts of a script), never inside a call, not even by ``gc.collect()``.

So inside one part every byte allocated stays allocated, and a "smallest heapsize" can only mean
the smallest heap in which no part ever needs the port to add an area, i.e. the heap a board would
need if it collected only between parts (``#upy:collect`` lines).  That is what `min_heap` bisects
(1 KiB resolution): an upper bound of the true peak (live data + all garbage + fragmentation).
With ``last_part=True`` only the last part is measured, after the earlier ones (imports, setup)
were collected, so compiling sources is not charged; the modules' bytecode still is (a board with
frozen modules keeps it in flash).  ``heap_stats(...)["live"]`` (after a real collection) is a
lower bound.  A part allocating over ~2 GiB in total dies with MemoryError even if it is all
garbage: split long loops into parts.

The collector is conservative: any word that holds the address of a block keeps that block, text
included.  The areas a long part makes the port add used to land 2 to 12 MiB into linear memory,
the very range a string's last three characters and its NUL spell as a little-endian word
(``"pos\0"`` is 0x00736f70), so live qstrs and string constants kept whatever garbage the part
had left at such addresses: after the board session of tests/test_board_fakes.py, 1.4 to 14.7 KB
more "live" than the session keeps, a different amount in each run (its certificates move the
garbage).  When measuring, ``tools/upy_run.mjs`` therefore takes the first 64 MiB of linear
memory before any area is added.  Text spells no address from 16 MiB up to 512 MiB (a word of
four characters is at least 0x20202020), nor a board's RAM (0x20000000 on the RP2040), and the
board session now measures the same in every run.
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


def _run(script_text, heap, timeout, stats_args, lib=None, root=None):
    """Run the script; return (stdout bytes, stats dict or None).  Raise AssertionError on failure."""
    node = _node()
    with tempfile.TemporaryDirectory(prefix="upy-") as tmp:
        script, stats = os.path.join(tmp, "script.py"), os.path.join(tmp, "stats.json")
        with open(script, "w", encoding="utf-8") as f:
            f.write(script_text)
        cmd = [node, RUNNER, "--heap", str(heap)]
        if lib is not None:
            cmd += ["--lib", os.path.abspath(lib)]
        if root is not None:
            cmd += ["--root", os.path.abspath(root)]
        if stats_args is not None:
            cmd += ["--stats", stats] + stats_args
        try:
            proc = subprocess.run(cmd + [script], capture_output=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("MicroPython script timed out after %ss; stdout so far:\n%s"
                                 % (timeout, (e.stdout or b"").decode("utf-8", "replace")))
        if proc.returncode != 0:
            raise AssertionError("MicroPython exited with status %d\n--- stderr ---\n%s--- stdout ---\n%s"
                                 % (proc.returncode, proc.stderr.decode("utf-8", "replace"),
                                    proc.stdout.decode("utf-8", "replace")))
        if stats_args is None:
            return proc.stdout, None
        if not os.path.exists(stats):
            raise AssertionError("no heap statistics: did the script end with SystemExit?")
        with open(stats, encoding="utf-8") as f:
            return proc.stdout, json.load(f)


def run_upy_bytes(script_text, heap=1 << 20, timeout=120, lib=None, root=None):
    """Run ``script_text`` as __main__ in MicroPython; return its stdout exactly as bytes.

    ``lib``: a host directory whose files are copied into ``/lib`` too (fake modules, data);
    ``root``: where ``protocol/`` and ``device/`` sources come from (default: this checkout)."""
    return _run(script_text, heap, timeout, None, lib, root)[0]


def run_upy(script_text, heap=1 << 20, timeout=120, lib=None, root=None):
    """Run ``script_text`` as __main__ in MicroPython; return its stdout decoded as UTF-8."""
    return run_upy_bytes(script_text, heap, timeout, lib, root).decode("utf-8")


def heap_stats(script_text, heap=1 << 20, headroom=None, timeout=120, lib=None, root=None):
    """Run the script; return the runner's statistics (lists have one entry per part):

    ``arena`` usable bytes of the heap (``heap`` minus GC tables; before the last part when
    ``headroom`` is given), ``grew[i]`` whether part i needed more heap than it had (part 0 also
    counts start-up), ``live[i]`` bytes in use after a real collection at the end of part i,
    ``ballast`` bytes made unusable before the last part so only ~``headroom`` bytes were free.
    """
    extra = [] if headroom is None else ["--headroom", str(headroom)]
    return _run(script_text, heap, timeout, extra, lib, root)[1]


def _bisect_kib(fits, lo_k, hi_k):
    """Smallest k in [lo_k, hi_k] with fits(k) true, assuming fits is monotonic."""
    if not fits(hi_k):
        raise AssertionError("needs more than %d KiB of MicroPython heap" % hi_k)
    if fits(lo_k):
        return lo_k
    while hi_k - lo_k > 1:  # invariant: lo_k does not fit, hi_k fits
        mid = (lo_k + hi_k) // 2
        if fits(mid):
            hi_k = mid
        else:
            lo_k = mid
    return hi_k


def min_heap(script_text, lo=4 * 1024, hi=16 << 20, last_part=False, timeout=120):
    """Smallest heap, in bytes at 1 KiB resolution like ``--heap``, that the script needs when
    garbage is collected only between parts: an upper bound of the peak heap on a board.

    By default every part must fit in an initial heap bisected in [lo, hi].  With ``last_part``,
    the earlier parts (imports, setup) run in a ``hi`` heap and only the last part is measured:
    the holes they left are filled, the free space left after them is bisected, and the result is
    what they left live (compacted: their fragmentation is not charged) plus the contiguous free
    space the last part needed.
    """
    if not last_part:
        k = _bisect_kib(lambda kib: not any(heap_stats(script_text, kib * 1024, None, timeout)["grew"]),
                        lo // 1024, -(-hi // 1024))
        return k * 1024
    found = {}

    def fits(kib):
        stats = found[kib] = heap_stats(script_text, hi, kib * 1024, timeout)
        if any(stats["grew"][:-1]):
            raise AssertionError("the parts before the last need more than hi=%d bytes" % hi)
        return not stats["grew"][-1]

    stats = found[_bisect_kib(fits, 0, -(-hi // 1024))]
    usable = stats["arena"] - stats["ballast"]
    return -(-usable * hi // stats["arena"] // 1024) * 1024  # back to --heap units (GC tables)
