"""``fiscal board provision``: give a factory-fresh device its key and its certificate.

Steps (PROTOCOL.md sections 4.12-4.14, 4.18): PROVISION makes the key *inside* the device and answers
the public key; the development authority (hostd/boards/authority.py) issues a certificate for that key
and device id; CERTIFY stores it on the device; INFO confirms it; PROFILE installs the country tax
profile (``tax_profile``, default seed-tg when the device has none; a device already holding one keeps
it unless another is named, and refuses another once it sealed an invoice). The public key and the
certificate are also written to ``<authority dir>/devices/`` as the issuing register.

Every step can be run again: PROVISION answers the existing key, and a device that already holds
a certificate from this authority is left alone. A certificate from another authority is reported,
never replaced (the device refuses that anyway: CERT_PRESENT). The daemon must not be running on
the same device: the port is opened exclusively, so this fails fast with DEVICE_UNAVAILABLE.
"""

import os
import re

from device.ports import device_id_for
from hostd.boards import authority
from hostd.books.keys import verify_certificate
from hostd.link.client import DeviceClient
from hostd.errors import DeviceUnavailable, VerificationFailed
from protocol import cert, profile_host
from protocol.errors import VerifyError

DEVICE_ID = re.compile(r"\A([A-Z]{2,8})-[0-9A-F]{8}\Z")

TIMEOUT = 10.0   # key generation plus the first signature take a while on a 125 MHz board


def _checked_id(device_id, public_key):
    """The id is a file name in the register and goes into the certificate: it must be the one
    the public key implies (device.ports.device_id_for), nothing a device could choose freely."""
    m = DEVICE_ID.match(device_id)
    if m is None or device_id_for(public_key, m.group(1)) != device_id:
        raise DeviceUnavailable("device answered id %r, which does not belong to its public key" % device_id)
    return device_id


def _register(directory, device_id, name, content):
    """The issuing register, written before the device is told anything (a disk error then leaves
    nothing certified that is not on record)."""
    devices = os.path.join(directory, "devices")
    os.makedirs(devices, exist_ok=True)
    with open(os.path.join(devices, device_id + name), "wb") as fh:
        fh.write(content)


def provision(port, authority_dir, timeout=TIMEOUT, client_factory=DeviceClient, tax_profile=None):
    """Provision and certify the device on ``port`` and install its tax profile; return a JSON-ready
    summary."""
    auth_key = authority.public_key(authority_dir)
    profile_data = profile_host.load_bytes(tax_profile or profile_host.DEFAULT)
    with client_factory(port, timeout=timeout) as client:
        client.handshake()
        made = client.call("PROVISION")
        public_key = made["public_key"]
        device_id = _checked_id(made["device_id"], public_key)
        _register(authority_dir, device_id, ".pub", (public_key.hex() + "\n").encode())
        held = client.call("INFO")["certificate"]
        if held:
            try:
                fields = verify_certificate(held, auth_key)
                cert.check_subject(fields, device_id, public_key)
            except (VerificationFailed, VerifyError) as exc:
                raise VerificationFailed("the device already holds a certificate this authority did not issue "
                                         "for it (%s); it is never replaced" % exc.detail)
            data, stored = held, False
        else:
            data = authority.issue(authority_dir, device_id, public_key)
            _register(authority_dir, device_id, ".cert", data)
            stored = client.call("CERTIFY", certificate=data)["stored"]
            fields = cert.decode(data)
        info = client.call("INFO")
        if info["certificate"] != data:
            raise VerificationFailed("the device did not keep the certificate it accepted")
        installed, profile_id = False, info["profile_id"]
        if tax_profile is not None or not profile_id:
            answer = client.install_profile(profile_data)
            installed, profile_id = answer["installed"], answer["profile_id"]
    _register(authority_dir, device_id, ".cert", data)
    return {"device_id": device_id, "public_key": public_key.hex(), "key_created": made["created"],
            "certificate_stored": stored, "authority": fields[cert.C_AUTHORITY], "port": port,
            "tax_profile": profile_id, "tax_profile_installed": installed}
