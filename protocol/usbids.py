"""USB identity of a fiscal memory board, shared by the board firmware, udev rules and discovery.

VID 0x1209 belongs to pid.codes, which gives PIDs to open-source hardware. PID 0x0001 is the
pid.codes *test* PID: fine on a developer's desk, never in a shipped product. Before boards are
sold the project must request its own PID (pid.codes/howto: a pull request adding
``1209/<PID>/index.md``) and change PRODUCT_ID here, in ``udev/70-fiscal.rules`` and nowhere else.

The board keeps MicroPython's own REPL CDC on interfaces 0-1 (``builtin_driver=True``); the runtime
CDC that carries fiscal frames is numbered from the built-in driver's ``itf_max``, so its control
interface is 2 (micropython-lib ``usb/device/core.py``, ``config()``). Host discovery and udev
select the fiscal tty by that interface number, never by ``/dev/ttyACMn``.
"""

VENDOR_ID = 0x1209
PRODUCT_ID = 0x0001
MANUFACTURER = "Open Fiscal Device"
PRODUCT = "Fiscal Memory Device"
FISCAL_INTERFACE = 2      # bInterfaceNumber of the fiscal CDC control interface
REPL_INTERFACE = 0        # MicroPython's built-in CDC (left usable for mpremote)
