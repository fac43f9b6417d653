"""``fiscal``: the command-line entry point, a click group of the commands in this package.

Exit codes are hostd/cli/common.py's (documented in the README).
"""

import click

from hostd.cli.authority import authority
from hostd.cli.board import board
from hostd.cli.demo import demo
from hostd.cli.device import daemon, emulator, up
from hostd.cli.doctor import doctor
from hostd.cli.invoice import invoice, status
from hostd.cli.receipt import receipt
from hostd.cli.verify import verify


@click.group()
def main():
    """Open fiscal memory device: emulator, device tools and (soon) the host daemon."""


for command in (emulator, demo, verify, doctor, authority, board, daemon, up, invoice, status, receipt):
    main.add_command(command)
