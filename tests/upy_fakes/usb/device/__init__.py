"""Fake ``usb.device`` (micropython-lib usb-device): records ``get().init(...)`` calls.

The real ``init(*itfs, builtin_driver=..., id_vendor=..., ...)`` builds the descriptors from these
arguments and re-enumerates; what matters to the fiscal firmware is what it asks for.
"""

INITS = []


class _Device:
    def __init__(self):
        self._active = False

    def init(self, *itfs, **kwargs):
        INITS.append((itfs, kwargs))
        self._active = True

    def active(self, value=None):
        if value is not None:
            self._active = value
        return self._active


_dev = None


def get():
    global _dev
    if _dev is None:
        _dev = _Device()
    return _dev
