"""Files the store keeps beside the database (archive segments, report bundles), written so that
a power cut leaves either the old file or the whole new one, never a torn one.

The POSIX recipe (write a temporary file, fsync it, rename it over the target, fsync the folder
so the rename itself is durable) is what SQLite's own journal and every careful writer use; the
folder fsync is the step most often forgotten, and without it a rename can vanish at a power cut.
"""

import os


def write_durably(path, data, temp_suffix=".new"):
    """Write ``data`` to ``path`` atomically and durably (module docstring)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + temp_suffix
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
