"""The files shipped beside the code: sample invoices, the board's manifest and entry point, the
udev rules and the systemd units.

In the repository they are the top-level folders ``samples/``, ``board/``, ``udev/`` and
``systemd/``; the wheel carries the same files as the packages ``fiscal_data.<folder>``
(setup.py maps each folder to its package, so git holds one copy of each file), and an editable
install maps the packages back to the folders. So code never builds a path from ``__file__``
(``../../samples`` exists only in a checkout, which is how a wheel once crashed on
``fiscal demo``): it asks importlib.resources, which finds the files in all three cases.

Source files of the firmware are named as in board/manifest.json (``protocol/cbor.py``,
``board/main.py``): the first part is the package that holds the file.
"""

import importlib.resources
import os

FOLDERS = ("samples", "board", "udev", "systemd")


def folder(name):
    """The Traversable of a shipped folder."""
    if name not in FOLDERS:
        raise KeyError("no shipped folder %r (one of %s)" % (name, ", ".join(FOLDERS)))
    return importlib.resources.files("fiscal_data." + name)


def path(name, filename):
    """A real file path of a shipped file (installed packages are plain files on disk)."""
    found = folder(name) / filename
    if not os.path.isfile(str(found)):
        raise FileNotFoundError("shipped file %s/%s is missing (looked in %s)" % (name, filename, found))
    return str(found)


def source(src):
    """Bytes of a firmware source named as in the manifest: ``board/main.py`` (shipped) or a module
    of the ``protocol`` or ``device`` package (``protocol/cbor.py``)."""
    package, _, rest = src.partition("/")
    base = folder(package) if package in FOLDERS else importlib.resources.files(package)
    return (base / rest).read_bytes()
