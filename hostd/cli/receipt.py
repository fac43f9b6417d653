"""``fiscal receipt FN``: a sealed invoice's printable receipt from the daemon (issue 14)."""

import json
import sys

import click

from hostd.cli.common import EXIT_FOR_HTTP, fail, headers, socket_option, token_option
from hostd.errors import HostdError


@click.command()
@click.argument("fiscal_number")
@click.option("--format", "fmt", type=click.Choice(["html", "txt", "svg", "png"]), default="txt", show_default=True)
@click.option("--width", type=click.Choice(["58", "80"]), default="80", show_default=True, help="HTML paper width, mm.")
@click.option("--columns", type=click.Choice(["32", "42", "48"]), default="42", show_default=True,
              help="Text layout width, characters (ESC/POS printers).")
@click.option("-o", "--output", type=click.File("wb"), default="-", help="File to write (default: stdout).")
@socket_option
@token_option
def receipt(fiscal_number, fmt, width, columns, output, socket_path, token_file):
    """Print the receipt of a sealed invoice (text, HTML, or its QR code as SVG/PNG)."""
    from urllib.parse import quote

    from hostd.sdk.transport import request

    path = "/api/v1/invoices/%s/receipt?format=%s&width=%s&columns=%s" % (quote(fiscal_number, safe=""), fmt, width,
                                                                           columns)
    try:
        status, _, body = request(socket_path, "GET", path, headers=headers(token_file))
    except HostdError as exc:
        fail(exc, False)
    if status != 200:
        doc = json.loads(body)
        click.echo("error: %s %s" % (doc.get("code"), doc.get("detail")), err=True)
        sys.exit(EXIT_FOR_HTTP.get(status, 1))
    output.write(body)
