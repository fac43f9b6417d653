# GENERATED from board/manifest.json by `python -m hostd.boards.manifest`; do not edit.
# Freezes the fiscal firmware: make BOARD=<board> FROZEN_MANIFEST=$PWD/board/manifest.py
# Generated data (p256_table.bin) is not frozen: `fiscal board deploy` still writes it.
include("$(PORT_DIR)/boards/manifest.py")  # the port's own frozen modules (_boot.py mounts the FS)
require("usb-device-cdc")
package("device", base_path="..", files=(
    "__init__.py",
    "archive.py",
    "block_flash.py",
    "board.py",
    "books.py",
    "closing.py",
    "batch.py",
    "core.py",
    "credits.py",
    "flash.py",
    "identity.py",
    "journal.py",
    "keystore.py",
    "link.py",
    "nonces.py",
    "p256_table.py",
    "ports.py",
    "profile.py",
    "readout.py",
    "recovery.py",
    "ring.py",
    "sealing.py",
    "signer.py",
    "status.py",
    "table_file.py",
    "usb_link.py",
))
package("protocol", base_path="..", files=(
    "__init__.py",
    "cbor.py",
    "cert.py",
    "closure.py",
    "errors.py",
    "frames.py",
    "invoice.py",
    "merkle.py",
    "messages.py",
    "p256.py",
    "profile_check.py",
    "record.py",
    "smt.py",
    "batch.py",
    "taxgroups.py",
    "timefmt.py",
    "usbids.py",
))
module("main.py", base_path=".")
