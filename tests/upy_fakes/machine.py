"""Fake ``machine`` for running the board firmware in the WebAssembly MicroPython (no hardware).

Like micropython-lib's own USB tests (usb-device/tests/test_core_buffer.py inject a FakeMachine),
it records what the firmware asks for, so tests/test_board_fakes.py can check it.
"""

CALLS = []
UID = b"\xe6\x61\x41\x03\xe7\x45\x2d\x2f"


def unique_id():
    CALLS.append(("unique_id",))
    return UID


def idle():
    pass


class RTC:
    def datetime(self, value=None):
        CALLS.append(("rtc.datetime", value))
        return value
