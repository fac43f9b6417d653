"""``outlet.offline_alert`` (issue 12; seed 001: drafts waiting past the grace period): the
webhook dispatcher sends it once per outage that lasts past its grace, with how many requests
wait and since when, to a real receiver on 127.0.0.1; not before the grace, and not twice for
the same outage. The dispatcher runs on its own event loop here, with the store it always uses
and an owner that only reports when the device was lost."""

import asyncio
import json
import threading
import time

from hostd.books import events
from hostd.daemon.webhooks import Dispatcher
from hostd.store.outbox import Outbox
from hostd.store.store import Store
from tests.webhookkit import Receiver

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class LostOwner:
    """What the dispatcher reads of the owner: since when the device is gone, and its id."""

    def __init__(self, lost_since):
        self.lost_since = lost_since
        self.info = {"device_id": "EMU-0FF11NE0"}


def _run(dispatcher, seconds):
    loop = asyncio.new_event_loop()
    task = loop.create_task(dispatcher.run())
    thread = threading.Thread(target=loop.run_until_complete, args=(asyncio.sleep(seconds),))
    thread.start()
    thread.join()
    task.cancel()
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    loop.close()


def _alerts(receiver):
    return [json.loads(body) for _, body, _ in receiver.deliveries if json.loads(body)["event"] == events.OFFLINE_ALERT]


def test_an_outage_past_its_grace_is_announced_once_with_the_waiting_requests(tmp_path):
    store = Store(str(tmp_path / "fiscal.sqlite"))
    receiver = Receiver()
    try:
        Outbox(store).add_webhook({"url": receiver.url, "events": [events.OFFLINE_ALERT], "secret": SECRET,
                                   "active": True, "signature_header": None, "max_attempts": 3}, time.time())
        lost = time.time() - 400
        for i in range(2):   # accepted while the device was away, never sealed
            assert store.add_request("1p:wait-%d" % i, b"h%d" % i, b"\xa0", "{}", lost + 10 + i)
        owner = LostOwner(time.time() - 60)                      # a minute: inside the grace
        _run(Dispatcher(store, base=0.1, offline_grace=300, owner=owner), 0.5)
        assert _alerts(receiver) == []
        owner.lost_since = lost                                  # the same daemon, an outage of 400 s
        dispatcher = Dispatcher(store, base=0.1, offline_grace=300, owner=owner)
        _run(dispatcher, 1.0)
        assert receiver.wait_for(lambda d: len(_alerts(receiver)) >= 1, 10)
        [alert] = _alerts(receiver)
        assert alert["device_id"] == "EMU-0FF11NE0" and alert["draft_count"] == 2
        assert alert["offline_since"] == int(lost) and alert["oldest_draft_age"] >= 385
        _run(dispatcher, 6.0)                                    # past its 5 s idle wait: still once
        assert len(_alerts(receiver)) == 1
        owner.lost_since = time.time() - 1000                    # another outage: announced again
        _run(dispatcher, 1.0)
        assert receiver.wait_for(lambda d: len(_alerts(receiver)) == 2, 10)
    finally:
        receiver.close()
