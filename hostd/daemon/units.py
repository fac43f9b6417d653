"""``fiscal service install``: the systemd units, the sysusers.d file and the udev rules in place.

What goes where (Debian/Ubuntu; ``/etc`` because these are the administrator's copies, a
distribution package would use ``/usr/lib``)::

    /etc/systemd/system/fiscal.service    systemd/fiscal.service with @FISCAL@ and @DEVICE@ filled in
    /etc/systemd/system/fiscal.socket     systemd/fiscal.socket (socket activation, /run/fiscal/api.sock)
    /etc/sysusers.d/fiscal.conf           systemd/fiscal.sysusers (user fiscal, group fiscal-pos)
    /etc/udev/rules.d/70-fiscal.rules     udev/70-fiscal.rules

then ``systemd-sysusers`` (creates the user and groups now), ``udevadm control --reload-rules`` and
``udevadm trigger``, ``systemctl daemon-reload``. Enabling is left to the administrator
(``systemctl enable --now fiscal.socket fiscal.service``), as Debian's policy leaves it to a
package's maintainer scripts. With ``root`` set (tests, image builds) only the files are written
under that directory and no command runs; ``plan()`` alone is the dry run.

``@FISCAL@`` is the absolute path of this ``fiscal`` program: the service runs exactly the one
that installed it. ``ProtectHome=yes`` hides /home and /root from the service, so a program
installed there cannot start; the plan carries a warning then.
"""

import os
import shutil
import subprocess
import sys

from hostd.boards import shipped
from hostd.errors import ConfigError

FILES = (  # (shipped folder, file, destination under the root, mode)
    ("systemd", "fiscal.service", "etc/systemd/system/fiscal.service", 0o644),
    ("systemd", "fiscal.socket", "etc/systemd/system/fiscal.socket", 0o644),
    ("systemd", "fiscal.sysusers", "etc/sysusers.d/fiscal.conf", 0o644),
    ("udev", "70-fiscal.rules", "etc/udev/rules.d/70-fiscal.rules", 0o644),
)
COMMANDS = (
    ["systemd-sysusers", "/etc/sysusers.d/fiscal.conf"],
    ["udevadm", "control", "--reload-rules"],
    ["udevadm", "trigger", "--subsystem-match=tty", "--subsystem-match=usb"],
    ["systemctl", "daemon-reload"],
)
HIDDEN = ("/home/", "/root/", "/run/user/", "/tmp/")   # ProtectHome=yes and PrivateTmp=yes hide these


def fiscal_program():
    """The ``fiscal`` executable beside this interpreter (a venv's bin/), or the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "fiscal")
    found = beside if os.access(beside, os.X_OK) else shutil.which("fiscal")
    if not found:
        raise ConfigError("cannot find the fiscal program to run as the service: give --fiscal PATH",
                          field="--fiscal")
    return os.path.abspath(found)


def render(text, program, device):
    if any(c.isspace() for c in program + device) or "%" in program + device:
        raise ConfigError("--fiscal and --device must not contain spaces or %% for a unit file", field="--device")
    return text.replace("@FISCAL@", program).replace("@DEVICE@", device)


def plan(root="/", program=None, device="auto"):
    """[{dest, source, bytes, data}], [commands], [warnings] for an install under ``root``."""
    program = fiscal_program() if program is None else os.path.abspath(program)
    files, warnings = [], []
    for kind, name, dest, mode in FILES:
        with open(shipped.path(kind, name), "rb") as fh:
            data = fh.read()
        if name == "fiscal.service":
            data = render(data.decode("utf-8"), program, device).encode("utf-8")
        files.append({"dest": os.path.join(root, dest), "source": "%s/%s" % (kind, name), "bytes": len(data),
                      "mode": mode, "data": data})
    if program.startswith(HIDDEN):
        warnings.append("%s is under a folder the service cannot see (ProtectHome=yes, PrivateTmp=yes): install "
                        "fiscal system-wide, e.g. python3 -m venv /opt/fiscal && /opt/fiscal/bin/pip install "
                        "fiscal-device, then run /opt/fiscal/bin/fiscal service install" % program)
    commands = [list(c) for c in COMMANDS] if os.path.abspath(root) == "/" else []
    return files, commands, warnings


def install(files, commands, run=subprocess.run):
    """Write the files (atomically: a temporary file renamed over the old one), then run each
    command that exists here; returns [(command, outcome)]. A failing command raises ConfigError."""
    for item in files:
        os.makedirs(os.path.dirname(item["dest"]), exist_ok=True)
        temp = item["dest"] + ".new"
        with open(temp, "wb") as fh:
            fh.write(item["data"])
        os.chmod(temp, item["mode"])
        os.replace(temp, item["dest"])
    done = []
    for command in commands:
        if shutil.which(command[0]) is None:
            done.append((command, "skipped: %s is not installed here" % command[0]))
            continue
        proc = run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigError("%s failed (exit %d): %s" % (" ".join(command), proc.returncode,
                                                            (proc.stderr or proc.stdout).strip()), field="install")
        done.append((command, "ok"))
    return done
