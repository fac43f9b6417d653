"""The queue limit: past MAX_QUEUE waiting requests the API answers 429 with Retry-After."""

import asyncio

import pytest

from hostd.api import app as api
from hostd.api.replies import Refusal, error_response


def test_full_queue_is_429_with_retry_after():
    service = api.Api(owner=None, store=None)
    service.queued = api.MAX_QUEUE
    with pytest.raises(Refusal) as info:
        asyncio.run(service.device(print))
    assert info.value.code == "RATE_LIMIT_EXCEEDED" and info.value.retry == 1
    response = error_response(info.value.code, info.value.detail, retry_after=info.value.retry)
    assert response.status == 429 and response.headers["Retry-After"] == "1"


class _Body:
    """A request whose body either came in whole with the headers (the StreamReader at EOF) or
    never finishes arriving."""

    def __init__(self, data, complete):
        from aiohttp import streams

        self.content_length = len(data) + (0 if complete else 100)
        self.content = streams.StreamReader(_Protocol(), 2 ** 16, loop=asyncio.get_running_loop())
        self.content.feed_data(data)
        if complete:
            self.content.feed_eof()

    async def read(self):
        return await self.content.read()


class _Protocol:
    _reading_paused = False
    connected = True

    def pause_reading(self, **_):
        pass

    def resume_reading(self, **_):
        pass


def test_a_body_already_in_is_read_at_once_and_a_late_one_is_timed(monkeypatch):
    """hostd/api/app.py ``Api.body``: no timer (``asyncio.wait_for``, its own task in 3.11) for a
    body that came whole with the headers, as a POS's small invoice does; a body still arriving
    is timed, and one that stops is a 408."""
    from hostd.errors import RequestTimeout

    service = api.Api(owner=None, store=None)
    timed = []
    real = asyncio.wait_for
    monkeypatch.setattr(api.asyncio, "wait_for", lambda aw, timeout: timed.append(timeout) or real(aw, 0.05))

    async def read(data, complete):
        return await service.body(_Body(data, complete))
    assert asyncio.run(read(b'{"a": 1}', True)) == b'{"a": 1}' and timed == []
    with pytest.raises(RequestTimeout):
        asyncio.run(read(b'{"a": ', False))
    assert timed == [api.BODY_TIMEOUT]
