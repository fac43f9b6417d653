"""Packaging beyond what pyproject.toml can say: the data folders as packages.

samples/, board/, udev/ and systemd/ stay where they are in the repository (tests and the
README use them); the wheel carries each as the package ``fiscal_data.<folder>`` through
``package_dir``, so there is one copy of each file in git and the code finds them through
importlib.resources in a checkout, an editable install and a wheel alike (hostd/boards/shipped.py).
The code packages are found, so a new subpackage of hostd/ needs no entry here.
"""

from setuptools import find_packages, setup

DATA = {"fiscal_data." + folder: folder for folder in ("samples", "board", "udev", "systemd")}

setup(
    packages=find_packages(include=["protocol*", "device*", "hostd*"]) + sorted(DATA),
    package_dir=DATA,
    # protocol: PROTOCOL.md and the shipped country profiles (protocol/profile_host.py);
    # hostd.sdk: the typing marker, and the browser SDK the daemon serves at GET /sdk/fiscal.mjs
    package_data=dict({name: ["*"] for name in DATA}, protocol=["*.md", "profiles/*.json"],
                      **{"hostd.sdk": ["py.typed", "browser/fiscal.mjs"]}),
)
