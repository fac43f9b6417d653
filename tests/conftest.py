"""Opt-in hardware tests: ``pytest --board PORT`` (the board's *fiscal* tty, ``auto`` or
``serial:<SERIAL>``). Without it every ``board`` test is skipped, and the skip says why."""

import warnings

import pytest


def pytest_addoption(parser):
    parser.addoption("--board", metavar="PORT", default=None,
                     help="run the hardware tests against this board; they WRITE fiscal records to it")


def pytest_collection_modifyitems(config, items):
    port = config.getoption("--board")
    if port is None:
        skip = pytest.mark.skip(reason="hardware test: pass --board PORT to run it (it writes to the device)")
        for item in items:
            if item.get_closest_marker("board") is not None:
                item.add_marker(skip)
    elif any(item.get_closest_marker("board") is not None for item in items):
        warnings.warn("--board %s: the hardware tests seal test invoices on that device; fiscal records "
                      "are permanent (use a development board, never one in service)" % port)


@pytest.fixture(scope="session")
def board_port(request):
    from hostd.link.discovery import resolve

    return resolve(request.config.getoption("--board"))
