"""``fiscal doctor``: why the daemon cannot see or open a board, each finding with its fix.

A board that "does not work" on Linux is nearly always one of five things (ecosystem reference A1):
no board on the bus (or MicroPython without the fiscal firmware), a tty the user may not open, the
udev rules not installed or outdated, the user not (yet) in the ``fiscal`` group, or ModemManager
probing the new ttyACM with AT commands. Each check prints ``ok``, ``warning`` or ``problem`` and,
unless ok, a one-line fix. Everything is read from the system directly (list_ports, os.access,
the rules directories, /etc/group, /proc/*/comm): no systemctl, no udevadm, no root needed.

Exit codes (the command's help and the README say the same): 1 if any check is a problem, else 4
if no board was found, else 0. Other warnings never change the exit code.
"""

import grp
import os
from dataclasses import dataclass

from hostd.boards import shipped
from hostd.link import discovery
from hostd.errors import DevicePermission, DeviceUnavailable
from protocol.usbids import FISCAL_INTERFACE, PRODUCT_ID, VENDOR_ID

OK, WARNING, PROBLEM = "ok", "warning", "problem"
EXIT_OK, EXIT_PROBLEM, EXIT_NO_BOARD = 0, 1, 4
RULES_NAME = "70-fiscal.rules"
# udev reads a file name from the first of these that has it (/etc overrides /run overrides /usr/lib).
RULE_DIRS = ("/etc/udev/rules.d", "/run/udev/rules.d", "/usr/lib/udev/rules.d", "/lib/udev/rules.d")
SHIPPED_RULES = os.path.join(str(shipped.folder("udev")), RULES_NAME)   # a checkout's udev/, or the wheel's copy
GROUP = "fiscal"
MM_IGNORE = 'ENV{ID_MM_DEVICE_IGNORE}="1"'
INSTALL = ("sudo cp udev/%s /etc/udev/rules.d/ && sudo udevadm control --reload-rules && sudo udevadm trigger, "
           "then replug (udev/README.md)" % RULES_NAME)
PERMISSION_FIX = "install udev/%s and join group %s (udev/README.md), then replug" % (RULES_NAME, GROUP)


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = None


def examine(rules_dirs=None, shipped=SHIPPED_RULES, proc="/proc", usb_backend=None):
    """Run every check; returns {"checks", "boards", "exit_code"} (directories injectable for tests)."""
    checks, boards = _board_checks(usb_backend)
    for board in boards:
        checks.append(_port_check("fiscal port", board.port, PROBLEM, PERMISSION_FIX))
        if board.repl_port is not None:   # only mpremote needs it; the rules leave it root:dialout
            checks.append(_port_check("REPL port", board.repl_port, WARNING,
                                      "only for mpremote: join the port's group (usually dialout)"))
    dirs = RULE_DIRS if rules_dirs is None else rules_dirs
    rules = installed_rules(dirs)
    checks.append(_rules_check(dirs, rules, shipped, bool(boards)))
    checks.append(_group_check())
    checks.append(_modemmanager_check(proc, rules))
    if any(c.status == PROBLEM for c in checks):
        code = EXIT_PROBLEM
    else:
        code = EXIT_OK if boards else EXIT_NO_BOARD
    return {"checks": checks, "boards": boards, "exit_code": code}


def _board_checks(usb_backend):
    try:
        boards, strays, listed = discovery.survey(usb_backend)
    except DeviceUnavailable as exc:   # DiscoveryFailed or DevicePermission: enumeration itself failed
        fix = PERMISSION_FIX if isinstance(exc, DevicePermission) else "run `python -m serial.tools.list_ports -v`"
        return [Check("boards", PROBLEM, exc.detail, fix)], []
    checks = [Check("board", OK, "serial %s: fiscal port %s, REPL port %s, USB %s"
                    % (b.serial, b.port, b.repl_port or "not seen", b.location)) for b in boards]
    if not boards:
        checks.append(Check("boards", WARNING, "no fiscal board on USB (%04x:%04x with interface %d) among %d "
                            "serial port%s" % (VENDOR_ID, PRODUCT_ID, FISCAL_INTERFACE, listed, "" if listed == 1 else "s"),
                            "plug the board in with a data cable (not a charge-only one), then run `fiscal doctor` again"))
    for port in strays:
        number = discovery.interface_number(port)
        if number is None:
            checks.append(Check("board", WARNING, "%s is USB %04x:%04x, but this system does not say which "
                                "interface it is" % (port.device, VENDOR_ID, PRODUCT_ID),
                                "pass the fiscal port's path: fiscal daemon --device %s" % port.device))
            continue
        checks.append(Check("board", WARNING, "%s is USB %04x:%04x interface %d, but that device has no fiscal "
                            "interface %d" % (port.device, VENDOR_ID, PRODUCT_ID, number, FISCAL_INTERFACE),
                            "start the fiscal firmware on the board (its main.py adds the fiscal USB interface)"))
    return checks, boards


def _port_check(name, path, severity, fix):
    try:
        user, group, mode = discovery.port_owner(path)
    except OSError as exc:
        return Check(name, severity, "%s: %s" % (path, exc.strerror), "replug the board and run `fiscal doctor` again")
    me = discovery.current_user()
    if os.access(path, os.R_OK | os.W_OK):
        return Check(name, OK, "%s (%s:%s %04o): %s can read and write it" % (path, user, group, mode, me))
    return Check(name, severity, "%s (%s:%s %04o): %s cannot open it read/write" % (path, user, group, mode, me), fix)


def installed_rules(dirs):
    """Paths of our rules file in udev's directories, the one udev uses first (symlinked
    directories such as /lib -> /usr/lib counted once)."""
    found, seen = [], set()
    for directory in dirs:
        path = os.path.join(directory, RULES_NAME)
        if os.path.isfile(path) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            found.append(path)
    return found


def _read(path):
    with open(path, "rb") as fh:
        return fh.read()


def _rules_check(dirs, rules, shipped, have_board):
    if not rules:
        return Check("udev rules", PROBLEM if have_board else WARNING, "%s is in none of %s"
                     % (RULES_NAME, ", ".join(dirs)), INSTALL)
    active = rules[0]
    shadowed = " (it overrides %s)" % ", ".join(rules[1:]) if len(rules) > 1 else ""
    if not os.path.isfile(shipped):
        return Check("udev rules", WARNING, "%s installed%s; the shipped copy to compare with is missing (%s)"
                     % (active, shadowed, shipped), "run `fiscal doctor` from a source checkout")
    if _read(active) != _read(shipped):
        return Check("udev rules", WARNING, "%s%s differs from the shipped udev/%s (outdated or edited)"
                     % (active, shadowed, RULES_NAME), INSTALL)
    return Check("udev rules", OK, "%s%s is the shipped udev/%s" % (active, shadowed, RULES_NAME))


def _group_check():
    try:
        entry = grp.getgrnam(GROUP)
    except KeyError:
        return Check("group", WARNING, "there is no group %s (the rules hand the fiscal port to it)" % GROUP,
                     "sudo groupadd --system %s && sudo usermod -aG %s $USER, then log in again" % (GROUP, GROUP))
    me = discovery.current_user()
    if os.geteuid() == 0:
        return Check("group", OK, "running as root, which opens any port (run the daemon as a user in %s)" % GROUP)
    if entry.gr_gid == os.getegid() or entry.gr_gid in os.getgroups():
        return Check("group", OK, "%s is in group %s" % (me, GROUP))
    if me in entry.gr_mem:
        return Check("group", WARNING, "%s was added to group %s, but this session does not have it yet" % (me, GROUP),
                     "log out and in again (or run `newgrp %s`)" % GROUP)
    return Check("group", WARNING, "%s is not in group %s" % (me, GROUP),
                 "sudo usermod -aG %s %s, then log in again (at the desk, uaccess is enough)" % (GROUP, me))


def modemmanager_pids(proc="/proc"):
    """Pids whose /proc/<pid>/comm is ModemManager (works without systemd or D-Bus)."""
    pids = []
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "comm")) as fh:
                comm = fh.read().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue   # the process ended between listdir and open: it is not running
        if comm == "ModemManager":
            pids.append(int(name))
    return sorted(pids)


def _modemmanager_check(proc, rules):
    try:
        pids = modemmanager_pids(proc)
    except OSError as exc:
        return Check("ModemManager", WARNING, "cannot tell whether it runs: %s" % exc,
                     "make sure ModemManager is stopped or %s is installed" % RULES_NAME)
    if not pids:
        return Check("ModemManager", OK, "not running (no ModemManager in %s/*/comm)" % proc)
    running = "running (pid %s)" % ", ".join(str(p) for p in pids)
    if rules and MM_IGNORE.encode() in _read(rules[0]):
        return Check("ModemManager", OK, "%s; %s tells it to ignore the board" % (running, rules[0]))
    return Check("ModemManager", PROBLEM, "%s and no installed rule tells it to ignore the board: it probes a "
                 "new ttyACM with AT commands for up to 30 s" % running,
                 "%s (or `sudo systemctl disable --now ModemManager` if this machine has no modem)" % INSTALL)
