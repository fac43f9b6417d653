"""The board's file list (board/manifest.json) and the two files generated from it.

Why one data file: the set of files that make the firmware is needed in three places —
``fiscal board deploy`` (copies them), ``board/package.json`` (micropython-lib ``mip``) and
``board/manifest.py`` (freezing into a firmware build, MicroPython docs "manifest files"). Written
three times by hand they drift, and a board that misses one module fails only at its first
import. So the list lives in ``board/manifest.json``; ``python -m hostd.boards.manifest`` regenerates
the other two and tests/test_deploy.py fails when a committed copy differs, when a module of
``protocol/`` or ``device/`` is in neither ``files`` nor ``host_only``, or when a board module
imports something the board will not have.

``board/manifest.json``::

    files      [[source in the repo, destination on the board], ...]  ("lib/..." or "main.py")
    generated  [[name, destination], ...]  bytes made on the host (hostd.boards.deploy.GENERATORS)
    deps       [[micropython-lib package, version], ...]  installed with mip
    host_only  [[source, why it stays off the board], ...]
    repo, version   for package.json's "github:" URLs and its version

package.json installs into the board's ``/lib`` (mip's default target), so it carries the
``lib/`` files with that prefix removed; ``main.py`` (which must sit at the root) and generated
data (not in the repository) are outside what mip can install, and need ``fiscal board deploy``.
"""

import json
import os
import sys

from hostd.boards import shipped
from hostd.errors import HostdError

# The repository checkout, where the folders are (tests and ``python -m hostd.boards.manifest``
# use it; installed code reads the files through hostd/boards/shipped.py).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = "lib/"


class ManifestError(HostdError):
    """board/manifest.json is malformed: a usage error of the repository, not of the board."""

    code = "BAD_MANIFEST"
    exit_code = 2


def manifest_path(name="manifest.json"):
    """board/manifest.json (or package.json, manifest.py), wherever the package was installed."""
    return os.path.join(str(shipped.folder("board")), name)


def load_manifest(path=None):
    """The parsed manifest, checked for the shape every consumer relies on."""
    path = manifest_path() if path is None else path
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
    for key in ("version", "repo", "deps", "files", "generated", "host_only"):
        if key not in doc:
            raise ManifestError("%s: missing key %r" % (path, key), field=key)
    dests = []
    for key in ("files", "generated", "deps", "host_only"):
        for pair in doc[key]:
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise ManifestError("%s: %s entries must be [string, string], not %r" % (path, key, pair), field=key)
    for src, dest in doc["files"] + doc["generated"]:
        if dest.startswith("/") or ".." in dest.split("/") or not (dest.startswith(LIB) or "/" not in dest):
            raise ManifestError("%s: destination %r must be relative, under lib/ or at the root" % (path, dest),
                                field="files")
        dests.append(dest)
    if len(set(dests)) != len(dests):
        raise ManifestError("%s: a destination is listed twice" % path, field="files")
    return doc


def render_package_json(manifest):
    """Text of board/package.json (mip: {"urls": [[dest, url]], "deps": [[name, version]], "version"})."""
    urls = [[dest[len(LIB):], "github:%s/%s" % (manifest["repo"], src)]
            for src, dest in manifest["files"] if dest.startswith(LIB)]
    return '{\n  "urls": [\n%s\n  ],\n  "deps": [\n%s\n  ],\n  "version": %s\n}\n' % (
        _rows(urls), _rows(manifest["deps"]), json.dumps(manifest["version"]))


def _rows(pairs):
    """JSON pairs one per line, so a diff of package.json shows the file that changed."""
    return ",\n".join("    " + json.dumps(pair) for pair in pairs)


def render_manifest_py(manifest):
    """Text of board/manifest.py, for ``make BOARD=... FROZEN_MANIFEST=.../board/manifest.py``.

    Frozen modules run from flash, constants included (the 61,440-byte table of
    device/p256_table.py costs no RAM there), and cannot be swapped with ``mpremote cp``.
    """
    lines = [
        "# GENERATED from board/manifest.json by `python -m hostd.boards.manifest`; do not edit.",
        "# Freezes the fiscal firmware: make BOARD=<board> FROZEN_MANIFEST=$PWD/board/manifest.py",
        "# Generated data (%s) is not frozen: `fiscal board deploy` still writes it."
        % ", ".join(name for name, _ in manifest["generated"]),
        'include("$(PORT_DIR)/boards/manifest.py")  # the port\'s own frozen modules (_boot.py mounts the FS)',
    ]
    lines += ['require("%s")' % name for name, _ in manifest["deps"]]
    packages, modules = {}, []
    for src, dest in manifest["files"]:
        target = dest[len(LIB):] if dest.startswith(LIB) else dest
        if "/" in target:
            package, _, rest = target.partition("/")
            packages.setdefault(package, []).append((src, rest))
        else:
            modules.append((src, target))
    for package in sorted(packages):
        entries = packages[package]
        base = _base_path(entries[0][0], package + "/" + entries[0][1])
        lines.append('package("%s", base_path="%s", files=(' % (package, base))
        lines += ['    "%s",' % rest for _, rest in entries]
        lines.append("))")
    for src, target in modules:
        lines.append('module("%s", base_path="%s")' % (target, _base_path(src, target)))
    return "\n".join(lines) + "\n"


def _base_path(src, target):
    """base_path (relative to board/) under which ``target`` names the repository file ``src``."""
    if not src.endswith(target):
        raise ManifestError("cannot freeze %s as %s: the file name must match its module path" % (src, target))
    prefix = src[:len(src) - len(target)].rstrip("/")
    return os.path.relpath(os.path.join("/repo", prefix), "/repo/board")   # repository layout, not disk


def main(argv):
    """Rewrite board/package.json and board/manifest.py from board/manifest.json."""
    if len(argv) > 1:
        print("usage: python -m hostd.boards.manifest", file=sys.stderr)
        return 2
    manifest = load_manifest()
    for name, text in (("package.json", render_package_json(manifest)), ("manifest.py", render_manifest_py(manifest))):
        path = manifest_path(name)
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
