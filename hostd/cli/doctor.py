"""``fiscal doctor``: why a board is not seen or cannot be opened (hostd/boards/doctor.py checks),
each finding with its fix."""

import json
import sys
from dataclasses import asdict

import click

from hostd.boards.doctor import EXIT_NO_BOARD, EXIT_OK, EXIT_PROBLEM, examine
from protocol.usbids import FISCAL_INTERFACE, PRODUCT_ID, VENDOR_ID


def render(report):
    """The human report: one line per check, a fix under each one that is not ok, then the verdict."""
    lines = ["fiscal doctor: looking for USB %04x:%04x, fiscal interface %d" % (VENDOR_ID, PRODUCT_ID, FISCAL_INTERFACE)]
    for c in report["checks"]:
        lines.append("%-8s %-13s %s" % (c.status, c.name, c.detail))
        if c.fix:
            lines.append("%-8s %-13s fix: %s" % ("", "", c.fix))
    verdict = {EXIT_OK: "a board is ready for `fiscal daemon --device auto`",
               EXIT_NO_BOARD: "no board found, nothing else wrong: plug one in and run `fiscal doctor` again",
               EXIT_PROBLEM: "problems found: apply the fixes above, then run `fiscal doctor` again"}
    lines.append("result: %s (exit %d)" % (verdict[report["exit_code"]], report["exit_code"]))
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def doctor(as_json):
    """Check boards, port permissions, udev rules, the fiscal group and ModemManager.

    \b
    Exit codes:
      0  at least one board found and no problem
      1  a problem found (a port you cannot open, rules missing while a board is
         present, ModemManager running without the ignore rule, listing failed)
      4  no board found, and no problem
    Other warnings never change the exit code.
    """
    report = examine()
    if as_json:
        click.echo(json.dumps({"exit_code": report["exit_code"], "checks": [asdict(c) for c in report["checks"]],
                               "boards": [asdict(b) for b in report["boards"]]}, indent=2, sort_keys=True))
    else:
        click.echo(render(report))
    sys.exit(report["exit_code"])
