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
