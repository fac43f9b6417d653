"""Running the service: the composition root that wires store, owner and API onto a listening
socket (``fiscal daemon``), and ``fiscal up`` (the emulator beside the daemon). It imports every
room below it; only ``hostd.cli`` imports it.
"""
