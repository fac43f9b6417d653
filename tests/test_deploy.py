"""`fiscal board deploy`: the file list, the generated mip/freeze manifests, and the deploy itself.

Three layers, each able to fail on its own:
- the manifest (board/manifest.json) against the repository: every file exists, every module of
  protocol/ and device/ is placed, nothing CPython-only reaches the board, everything compiles;
- board/package.json and board/manifest.py against the manifest: the committed text equals the
  generator's, and manifest.py *executed* with MicroPython's manifest semantics names exactly the
  manifest's files;
- the deploy against a fake board (tests/boardsim.py FakeBoard): the step logic and the failure
  paths a real board cannot be made to produce on demand. The deploy against real MicroPython with
  the real mpremote is tests/test_deploy_upy.py.
"""

import ast
import hashlib
import json
import os
import sys

import pytest
from click.testing import CliRunner

from hostd.boards import deploy
from hostd.boards import manifest as board_files
from hostd.boards.manifest import ROOT, load_manifest, render_manifest_py, render_package_json
from hostd.cli.main import main
from tests.boardsim import FakeBoard

MANIFEST = load_manifest()
BOARD_SOURCES = [src for src, _ in MANIFEST["files"]]
# What a board's firmware provides (MicroPython library docs); plus the mip dependencies' packages.
MICROPYTHON_MODULES = {"array", "binascii", "collections", "errno", "gc", "hashlib", "io", "json", "machine",
                       "micropython", "os", "random", "re", "select", "struct", "sys", "time", "vfs", "rp2",
                       "esp32", "pyb", "network", "uctypes", "deflate", "cryptolib", "platform", "heapq"}
DEP_PACKAGES = {"usb"}  # usb-device-cdc installs usb/device/cdc.py (and usb-device: usb/device/core.py)
# Lazy imports of a host-only module that a board file may hold, each only on a path the device
# never takes. protocol/invoice.py falls back to the shipped default profile when a caller passes
# none (hosts and tests); the device always passes its installed one (device/sealing.py), and
# tests/test_board_fakes.py seals, credits and closes with only the deployed .mpy files, where
# an import of profile_host would fail.
HOST_FALLBACKS = {("protocol/invoice.py", "protocol.profile_host")}


def test_every_file_of_the_manifest_exists():
    for src, _ in MANIFEST["files"] + MANIFEST["host_only"]:
        assert os.path.isfile(os.path.join(ROOT, src)), src


def test_library_files_keep_their_module_path_and_destinations_are_unique():
    dests = [dest for _, dest in MANIFEST["files"] + MANIFEST["generated"]]
    assert len(dests) == len(set(dests))
    for src, dest in MANIFEST["files"]:
        assert dest == "lib/" + src or (dest == "main.py" and src == "board/main.py"), (src, dest)


def test_every_module_is_on_the_board_or_declared_host_only():
    placed = BOARD_SOURCES + [src for src, _ in MANIFEST["host_only"]]
    assert len(placed) == len(set(placed)), "a file is both on the board and host-only"
    for package in ("protocol", "device"):
        for name in sorted(os.listdir(os.path.join(ROOT, package))):
            if name.endswith(".py"):
                assert "%s/%s" % (package, name) in placed, (
                    "%s/%s is neither in board/manifest.json files nor host_only" % (package, name))


def _imports(path):
    """Dotted names a file imports (``from p import a`` yields p and p.a), anywhere in it."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "%s: relative import" % path
            yield node.module
            for alias in node.names:
                yield node.module + "." + alias.name


@pytest.mark.parametrize("src", BOARD_SOURCES)
def test_board_files_import_only_what_the_board_has(src):
    name = os.path.basename(src)
    assert not any(word in name for word in ("emu", "emulator", "host", "cpython")), src
    on_board = {dest[len("lib/"):] for _, dest in MANIFEST["files"] if dest.startswith("lib/")}
    for module in _imports(src):
        top = module.split(".")[0]
        if (src, module) in HOST_FALLBACKS:
            continue
        if top in ("protocol", "device"):
            path = module.replace(".", "/")
            is_module = os.path.isfile(os.path.join(ROOT, path + ".py"))
            is_package = os.path.isdir(os.path.join(ROOT, path))
            if is_module:
                assert path + ".py" in on_board, "%s imports %s, which is not on the board" % (src, module)
            elif is_package:
                assert path + "/__init__.py" in on_board, "%s imports package %s" % (src, module)
        else:
            assert top in MICROPYTHON_MODULES | DEP_PACKAGES, "%s imports %s: not on a board" % (src, module)


def test_the_import_check_catches_a_host_module(tmp_path, monkeypatch):
    """The gate above must be able to fail: a board file importing the host verifier."""
    bad = "device/_gate_probe.py"
    monkeypatch.setattr(sys.modules[__name__], "ROOT", str(tmp_path))
    os.makedirs(tmp_path / "device")
    os.makedirs(tmp_path / "protocol")
    (tmp_path / bad).write_text("from protocol import verify\n")
    (tmp_path / "protocol" / "verify.py").write_text("")
    with pytest.raises(AssertionError, match="not on the board"):
        test_board_files_import_only_what_the_board_has(bad)


def test_plan_compiles_every_library_module_and_keeps_main_py_source():
    plan = deploy.build_plan(MANIFEST)
    by_dest = {item.dest: item for item in plan["items"]}
    assert len(by_dest) == len(MANIFEST["files"]) + len(MANIFEST["generated"])
    for src, dest in MANIFEST["files"]:
        if dest == "main.py":
            with open(os.path.join(ROOT, src), "rb") as fh:
                assert by_dest["main.py"].data == fh.read()
        else:
            data = by_dest[dest[:-3] + ".mpy"].data
            assert data[:2] == b"M\x06", (dest, data[:4])   # .mpy version 6: MicroPython >= 1.22
    from device.p256_table import TABLE
    table = by_dest["lib/device/p256_table.bin"]
    assert table.data == TABLE and len(table.data) == 61440
    assert table.sha256 == hashlib.sha256(TABLE).hexdigest()
    assert plan["dirs"] == ["lib", "lib/device", "lib/protocol"]
    assert "lib/protocol/cbor.py" in plan["stale"] and "main.py" not in plan["stale"]


def test_compilation_is_reproducible_so_redeploys_skip_unchanged_files():
    assert deploy.compile_mpy("protocol/cbor.py") == deploy.compile_mpy("protocol/cbor.py")


def test_source_plan_copies_the_files_byte_for_byte():
    plan = deploy.build_plan(MANIFEST, source=True)
    for item, (src, dest) in zip(plan["items"], MANIFEST["files"]):
        assert item.dest == dest
        with open(os.path.join(ROOT, src), "rb") as fh:
            assert item.data == fh.read()
    assert "lib/protocol/cbor.mpy" in plan["stale"]


def test_compile_errors_name_the_file(tmp_path):
    os.makedirs(tmp_path / "protocol")
    (tmp_path / "protocol" / "broken.py").write_text("def f(:\n")
    with pytest.raises(deploy.DeployFailed, match="protocol/broken.py"):
        deploy.compile_mpy("protocol/broken.py", root=str(tmp_path))


def test_a_generated_file_without_generator_is_a_manifest_error():
    manifest = dict(MANIFEST, generated=[["nothing.bin", "lib/nothing.bin"]])
    with pytest.raises(board_files.ManifestError, match="nothing.bin"):
        deploy.build_plan(manifest, source=True)


@pytest.mark.parametrize("dest", ["/lib/x.py", "lib/../x.py", "other/x.py"])
def test_manifest_rejects_destinations_outside_lib_or_root(tmp_path, dest):
    doc = dict(MANIFEST, files=[["protocol/cbor.py", dest]])
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(board_files.ManifestError):
        load_manifest(str(tmp_path / "m.json"))


# --- board/package.json and board/manifest.py ---------------------------------------------------

def test_package_json_is_generated_from_the_manifest():
    with open(board_files.manifest_path("package.json"), encoding="utf-8") as fh:
        text = fh.read()
    assert text == render_package_json(MANIFEST), "run: .venv/bin/python -m hostd.boards.manifest"
    doc = json.loads(text)
    expected = [[dest[len("lib/"):], "github:open-fiscal/fiscal-device/" + src]
                for src, dest in MANIFEST["files"] if dest.startswith("lib/")]
    assert doc["urls"] == expected and doc["deps"] == [["usb-device-cdc", "latest"]]
    assert doc["version"] == MANIFEST["version"]
    for _, url in doc["urls"]:
        assert os.path.isfile(os.path.join(ROOT, url.split("/", 2)[2])), url


def test_manifest_py_is_generated_and_freezes_exactly_the_manifest(tmp_path):
    with open(board_files.manifest_path("manifest.py"), encoding="utf-8") as fh:
        text = fh.read()
    assert text == render_manifest_py(MANIFEST), "run: .venv/bin/python -m hostd.boards.manifest"
    frozen, required, included = {}, [], []
    board_dir = os.path.dirname(board_files.manifest_path("manifest.py"))

    def package(package_path, files=None, base_path=".", opt=None):  # tools/manifestfile.py rules
        assert files is not None, "an explicit file list, so nothing host-only is frozen by accident"
        for name in files:
            frozen[package_path + "/" + name] = os.path.normpath(os.path.join(board_dir, base_path, package_path, name))

    def module(module_path, base_path=".", opt=None):
        frozen[module_path] = os.path.normpath(os.path.join(board_dir, base_path, module_path))

    exec(compile(text, "board/manifest.py", "exec"), {
        "package": package, "module": module, "require": lambda name, **kw: required.append(name),
        "include": included.append})
    expected = {dest[len("lib/"):] if dest.startswith("lib/") else dest: os.path.join(ROOT, src)
                for src, dest in MANIFEST["files"]}
    assert frozen == expected
    assert required == [name for name, _ in MANIFEST["deps"]]
    assert included == ["$(PORT_DIR)/boards/manifest.py"]


# --- the deploy against a fake board ------------------------------------------------------------

@pytest.fixture(scope="module")
def mpy_plan():
    return deploy.build_plan(MANIFEST)


def test_deploy_writes_verifies_and_resets(tmp_path, mpy_plan):
    fake = FakeBoard(tmp_path)
    summary = deploy.deploy(mpy_plan, fake)
    for item in mpy_plan["items"]:
        with open(tmp_path / item.dest, "rb") as fh:
            assert fh.read() == item.data, item.dest
    assert [c[0] for c in fake.calls] == ["exec", "mip", "exec", "fs", "fs", "reset"]
    assert fake.calls[1] == ["mip", "install", "usb-device-cdc"]
    assert summary["reset"] == "hard" and summary["board_mpy"] == 6
    assert all(f["copied"] for f in summary["files"]) and len(summary["files"]) == len(mpy_plan["items"])
    again = deploy.deploy(mpy_plan, FakeBoard(tmp_path), deps=False, reset=False)
    assert not any(f["copied"] for f in again["files"]) and again["reset"] == "skipped"


def test_no_deps_and_index_options(tmp_path, mpy_plan):
    fake = FakeBoard(tmp_path)
    deploy.deploy(mpy_plan, fake, deps=False)
    assert not any(c[0] == "mip" for c in fake.calls)
    fake = FakeBoard(tmp_path)
    deploy.deploy(mpy_plan, fake, index="/srv/mip")
    assert ["mip", "install", "--index", "/srv/mip", "usb-device-cdc"] in fake.calls


def test_every_mismatching_file_is_named(tmp_path, mpy_plan):
    bad = {"lib/device/core.mpy", "lib/device/p256_table.bin"}
    with pytest.raises(deploy.VerifyMismatch) as caught:
        deploy.deploy(mpy_plan, FakeBoard(tmp_path, corrupt=bad))
    assert {f["dest"] for f in caught.value.files} == bad
    assert caught.value.exit_code == 1 and "lib/device/core.mpy" in caught.value.detail


def test_a_stale_source_beside_its_mpy_is_removed(tmp_path, mpy_plan):
    os.makedirs(tmp_path / "lib" / "protocol")
    (tmp_path / "lib" / "protocol" / "cbor.py").write_text("OLD = 1\n")
    summary = deploy.deploy(mpy_plan, FakeBoard(tmp_path))
    assert summary["removed"] == ["lib/protocol/cbor.py"]
    assert not os.path.exists(tmp_path / "lib" / "protocol" / "cbor.py")


def test_a_board_with_another_mpy_version_is_refused_before_copying(tmp_path, mpy_plan):
    fake = FakeBoard(tmp_path, mpy_version=5)
    with pytest.raises(deploy.DeployFailed, match="--source"):
        deploy.deploy(mpy_plan, fake)
    assert len(fake.calls) == 1
    deploy.deploy(deploy.build_plan(MANIFEST, source=True), FakeBoard(tmp_path, mpy_version=5))


def test_an_unreachable_board_is_exit_3_and_other_failures_exit_1(tmp_path, mpy_plan):
    busy = "mpremote: failed to access /dev/ttyACM0 (it may be in use by another program)"
    with pytest.raises(deploy.BoardUnreachable) as caught:
        deploy.deploy(mpy_plan, FakeBoard(tmp_path, fail=("exec", busy)), sleep=lambda s: None)
    assert caught.value.exit_code == 3 and "in use" in caught.value.detail
    with pytest.raises(deploy.DeployFailed, match="step deps: .*Package not found") as caught:
        deploy.deploy(mpy_plan, FakeBoard(tmp_path, fail=("mip", "mpremote: Package not found: x")))
    assert caught.value.exit_code == 1


def test_the_probe_outlasts_a_board_re_enumerating(tmp_path, mpy_plan):
    cut = "serial.serialutil.SerialException: device reports readiness to read but returned no data " \
          "(device disconnected or multiple access on port?)"
    naps = []
    fake = FakeBoard(tmp_path, fail=("exec", cut), fail_times=2)
    assert deploy.deploy(mpy_plan, fake, sleep=naps.append)["reset"] == "hard"
    assert naps == [1, 1] and [c[1] for c in fake.calls[:3]] == [deploy.PROBE_SCRIPT] * 3
    with pytest.raises(deploy.BoardUnreachable, match="device disconnected"):
        deploy.deploy(mpy_plan, FakeBoard(tmp_path, fail=("exec", cut)), sleep=naps.append)
    assert len(naps) == 2 + deploy.PROBE_RETRIES


def test_the_real_mpremote_reports_a_missing_port_as_unreachable():
    runner = deploy.MpremoteRunner("/dev/fiscal-no-such-port", timeout=120)
    assert runner.command(["reset"])[1:5] == ["-m", "mpremote", "connect", "/dev/fiscal-no-such-port"]
    with pytest.raises(deploy.BoardUnreachable, match="failed to access"):
        deploy.deploy(deploy.build_plan(MANIFEST, source=True), runner, sleep=lambda s: None)


def test_cli_json_summary_and_mismatch_exit_code(tmp_path, monkeypatch):
    boards = [FakeBoard(tmp_path), FakeBoard(tmp_path / "b", corrupt={"main.py"})]
    os.makedirs(tmp_path / "b")
    monkeypatch.setattr(deploy, "MpremoteRunner", lambda port, timeout: boards.pop(0))
    ok = CliRunner().invoke(main, ["board", "deploy", "--port", "/dev/ttyACM0", "--json", "--no-deps"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["status"] == "ok" and doc["port"] == "/dev/ttyACM0"
    assert len(doc["files"]) == len(MANIFEST["files"]) + len(MANIFEST["generated"])
    bad = CliRunner().invoke(main, ["board", "deploy", "--port", "/dev/ttyACM0", "--json", "--source"])
    assert bad.exit_code == 1
    doc = json.loads(bad.output)
    assert doc["code"] == "VERIFY_MISMATCH" and [f["dest"] for f in doc["files"]] == ["main.py"]


def test_cli_dry_run_touches_no_board(monkeypatch):
    monkeypatch.setattr(deploy.MpremoteRunner, "run", lambda self, args: pytest.fail("dry run ran mpremote"))
    result = CliRunner().invoke(main, ["board", "deploy", "--port", "id:E6614104", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [name for name, _ in doc["steps"]] == ["probe", "deps", "prepare", "copy", "verify", "reset"]
    assert doc["steps"][0][1][3:5] == ["connect", "id:E6614104"]


def test_pinned_authority_goes_to_the_keystore_directory(tmp_path):
    from hostd.boards import authority
    from hostd.boards.manifest import load_manifest
    from hostd.boards.deploy import build_plan

    authority.init(str(tmp_path))
    key = authority.public_key(str(tmp_path))
    plan = build_plan(load_manifest(), source=True, extra=[("authority:x", "fiscal/authority.bin", key)])
    pinned = [i for i in plan["items"] if i.dest == "fiscal/authority.bin"]
    assert len(pinned) == 1 and pinned[0].data == key and "fiscal" in plan["dirs"]
    from device.board import DATA_DIR
    from device.keystore import AUTHORITY_FILE
    assert "/" + pinned[0].dest == DATA_DIR + "/" + AUTHORITY_FILE     # where the firmware reads it
