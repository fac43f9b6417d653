"""Provisioning and certificates: PROVISION makes the key inside, CERTIFY stores the authority's
certificate, and `fiscal verify --authority` checks authority -> certificate -> key -> records."""

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from device.core import Core
from device.flash import Flash
from device.keystore import FileKeystore
from device.ports import ManualClock, SeededEntropy, StaticKeystore
from hostd.boards import authority
from hostd.books import export, keys
from hostd.errors import InvalidPayload, VerificationFailed
from hostd.cli.verify import verify
from protocol import cert, messages
from protocol.errors import code_of
from device.signer import Signer
from tests.devkit import SEED_TG, T0, encode_invoice, make_invoice


def _call(core, name, **fields):
    return messages.decode_response(core.handle(messages.encode_request(name, **fields)))


def _fresh(keystore=None, flash=None, seed="id"):
    flash = flash or Flash(64 * 1024)
    keystore = keystore or StaticKeystore(None, None, "TST")
    return Core(flash, ManualClock(), SeededEntropy(seed), keystore), flash, keystore


@pytest.fixture(scope="module")
def auth_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("authority")
    authority.init(str(d))
    return str(d)


def test_fresh_device_serves_only_unsigned_messages():
    core, flash, _ = _fresh()
    info = _call(core, "INFO")[3]
    assert info["public_key"] == b"" and info["device_id"] == "" and info["seq"] == 0
    for name, fields in (("SET_TIME", {"time": T0}), ("STATUS", {"nonce": bytes(16)}),
                         ("PREPARE", {"total": 3, "offset": 0, "data": b"abc", "request_id": b"\x01" * 16})):
        assert _call(core, name, **fields)[1] == code_of("NOT_PROVISIONED")
    assert _call(core, "PING", data=b"x")[3] == {"data": b"x"}
    assert flash.programs == 0                          # nothing written before the key exists


def test_provision_makes_the_key_once_and_starts_the_journal():
    core, flash, keys = _fresh()
    first = _call(core, "PROVISION")[3]
    assert first["created"] is True and keys.secret() is not None
    assert first["device_id"].startswith("TST-") and len(first["public_key"]) == 64
    assert _call(core, "INFO")[3]["seq"] == 1                       # the POWER_UP record
    again = _call(core, "PROVISION")[3]
    assert again == dict(first, created=False)
    reboot = Core(flash, ManualClock(), SeededEntropy("other"), keys)   # same key after power-up
    assert _call(reboot, "INFO")[3]["public_key"] == first["public_key"]
    assert _call(reboot, "SET_TIME", time=T0)[1] == 0


def test_records_without_key_make_the_device_read_only():
    core, flash, _ = _fresh()
    _call(core, "PROVISION")
    lost = Core(flash, ManualClock(), SeededEntropy("x"), StaticKeystore(None, None, "TST"))
    assert _call(lost, "INFO")[3]["fault"] == "KEY_MISSING"
    assert _call(lost, "PROVISION")[1] == code_of("KEY_MISSING")
    assert _call(lost, "SET_TIME", time=T0)[1] == code_of("KEY_MISSING")
    assert len(_call(lost, "READ_JOURNAL", first=1, count=5)[3]["records"]) == 1


def test_key_with_another_journal_stays_read_only():
    """Erased or swapped journal under a kept key: the counter must not restart at 1."""
    core, flash, keys = _fresh()
    _call(core, "PROVISION")
    _call(core, "SET_TIME", time=T0)
    for other in (Flash(64 * 1024), _fresh(seed="other")[1]):   # blank; another device's journal
        moved = Core(other, ManualClock(), SeededEntropy("m"), keys)
        info = _call(moved, "INFO")[3]
        assert info["fault"] == "JOURNAL_MISMATCH", info
        assert _call(moved, "SET_TIME", time=T0)[1] == code_of("JOURNAL_MISMATCH")
        assert _call(moved, "PROVISION")[1] == code_of("JOURNAL_MISMATCH")
    assert _call(Core(flash, ManualClock(), SeededEntropy("n"), keys), "INFO")[3]["fault"] == ""


def test_crash_between_key_and_first_record_recovers():
    """PROVISION stored the key, then power went before POWER_UP: the next boot finishes it."""
    keys = StaticKeystore(None, None, "TST")
    keys.store_secret((12345).to_bytes(32, "big"))
    flash = Flash(64 * 1024)
    core = Core(flash, ManualClock(), SeededEntropy("c"), keys)
    info = _call(core, "INFO")[3]
    assert info["fault"] == "" and info["seq"] == 1 and keys.anchor() is not None


def test_journal_from_before_anchors_is_adopted():
    core, flash, keys = _fresh()
    _call(core, "PROVISION")
    keys._anchor = None                              # a profile made before anchors existed
    again = Core(flash, ManualClock(), SeededEntropy("a"), keys)
    assert _call(again, "INFO")[3]["fault"] == "" and keys.anchor() is not None


def test_unreadable_keystore_is_not_a_missing_key(tmp_path):
    (tmp_path / "key.bin").mkdir()                   # reading it fails with EISDIR, not ENOENT
    core = Core(Flash(64 * 1024), ManualClock(), SeededEntropy("u"), FileKeystore(str(tmp_path)))
    assert _call(core, "INFO")[3]["fault"] == "KEYSTORE_FAILURE"
    assert _call(core, "PROVISION")[1] == code_of("KEYSTORE_FAILURE")
    assert (tmp_path / "key.bin").is_dir()


def test_file_keystore_survives_reboot_and_keeps_the_certificate(tmp_path, auth_dir):
    flash = Flash(64 * 1024)
    core, _, _ = _fresh(FileKeystore(str(tmp_path), "FMD"), flash)
    prov = _call(core, "PROVISION")[3]
    data = authority.issue(auth_dir, prov["device_id"], prov["public_key"])
    assert _call(core, "CERTIFY", certificate=data)[3] == {"stored": True}
    again = Core(flash, ManualClock(), SeededEntropy("y"), FileKeystore(str(tmp_path), "FMD"))
    info = _call(again, "INFO")[3]
    assert info["certificate"] == data and info["device_id"] == prov["device_id"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anchor.bin", "cert.bin", "key.bin"]


def test_certify_checks_subject_and_never_replaces(auth_dir, tmp_path):
    core, _, keys = _fresh()
    prov = _call(core, "PROVISION")[3]
    other = _call(_fresh(seed="other")[0], "PROVISION")[3]["public_key"]
    assert other != prov["public_key"]
    assert _call(core, "CERTIFY", certificate=authority.issue(auth_dir, prov["device_id"], other))[1] \
        == code_of("CERT_REFUSED")
    assert _call(core, "CERTIFY", certificate=authority.issue(auth_dir, "TST-00000000", prov["public_key"]))[1] \
        == code_of("CERT_REFUSED")
    assert _call(core, "CERTIFY", certificate=b"\xa0")[1] == code_of("CERT_REFUSED")
    good = authority.issue(auth_dir, prov["device_id"], prov["public_key"], issued=T0)
    assert _call(core, "CERTIFY", certificate=good)[3] == {"stored": True}
    assert _call(core, "CERTIFY", certificate=good)[3] == {"stored": False}
    later = authority.issue(auth_dir, prov["device_id"], prov["public_key"], issued=T0 + 1)
    assert _call(core, "CERTIFY", certificate=later)[1] == code_of("CERT_PRESENT")
    assert keys.certificate() == good


def _pub(keystore):
    return Signer(keystore.secret()).public_key()


def test_authority_refuses_to_overwrite_its_key(auth_dir):
    with pytest.raises(InvalidPayload, match="never replaced"):
        authority.init(auth_dir)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_changed_certificate_bit_fails_verification(data):
    auth = _AUTH
    good = authority.issue(auth["dir"], "TST-0000ABCD", auth["device_pub"], issued=T0)
    pos = data.draw(st.integers(0, len(good) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(good)
    bad[pos] ^= 1 << bit
    with pytest.raises(VerificationFailed):
        keys.verify_certificate(bytes(bad), auth["pub"])
    assert keys.verify_certificate(good, auth["pub"])[cert.C_DEVICE] == "TST-0000ABCD"


_AUTH = {}


@pytest.fixture(autouse=True, scope="module")
def _auth_values(auth_dir):
    _AUTH.update(dir=auth_dir, pub=authority.public_key(auth_dir), device_pub=_pub(StaticKeystore(
        (7).to_bytes(32, "big"), "x")))


def _certified_export(auth_dir, seed="id"):
    core, _, _ = _fresh(seed=seed)
    prov = _call(core, "PROVISION")[3]
    data = authority.issue(auth_dir, prov["device_id"], prov["public_key"])
    _call(core, "CERTIFY", certificate=data)
    assert _call(core, "PROFILE", data=SEED_TG)[3]["installed"]   # as `fiscal board provision` does
    _call(core, "SET_TIME", time=T0)
    assert _call(core, "PROFILE", data=SEED_TG)[1] == 0      # protocol 3: no seal without a profile
    canonical = encode_invoice(make_invoice())   # dated T0, the device clock: inside the window
    nonce = _call(core, "PREPARE", total=len(canonical), offset=0, data=canonical, request_id=b"\x01" * 16)[3]["nonce"]
    _call(core, "COMMIT", nonce=nonce)
    info = _call(core, "INFO")[3]
    recs = _call(core, "READ_JOURNAL", first=1, count=50)[3]["records"]
    return export.build_export(recs, info, _call(core, "HEAD", challenge=b"")[3], T0 + 10)


def _verify_cli(tmp_path, doc, *args):
    path = tmp_path / "export.json"
    path.write_bytes(export.dump_export(doc))
    return CliRunner().invoke(verify, [str(path)] + [str(a) for a in args])


def test_verify_checks_the_chain_up_to_the_authority(tmp_path, auth_dir):
    doc = _certified_export(auth_dir)
    assert doc["certificate"]
    ok = _verify_cli(tmp_path, doc, "--authority", f"{auth_dir}/authority.pub", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["certificate"].startswith("verified: issued to " + doc["device_id"])
    plain = _verify_cli(tmp_path, doc)
    assert plain.exit_code == 0 and "issuer not checked" in plain.output


def test_verify_refuses_another_authority_a_missing_or_mismatched_certificate(tmp_path, auth_dir):
    stranger = tmp_path / "stranger"
    authority.init(str(stranger))
    doc = _certified_export(auth_dir)
    res = _verify_cli(tmp_path, doc, "--authority", stranger / "authority.pub")
    assert res.exit_code == 1 and "not by the given authority" in res.output
    res = _verify_cli(tmp_path, dict(doc, certificate=None), "--authority", f"{auth_dir}/authority.pub")
    assert res.exit_code == 1 and "carries no device certificate" in res.output
    other = _certified_export(auth_dir, seed="another")      # a genuine certificate of another device
    res = _verify_cli(tmp_path, dict(doc, certificate=other["certificate"]), "--authority",
                      f"{auth_dir}/authority.pub")
    assert res.exit_code == 1 and "another public key" in res.output


class FakeClient:
    """DeviceClient stand-in driving a real Core in memory (same call/handshake contract)."""

    def __init__(self, core, lie_id=None):
        self.core, self.lie_id = core, lie_id

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def handshake(self):
        return self.call("INFO")

    def install_profile(self, data):
        return self.call("PROFILE", data=data)

    def call(self, name, **fields):
        from hostd.errors import DeviceRefused
        from protocol.errors import name_of

        got, status, detail, answer = _call(self.core, name, **fields)
        if status:
            raise DeviceRefused(status, name_of(status), detail)
        if name == "PROVISION" and self.lie_id:
            answer["device_id"] = self.lie_id
        return answer

    def install_profile(self, data):
        return self.call("PROFILE", data=data)

    def read_profile(self):
        return self.call("PROFILE_READ")


def test_provision_flow_registers_then_certifies(tmp_path, auth_dir):
    from hostd.boards.provision import provision

    core, _, keys = _fresh(seed="flow")
    summary = provision("pty", auth_dir, client_factory=lambda port, timeout: FakeClient(core))
    assert summary["key_created"] and summary["certificate_stored"]
    assert (summary["tax_profile"], summary["tax_profile_installed"]) == ("seed-tg", True)
    assert _call(core, "PROFILE_READ")[3]["data"] == SEED_TG              # the default profile, as shipped
    reg = "%s/devices/%s" % (auth_dir, summary["device_id"])
    assert open(reg + ".pub").read().strip() == summary["public_key"]
    assert open(reg + ".cert", "rb").read() == keys.certificate()
    again = provision("pty", auth_dir, client_factory=lambda port, timeout: FakeClient(core))
    assert (again["key_created"], again["certificate_stored"]) == (False, False)
    assert (again["tax_profile"], again["tax_profile_installed"]) == ("seed-tg", False)   # kept, not sent again


def test_provision_refuses_an_id_that_is_not_the_keys(tmp_path, auth_dir):
    from hostd.errors import DeviceUnavailable
    from hostd.boards.provision import provision

    core, _, _ = _fresh(seed="liar")
    with pytest.raises(DeviceUnavailable, match="does not belong to its public key"):
        provision("pty", auth_dir, client_factory=lambda port, timeout: FakeClient(core, lie_id="../../etc"))
    assert not (tmp_path / "etc").exists()


def test_provision_without_an_authority_says_how_to_make_one(tmp_path):
    from hostd.boards.provision import provision

    with pytest.raises(InvalidPayload, match="fiscal authority init"):
        provision("pty", str(tmp_path), client_factory=None)


def test_pinned_authority_refuses_certificates_it_did_not_sign(tmp_path, auth_dir):
    pinned = authority.public_key(auth_dir)
    core, _, keys = _fresh(StaticKeystore(None, None, "TST", authority=pinned), seed="pin")
    prov = _call(core, "PROVISION")[3]
    rogue = tmp_path / "rogue"
    authority.init(str(rogue))
    bogus = authority.issue(str(rogue), prov["device_id"], prov["public_key"])
    status, detail = _call(core, "CERTIFY", certificate=bogus)[1:3]
    assert status == code_of("CERT_REFUSED") and "not by the pinned authority" in detail
    forged = bytearray(authority.issue(auth_dir, prov["device_id"], prov["public_key"], issued=T0))
    forged[-1] ^= 1                                     # right issuer name, wrong signature
    status, detail = _call(core, "CERTIFY", certificate=bytes(forged))[1:3]
    assert status == code_of("CERT_REFUSED") and "does not verify" in detail
    assert keys.certificate() is None
    good = authority.issue(auth_dir, prov["device_id"], prov["public_key"])
    assert _call(core, "CERTIFY", certificate=good)[3] == {"stored": True}
