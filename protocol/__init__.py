"""Wire protocol shared by the device (MicroPython) and the host (CPython): frames, canonical CBOR,
message and error tables, journal records and their verifier. See PROTOCOL.md."""
