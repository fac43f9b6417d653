"""udev/70-fiscal.rules: a strict lint (udev(7) syntax: KEY[{attr}]OP"value" pairs separated by
", ", match keys with ==/!=, assignment keys with =/+=/-=/:=, every GOTO label defined after it),
then a small evaluator that replays the kernel events of a board (both ttys, the USB device, an
unrelated adapter, a removal) through the rules and checks what each node ends up with, against
protocol/usbids.py. ``udevadm verify`` runs too where it exists (systemd >= 253)."""

import fnmatch
import os
import re
import shutil
import subprocess

import pytest

from protocol.usbids import FISCAL_INTERFACE, PRODUCT_ID, REPL_INTERFACE, VENDOR_ID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "udev", "70-fiscal.rules")
SERIAL = "E6614103E7452D2F"
VID, PID = "%04x" % VENDOR_ID, "%04x" % PRODUCT_ID

MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER", "DRIVERS", "ATTRS",
              "TAGS", "TEST", "PROGRAM", "RESULT", "CONST"}
ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
BOTH = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG"}
NEEDS_ATTR = {"ATTR", "ATTRS", "ENV", "SYSCTL", "SECLABEL", "IMPORT", "CONST"}
MAY_HAVE_ATTR = NEEDS_ATTR | {"TEST", "RUN"}
PAIR = re.compile(r'([A-Z_]+)(?:\{([A-Za-z0-9_./-]+)\})?(==|!=|\+=|-=|:=|=)"([^"\\]*)"')


class RuleError(ValueError):
    pass


def parse(text):
    """[(line number, [(key, attr, op, value)])], or RuleError naming the first bad line."""
    rules, labels, gotos = [], {}, []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pairs, pos = [], 0
        while True:
            found = PAIR.match(line, pos)
            if not found:
                raise RuleError("line %d: not KEY[{attr}]OP\"value\" at column %d: %r" % (number, pos + 1, line[pos:]))
            pairs.append(_check(number, *found.groups()))
            pos = found.end()
            if pos == len(line):
                break
            if not line.startswith(", ", pos) or line.startswith(",  ", pos):
                raise RuleError("line %d: pairs must be separated by exactly \", \" at column %d" % (number, pos + 1))
            pos += 2
        for key, _, _, value in pairs:
            if key == "LABEL":
                if len(pairs) != 1 or value in labels:
                    raise RuleError("line %d: a LABEL stands alone and once" % number)
                labels[value] = len(rules)
            elif key == "GOTO":
                gotos.append((number, value, len(rules)))
        rules.append((number, pairs))
    for number, label, index in gotos:
        if labels.get(label, -1) <= index:
            raise RuleError("line %d: GOTO %s has no LABEL after it" % (number, label))
    return rules


def _check(number, key, attr, op, value):
    if key not in MATCH_ONLY | ASSIGN_ONLY | BOTH:
        raise RuleError("line %d: unknown key %s" % (number, key))
    if (attr is None and key in NEEDS_ATTR) or (attr is not None and key not in MAY_HAVE_ATTR):
        raise RuleError("line %d: %s %s an {attribute}" % (number, key, "needs" if attr is None else "takes no"))
    matching = op in ("==", "!=")
    if (matching and key in ASSIGN_ONLY) or (not matching and key in MATCH_ONLY):
        raise RuleError("line %d: %s cannot be used with %s" % (number, key, op))
    if key in ("GOTO", "LABEL") and op != "=":
        raise RuleError("line %d: %s takes =" % (number, key))
    if not matching and re.search(r"%|\$(?!env\{[A-Z_]+\})", value):
        raise RuleError("line %d: only $env{KEY} substitutions are expected, got %r" % (number, value))
    return key, attr, op, value


def _matches(pattern, value):
    return value is not None and any(fnmatch.fnmatchcase(value, alt) for alt in pattern.split("|"))


def evaluate(rules, event):
    """What the rules assign for one event (a dict of ACTION, SUBSYSTEM, SUBSYSTEMS, ATTR, ATTRS, ENV)."""
    env = dict(event.get("ENV", {}))
    out = {"ENV": env, "TAG": set(), "SYMLINK": [], "IMPORT": []}
    lookup = {"ACTION": lambda a: event["ACTION"], "SUBSYSTEM": lambda a: event["SUBSYSTEM"],
              "ATTR": lambda a: event.get("ATTR", {}).get(a), "ATTRS": lambda a: event.get("ATTRS", {}).get(a),
              "ENV": lambda a: env.get(a, "")}
    labels = {pairs[0][3]: i for i, (_, pairs) in enumerate(rules) if pairs[0][0] == "LABEL"}
    index = 0
    while index < len(rules):
        pairs, jump = rules[index][1], None
        index += 1
        ok = True
        for key, attr, op, value in pairs:
            if op not in ("==", "!="):
                continue
            if key == "SUBSYSTEMS":
                hit = any(_matches(value, s) for s in event.get("SUBSYSTEMS", ()))
            else:
                hit = _matches(value, lookup[key](attr))
            ok = ok and hit == (op == "==")
        if not ok:
            continue
        for key, attr, op, value in pairs:
            if op in ("==", "!="):
                continue
            value = re.sub(r"\$env\{([A-Z_]+)\}", lambda m: env.get(m.group(1), ""), value)
            if key == "GOTO":
                jump = value
            elif key == "ENV":
                env[attr] = value
            elif key in ("TAG", "SYMLINK", "IMPORT"):
                (out[key].add if key == "TAG" else out[key].append)(value)
            elif key != "LABEL":
                out[key] = value
        if jump is not None:
            index = labels[jump]
    return out


def tty_event(vid=VID, pid=PID, interface=FISCAL_INTERFACE, serial=SERIAL, action="add"):
    return {"ACTION": action, "SUBSYSTEM": "tty", "SUBSYSTEMS": ("tty", "usb"),
            "ATTRS": {"idVendor": vid, "idProduct": pid},
            "ENV": {"ID_USB_INTERFACE_NUM": "%02x" % interface, "ID_SERIAL_SHORT": serial}}


USB_DEVICE = {"ACTION": "add", "SUBSYSTEM": "usb", "SUBSYSTEMS": ("usb",), "ENV": {"DEVTYPE": "usb_device"},
              "ATTR": {"idVendor": VID, "idProduct": PID}, "ATTRS": {"idVendor": VID, "idProduct": PID}}


@pytest.fixture(scope="module")
def rules():
    with open(RULES) as fh:
        return parse(fh.read())


def test_the_file_is_strictly_well_formed(rules):
    assert rules[0][1] == [("ACTION", None, "!=", "add|change"), ("GOTO", None, "=", "fiscal_end")]
    assert int(os.path.basename(RULES).split("-")[0]) < 73   # uaccess needs to run before 73-seat-late.rules


@pytest.mark.parametrize("line", [
    'GROUP=="fiscal"',                                      # a match operator on an assignment key
    'ATTRS{idVendor}="1209"',                               # an assignment to a match key
    'SUBSYTEM=="tty", GROUP="fiscal"',                      # unknown key
    'SUBSYSTEM=="tty",GROUP="fiscal"',                      # separator
    'SUBSYSTEM=="tty", GROUP="fiscal',                      # unbalanced quote
    'ENV=="x", GROUP="fiscal"',                             # ENV without {attribute}
    'SUBSYSTEM=="tty", GOTO="nowhere"',                     # no such label
    'SUBSYSTEM=="tty", SYMLINK+="fiscal/%s{serial}"',       # sysfs substitution, not the env property
])
def test_the_lint_rejects(line):
    with pytest.raises(RuleError):
        parse(line + "\n")


def test_the_fiscal_tty_gets_group_acl_name_and_no_modemmanager(rules):
    got = evaluate(rules, tty_event())
    assert (got.get("GROUP"), got.get("MODE")) == ("fiscal", "0660")
    assert "uaccess" in got["TAG"] and got["SYMLINK"] == ["fiscal/" + SERIAL]
    assert got["ENV"].get("ID_MM_DEVICE_IGNORE") == "1"


def test_the_repl_tty_is_hidden_from_modemmanager_only(rules):
    got = evaluate(rules, tty_event(interface=REPL_INTERFACE))
    assert got["ENV"].get("ID_MM_DEVICE_IGNORE") == "1"
    assert "GROUP" not in got and "MODE" not in got and not got["TAG"] and not got["SYMLINK"]


def test_the_usb_node_is_for_the_group_and_ignored_by_modemmanager(rules):
    got = evaluate(rules, USB_DEVICE)
    assert (got.get("GROUP"), got.get("MODE"), got["ENV"].get("ID_MM_DEVICE_IGNORE")) == ("fiscal", "0660", "1")
    assert not got["TAG"]
    interface_event = dict(USB_DEVICE, ENV={"DEVTYPE": "usb_interface"}, ATTR={})
    assert "GROUP" not in evaluate(rules, interface_event)


def test_nothing_else_is_touched(rules):
    for event in (tty_event(vid="0403", pid="6001"), tty_event(action="remove"), tty_event(pid="0002"),
                  dict(USB_DEVICE, ACTION="remove")):
        got = evaluate(rules, event)
        assert (set(got) - {"ENV", "TAG", "SYMLINK", "IMPORT"}, got["TAG"], got["SYMLINK"]) == (set(), set(), [])
        assert "ID_MM_DEVICE_IGNORE" not in got["ENV"]


def test_a_board_without_serial_still_gets_its_permissions(rules):
    got = evaluate(rules, tty_event(serial=""))
    assert got.get("GROUP") == "fiscal" and got["SYMLINK"] == []


def test_udevadm_verify(tmp_path):
    udevadm = shutil.which("udevadm")
    if udevadm is None:
        pytest.skip("no udevadm on this machine")
    if subprocess.run([udevadm, "verify", "--help"], capture_output=True).returncode != 0:
        pytest.skip("udevadm verify needs systemd >= 253")
    done = subprocess.run([udevadm, "verify", "--resolve-names=never", RULES], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_install_script_installs_the_shipped_rules(tmp_path):
    """udev/install (docs/BOARDS.md step 3), dry run: the shipped file, the group, the user."""
    script = os.path.join(os.path.dirname(RULES), "install")
    out = subprocess.run(["bash", script, "alice"], capture_output=True, text=True, check=True,
                         env=dict(os.environ, DRY_RUN="1", RULES_DIR=str(tmp_path / "rules.d")))
    lines = out.stdout.splitlines()
    assert lines[0] == "install -d -m 0755 %s" % (tmp_path / "rules.d")   # created when missing
    assert lines[1] == "install -m 0644 %s %s/70-fiscal.rules" % (RULES, tmp_path / "rules.d")
    assert "groupadd -f --system fiscal" in lines and "usermod -aG fiscal alice" in lines
