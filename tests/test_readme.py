"""Every command in README.md's ``sh`` blocks runs as written (issue 13).

The commands are taken from the README itself (a line ending in a backslash continues on the
next), and each block runs in one bash, command after command (so ``NONCE=$(...)`` carries to the
next line), against a real ``fiscal up`` on ``$XDG_RUNTIME_DIR/fiscal/api.sock``, with HOME and
XDG_RUNTIME_DIR in a temporary folder and the working directory a folder of links to the
checkout (so ``./dev``, ``.venv/bin/fiscal`` and ``samples/`` are there, and files the commands
write are not left in the checkout). A command passes when it exits 0 and prints no error
envelope (``"status":"error"``), which a made-up nonce or fiscal number would.

A command that needs a board, changes the system or runs until stopped carries the marker
comment ``[manual: reason]``; exactly those are skipped, and counted here, so marking one more is
a visible decision.
"""

import os
import re
import subprocess

import pytest

from hostd.cli.demo import start_up, stop_up

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANUAL = re.compile(r"\[manual: ([^\]]+)\]")
EXPECTED_MANUAL = 21
ERROR = re.compile(r'"status":\s*"error"')


def blocks(path=os.path.join(ROOT, "README.md")):
    """[[command, ...], ...] of every ```sh block, continuation lines joined."""
    out, current, inside = [], None, False
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for line in lines:
        if line.startswith("```"):
            if inside:
                out.append(current)
                inside = False
            elif line.strip() == "```sh":
                inside, current = True, []
            continue
        if not inside:
            continue
        if current and current[-1].endswith("\\"):
            current[-1] = current[-1] + "\n" + line
        elif line.strip() and not line.lstrip().startswith("#"):
            current.append(line)
    return out


def test_the_extraction_sees_continuations_and_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("text\n```sh\n# comment\nA=1 \\\n  b\nrun forever &   # [manual: runs until stopped]\n```\n"
                      "```\nnot sh\n```\n")
    assert blocks(str(readme)) == [["A=1 \\\n  b", "run forever &   # [manual: runs until stopped]"]]


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    # Bring the checkout's own setup up to date first: the README's `./dev demo` would otherwise
    # reinstall into the shared .venv from the linked folder, with the temporary path in its scripts.
    subprocess.run([os.path.join(ROOT, "dev"), "setup"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=900)
    tmp = tmp_path_factory.mktemp("readme")
    work = tmp / "work"
    work.mkdir()
    for name in os.listdir(ROOT):
        if name not in (".git", "journal-export.json", "openapi.json"):
            os.symlink(os.path.join(ROOT, name), str(work / name))
    home, run = tmp / "home", tmp / "run"
    home.mkdir()
    run.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FISCAL_", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(run))
    socket_path = os.path.join(str(run), "fiscal", "api.sock")
    os.makedirs(os.path.dirname(socket_path))
    # as the README starts it: `fiscal up --profile ~/.fiscal --merchant samples/merchant.json`
    up = start_up(str(home / ".fiscal"), socket_path, extra=["--merchant", os.path.join(ROOT, "samples", "merchant.json")])
    yield work, env
    stop_up(up)


def run_block(commands, work, env, tmp):
    """Run the block's commands in one bash; [(command, exit code, stdout)]."""
    script = ["set -u"]
    for i, command in enumerate(commands):
        script.append("{\n%s\n} > %s/out.%d 2> %s/err.%d; echo $? > %s/rc.%d" % (command, tmp, i, tmp, i, tmp, i))
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=str(work), env=env, timeout=600)
    results = []
    for i, command in enumerate(commands):
        rc = int(open("%s/rc.%d" % (tmp, i)).read()) if os.path.exists("%s/rc.%d" % (tmp, i)) else None
        out = open("%s/out.%d" % (tmp, i)).read() if os.path.exists("%s/out.%d" % (tmp, i)) else ""
        err = open("%s/err.%d" % (tmp, i)).read() if os.path.exists("%s/err.%d" % (tmp, i)) else ""
        results.append((command, rc, out, err))
    return results


def test_every_readme_command_runs_as_written(place, tmp_path):
    work, env = place
    manual, ran, failures = [], 0, []
    for number, block in enumerate(blocks()):
        runnable = [c for c in block if not MANUAL.search(c)]
        manual += [(c, MANUAL.search(c).group(1)) for c in block if MANUAL.search(c)]
        if not runnable:
            continue
        out_dir = tmp_path / ("block%d" % number)
        out_dir.mkdir()
        for command, rc, out, err in run_block(runnable, work, env, out_dir):
            ran += 1
            if rc != 0 or ERROR.search(out):
                failures.append("%s\n  exit %s\n  stdout: %s\n  stderr: %s" % (command, rc, out[-600:], err[-600:]))
    assert failures == [], "README commands that do not run as written:\n" + "\n".join(failures)
    assert len(manual) == EXPECTED_MANUAL, "manual commands now: %s" % manual
    assert {reason.split(";")[0] for _, reason in manual} <= {
        "needs a board", "changes the system", "runs until stopped", "it is the test suite",
        "needs the installed service", "needs the listener above", "needs --sync-url"}
    assert ran >= 25
