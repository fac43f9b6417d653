"""One port to one device: finding the board's fiscal port (VID:PID, interface, serial) and the
link client that speaks frames to it (handshake, retransmission, chunked PREPARE). It knows
nothing of stores or invoices' fates. It imports ``protocol`` and ``hostd.errors``.
"""
