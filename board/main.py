# Fiscal memory device firmware entry point (copied to the board as /main.py by `fiscal board deploy`).
# The fiscal link is the board's second USB serial port; the first stays MicroPython's REPL.
# ESP32-S3 with a "fiscal" data partition: board.main(bdev="esp32").  Ctrl-C at the REPL stops it.
from device import board

board.main()
