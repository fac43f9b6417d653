"""Host side of the country profiles (CPython only): the shipped JSON files and their device form.

protocol/profiles/*.json are the profiles in the repository and in the wheel (package data). A
profile's device form is the canonical CBOR of the same JSON value (text keys, integers, text,
lists and maps only), so its SHA-256, which the device journals in a ``profile`` EVENT and reports
in INFO, can be recomputed by anyone from the JSON file. ``load`` accepts a shipped name
(``seed-tg``, ``drc-dgi``) or a path; the result is checked exactly as the device checks it.
"""

import hashlib
import importlib.resources
import json
import os

from protocol import cbor, invoice

DEFAULT = "seed-tg"
_CACHE = {}
_DECODED = {}


def shipped():
    """Names of the profiles shipped in protocol/profiles/, sorted."""
    folder = importlib.resources.files("protocol") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def read_json(name_or_path):
    """The JSON text of a shipped profile name or of a file path."""
    if os.path.sep in name_or_path or name_or_path.endswith(".json"):
        with open(name_or_path, encoding="utf-8") as fh:
            return fh.read()
    return (importlib.resources.files("protocol") / "profiles" / (name_or_path + ".json")).read_text("utf-8")


def encode(doc):
    """The device form (canonical CBOR) of a profile document, checked like the device checks it."""
    data = cbor.encode(doc)
    invoice.load_profile(data)
    return data


def load_bytes(name_or_path):
    """Canonical CBOR of a profile given by shipped name or path (PROFILE_INVALID if it is not one)."""
    if name_or_path not in _CACHE:
        _CACHE[name_or_path] = encode(json.loads(read_json(name_or_path)))
    return _CACHE[name_or_path]


def load(name_or_path):
    """The decoded, checked profile (a fresh copy: callers may not share mutations)."""
    return cbor.decode(load_bytes(name_or_path))


def default():
    """The shipped default profile, decoded once and shared: callers must not modify it."""
    if DEFAULT not in _DECODED:
        _DECODED[DEFAULT] = load(DEFAULT)
    return _DECODED[DEFAULT]


def digest(data):
    return hashlib.sha256(bytes(data)).digest()


def by_hash():
    """{SHA-256: canonical bytes} of every shipped profile: a verifier finds the profile a journal
    names among the published ones when the export does not carry it."""
    return dict((digest(load_bytes(name)), load_bytes(name)) for name in shipped())


def manifest(profile):
    """The profile's groups as (code, name, rate_ppm, effective_from) tuples: GET /tax-groups."""
    return tuple(tuple(entry) for entry in profile["groups"])
