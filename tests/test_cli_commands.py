"""Every documented `fiscal` command is registered (a lost registration once hid `fiscal verify`)."""

from click.testing import CliRunner

from hostd.cli.main import main


def test_documented_commands_are_registered():
    for command in (["demo"], ["emulator"], ["daemon"], ["up"], ["invoice", "create"], ["invoice", "get"],
                    ["status"], ["verify"]):
        result = CliRunner().invoke(main, command + ["--help"])
        assert result.exit_code == 0, (command, result.output)
