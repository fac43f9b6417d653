"""``fiscal``: the command-line entry point, a click group of the commands in this package.

Exit codes are hostd/cli/common.py's (documented in the README). ``-h`` is ``--help`` on every
command (click passes ``help_option_names`` down to the subcommands' contexts).
"""

import click

from hostd.cli.authority import authority
from hostd.cli.board import board
from hostd.cli.demo import demo
from hostd.cli.device import daemon, emulator, up
from hostd.cli.doctor import doctor
from hostd.cli.invoice import invoice, status
from hostd.cli.receipt import receipt
from hostd.cli.service import service
from hostd.cli.verify import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fiscal-device", prog_name="fiscal", message="%(prog)s %(version)s")
def main():
    """Open fiscal memory device: the host daemon serving POS software, the emulator, board and
    identity tools, offline verification.

    Shell completion (bash): eval "$(_FISCAL_COMPLETE=bash_source fiscal)"
    """


for command in (emulator, demo, verify, doctor, authority, board, daemon, up, invoice, status, receipt, service):
    main.add_command(command)
