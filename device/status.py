"""What became of a nonce or a request id: STATUS and ABORT (PROTOCOL.md 4.8-4.10).

Handled outside device/sealing.py, which a seal needs, so a board keeps this code in RAM only while
one of them runs (device/core.py ``LAZY``). The lookups are device/sealing.py's: the journal's
request-id index and the nonce rings of device/nonces.py.
"""

from protocol import messages, record
from protocol.errors import MessageError, NonceError
from device.sealing import NONCE_LEN, sized


def on_abort(core, fields):
    nonce = sized(fields["nonce"], "nonce", NONCE_LEN)
    if nonce in core.nonces.pending:
        core.nonces.abort(nonce)
        return {"state": messages.ABORTED}
    state = core.nonces.ended_state(nonce)
    if state is not None:
        return {"state": state}
    if core._committed(nonce) is not None:
        raise NonceError("NONCE_COMMITTED", "nonce is committed; issue a credit note instead")
    raise NonceError("NONCE_UNKNOWN", "nonce is not pending nor recent")


def on_status(core, fields):
    nonce, rid = fields.get("nonce"), fields.get("request_id")
    if (nonce is None) == (rid is None):
        raise MessageError("MESSAGE_FIELD", "STATUS takes exactly one of nonce or request_id")
    if rid is not None:
        sealed, pending = core._request(sized(rid, "request_id", record.REQUEST_ID_LEN))
        if pending is not None:
            return {"state": messages.PREPARED, "nonce": pending[0], "expires": pending[1]["expires"]}
    else:
        nonce = sized(nonce, "nonce", NONCE_LEN)
        entry = core.nonces.pending.get(nonce)
        if entry is not None:
            return {"state": messages.PREPARED, "expires": entry["expires"]}
        state = core.nonces.ended_state(nonce)
        if state is not None:
            return {"state": state}
        sealed = core._committed(nonce)
    if sealed is not None:
        return {"state": messages.COMMITTED, "sealed": sealed}
    return {"state": messages.UNKNOWN}
