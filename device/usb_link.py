"""The fiscal link on a board: a second USB CDC-ACM interface carrying frames to device/link.py.

DESIGN-NOTES section 7 and micropython-lib ``usb-device-cdc`` (``usb/device/cdc.py``):

- ``usb.device.get().init(cdc, builtin_driver=True, ...)`` keeps MicroPython's own REPL CDC on
  interfaces 0-1, so mpremote still works, and adds ours on 2-3. Its control interface
  descriptor says protocol 0 (``_PROTOCOL_NONE``): no AT-command modem, which keeps ModemManager's
  heuristics away (solo1 PR #143); the udev rule also tells it to ignore the board.
- The identity it presents (VID:PID, strings, serial number) comes from protocol/usbids.py and
  the chip's unique id, so udev and ``--device auto`` find the board by serial, never by tty name.
- ``CDCInterface.read()``/``readinto()`` return None on timeout, and ``write()`` returns a
  *partial* count when its buffer stays full for ``timeout`` ms (a host that stopped reading).
  :func:`write_all` keeps going until the answer is out or a deadline passes; an answer dropped
  then is not lost: the host retransmits the same frame and device/link.py replays it.
"""

from protocol import usbids

READ_TIMEOUT_MS = 50        # CDC timeout: a read with nothing to do returns this often
WRITE_DEADLINE_MS = 2000    # give up on an answer the host does not take within this time
IDLE_RESET_MS = 500         # a partial frame older than this is dropped (device/link.py idle)
RXBUF = 1024
TXBUF = 1024


def open_cdc(serial, usb_device, cdc_class):
    """Create the fiscal CDC interface and (re-)enumerate with it next to the REPL."""
    cdc = cdc_class(timeout=READ_TIMEOUT_MS, rxbuf=RXBUF, txbuf=TXBUF)
    usb_device.get().init(cdc, builtin_driver=True, id_vendor=usbids.VENDOR_ID,
                          id_product=usbids.PRODUCT_ID, manufacturer_str=usbids.MANUFACTURER,
                          product_str=usbids.PRODUCT, serial_str=serial)
    return cdc


def write_all(cdc, data, ticks_ms, ticks_diff):
    """Write every byte of ``data`` unless WRITE_DEADLINE_MS passes; return the count written."""
    view = memoryview(data)
    done = 0
    start = ticks_ms()
    while done < len(data):
        n = cdc.write(view[done:])
        done += n or 0
        if done < len(data) and ticks_diff(ticks_ms(), start) >= WRITE_DEADLINE_MS:
            break
    return done


def serve(cdc, link, ticks_ms, ticks_diff, after=None, running=None, idle=None):
    """Feed the link from the CDC forever (or while ``running()``); ``after()`` runs per answer,
    ``idle()`` per quiet read: the board samples its clock there, because ``ticks_diff`` is only
    right for intervals under 2**29 ms and a till may stay silent for a week."""
    buf = bytearray(RXBUF)
    last = ticks_ms()
    while running is None or running():
        n = cdc.readinto(buf)
        if not n:
            if idle is not None:
                idle()
            if ticks_diff(ticks_ms(), last) >= IDLE_RESET_MS:
                link.idle()
                last = ticks_ms()
            continue
        last = ticks_ms()
        answer = link.feed(bytes(buf[:n]))
        if answer:
            write_all(cdc, answer, ticks_ms, ticks_diff)
            if after is not None:
                after()
