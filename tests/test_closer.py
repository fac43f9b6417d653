"""The day's close (hostd/daemon/closer.py): when it is due, what it closes, which days it names as
having no Z of their own. In process, the real owner over the real core (tests/test_owner.py)."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hostd.daemon.closer import Closer, parse_at, seconds_until
from hostd.errors import ConfigError
from protocol import record, timefmt
from tests.daemonkit import sample
from tests.devkit import Bench
from tests.test_owner import add, make_owner


@given(st.integers(0, 23 * 60 + 59), st.integers(1_700_000_000, 2_000_000_000))
def test_the_next_close_is_the_next_time_of_day_within_a_day(at, now):
    wait = seconds_until(at, now)
    assert 0 < wait <= 86400 and (now + wait) % 86400 == at * 60


def test_close_at_parses_hh_mm_or_off():
    assert parse_at("23:55") == 23 * 60 + 55 and parse_at("00:00") == 0 and parse_at("off") is None
    for bad in ("24:00", "7:30", "12:60", "noon", "", "12:3a"):
        with pytest.raises(ConfigError) as info:
            parse_at(bad)
        assert info.value.field == "--close-at"


def _sealed(owner, store, key):
    add(store, key, sample(cashier_id=key))
    return owner.run(owner.seal, key, 5.0).result()


def test_the_close_is_due_at_the_hour_and_at_start_only_for_a_past_day(tmp_path):
    bench = Bench(flash_size=256 * 1024)
    owner, store = make_owner(tmp_path, bench)
    _sealed(owner, store, "a")
    now = time.time()
    closer = Closer(owner, 23 * 60 + 55, clock=lambda: now)
    owner.run(closer.close_due, True).result()              # at start, only today is open: no Z
    assert owner.closures.newest("Z") is None
    owner.run(closer.close_due, False).result()             # the hour: Z
    z = owner.closures.newest("Z")
    assert z is not None and z["period"] == timefmt.format_time(int(now))[:10]
    assert record.type_of(bench.records()[-1]) == record.CLOSURE
    owner.run(closer.close_due, False).result()             # nothing after it: not closed again
    assert owner.closures.newest("Z")["seq"] == z["seq"] and closer.missing == []
    owner.close()


def test_a_daemon_down_over_midnight_closes_at_start_and_names_the_day(tmp_path):
    bench = Bench(flash_size=256 * 1024)
    owner, store = make_owner(tmp_path, bench)
    _sealed(owner, store, "b")
    today = timefmt.format_time(int(time.time()))[:10]
    later = int(time.time()) + 2 * 86400
    bench.ok("SET_TIME", time=later)                        # the device's clock is two days on
    closer = Closer(owner, 23 * 60 + 55, clock=lambda: later)
    owner.run(closer.close_due, True).result()
    z = owner.closures.newest("Z")
    assert z is not None and z["period"] == timefmt.format_time(later)[:10]
    assert closer.missing == [today]                        # its invoices went into a later day's Z
    owner.close()
