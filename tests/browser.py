"""Headless Chromium for the tests (Debian's ``chromium``; ./dev test installs it as root).

``dump_dom`` loads a page, lets its JavaScript run (virtual time), and returns the DOM as
serialised HTML; ``screenshot`` saves a PNG. The flags are those this machine needs: no sandbox
as root, no GPU, no network chatter of its own (background networking, component updates and
QUIC would be refused by the closed network, many at a time), a fresh profile each run.
"""

import os
import shutil
import subprocess
import tempfile

ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test-artifacts")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars"]


def binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("headless Chromium is missing: ./dev test installs Debian's chromium as root "
                         "(or: sudo apt-get install chromium)")


def _run(args, timeout=90):
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        done = subprocess.run([binary()] + FLAGS + ["--user-data-dir=" + profile] + args, capture_output=True,
                              timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return done


def dump_dom(url, budget_ms=5000):
    """``budget_ms=None``: no virtual time, the DOM is dumped at the load event. IndexedDB work
    does not always complete under ``--virtual-time-budget`` (measured with Chromium 150), so a
    page using it holds its load event open instead (tests/test_browser_sdk.py)."""
    done = _run(([] if budget_ms is None else ["--virtual-time-budget=%d" % budget_ms]) + ["--dump-dom", url])
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode("utf-8")


def screenshot(url, name, width=1000, height=900, budget_ms=5000, scale=1):
    """Save a screenshot of ``url`` as test-artifacts/``name`` (``scale``: device pixels per CSS
    pixel, as a phone camera sees a printed receipt in more detail than a screen); return its path."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    done = _run(["--virtual-time-budget=%d" % budget_ms, "--window-size=%d,%d" % (width, height),
                 "--force-device-scale-factor=%d" % scale, "--screenshot=" + path, url])
    assert done.returncode == 0 and os.path.exists(path), done.stderr.decode(errors="replace")[-2000:]
    return path
