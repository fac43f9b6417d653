"""Running the service: the composition root that wires store, owner and API onto its listening
sockets (``fiscal daemon``: the unix socket, probed and never stolen, or systemd's through
socket activation; an optional TCP listener), one daemon per store (a lock file), systemd's
notify protocol, the logs, the units ``fiscal service install`` puts in place, and ``fiscal up``
(the emulator beside the daemon). It imports every room below it; only ``hostd.cli`` imports it.
"""
