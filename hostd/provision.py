"""``fiscal board provision``: give a factory-fresh device its key and its certificate.

Steps (PROTOCOL.md sections 4.12-4.14): PROVISION makes the key *inside* the device and answers
the public key; the development authority (hostd/authority.py) issues a certificate for that key
and device id; CERTIFY stores it on the device; INFO confirms it. The public key and the
certificate are also written to ``<authority dir>/devices/`` as the issuing register.

Every step can be run again: PROVISION answers the existing key, and a device that already holds
a certificate from this authority is left alone. A certificate from another authority is reported,
never replaced (the device refuses that anyway: CERT_PRESENT). The daemon must not be running on
the same device: the port is opened exclusively, so this fails fast with DEVICE_UNAVAILABLE.
"""

import os

from hostd import authority
from hostd.device import DeviceClient
from hostd.errors import VerificationFailed
from protocol import cert

TIMEOUT = 10.0   # key generation plus the first signature take a while on a 125 MHz board


def _register(directory, device_id, public_key, data):
    devices = os.path.join(directory, "devices")
    os.makedirs(devices, exist_ok=True)
    with open(os.path.join(devices, device_id + ".pub"), "w") as fh:
        fh.write(public_key.hex() + "\n")
    with open(os.path.join(devices, device_id + ".cert"), "wb") as fh:
        fh.write(data)


def provision(port, authority_dir, timeout=TIMEOUT, client_factory=DeviceClient):
    """Provision and certify the device on ``port``; return a JSON-ready summary."""
    auth_key = authority.public_key(authority_dir)
    with client_factory(port, timeout=timeout) as client:
        client.handshake()
        made = client.call("PROVISION")
        device_id, public_key = made["device_id"], made["public_key"]
        held = client.call("INFO")["certificate"]
        if held:
            try:
                fields = authority.verify_certificate(held, auth_key)
            except VerificationFailed as exc:
                raise VerificationFailed("the device already holds a certificate that this authority "
                                         "did not issue (%s); it is never replaced" % exc.detail)
            data, stored = held, False
        else:
            data = authority.issue(authority_dir, device_id, public_key)
            stored = client.call("CERTIFY", certificate=data)["stored"]
            fields = cert.decode(data)
        if client.call("INFO")["certificate"] != data:
            raise VerificationFailed("the device did not keep the certificate it accepted")
    _register(authority_dir, device_id, public_key, data)
    return {"device_id": device_id, "public_key": public_key.hex(), "key_created": made["created"],
            "certificate_stored": stored, "authority": fields[cert.C_AUTHORITY], "port": port}
