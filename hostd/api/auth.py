"""Bearer tokens, each scoped to outlets (issue 13), and the tokens file they come from.

A POS proves who it is with ``Authorization: Bearer <token>`` (RFC 6750 section 2.1). Each
token is allowed a set of outlets, or all of them. A token of another outlet is refused with 403
wherever a request names an outlet: an invoice's ``outlet_id`` and the outlet status path.

The tokens file (``fiscal daemon --tokens-file F``), one token per line::

    # comments and blank lines are ignored
    <token> <outlet_id>[,<outlet_id>...]
    <token> *                      # every outlet

A token is 16 to 256 printable ASCII characters without spaces; an outlet id has no spaces or
commas; a token appears once. A file that breaks any rule is refused as a whole, naming its line,
so a typo never silently locks a till out or lets one in. The daemon rereads the file on SIGHUP
(rotation without a restart); a file that fails to parse then leaves the old tokens in force and
the log says why (hostd/daemon/server.py).

The legacy ``--token-file`` (one token) with ``--outlet`` is the one-line table "token outlet",
and without ``--outlet`` "token *". Tokens are compared as bytes, in constant time, against
every entry: a lookup never tells by its timing how much of a token was right.
"""

import hashlib
import hmac
import re

from hostd.api.replies import Refusal
from hostd.errors import ConfigError

ALL = None   # the scope of a token for every outlet
CALLER = "fiscal.caller"   # request key: the label of a token scoped to outlets (``caller_of``)
MIN_TOKEN, MAX_TOKEN = 16, 256
_TOKEN = re.compile(r"\A[\x21-\x7e]+\Z")
_OUTLET = re.compile(r"\A[^\s,]{1,128}\Z")


class Tokens:
    """token bytes -> frozenset of outlet ids, or ALL."""

    def __init__(self, table, source="(given)"):
        self.table = dict(table)
        self.source = source

    def __len__(self):
        return len(self.table)

    @classmethod
    def single(cls, token, outlet=None):
        return cls({token.encode("utf-8", "surrogateescape"): ALL if outlet is None else frozenset([outlet])},
                   "--token-file")

    @classmethod
    def parse(cls, text, source):
        table = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            if not line:
                continue
            parts = line.split()
            where = "%s line %d" % (source, number)
            if len(parts) != 2:
                raise ConfigError("%s: expected '<token> <outlet>[,<outlet>...]' or '<token> *', got %d fields"
                                  % (where, len(parts)), field="--tokens-file")
            token, scope = parts
            if not (MIN_TOKEN <= len(token) <= MAX_TOKEN and _TOKEN.match(token)):
                raise ConfigError("%s: a token is %d to %d printable ASCII characters without spaces"
                                  % (where, MIN_TOKEN, MAX_TOKEN), field="--tokens-file")
            if token.encode() in table:
                raise ConfigError("%s: this token is already listed above" % where, field="--tokens-file")
            if scope == "*":
                outlets = ALL
            else:
                names = scope.split(",")
                if not all(_OUTLET.match(n) for n in names):
                    raise ConfigError("%s: outlets are ids separated by commas (no spaces), or *" % where,
                                      field="--tokens-file")
                outlets = frozenset(names)
            table[token.encode()] = outlets
        if not table:
            raise ConfigError("%s lists no token: every client would be refused" % source, field="--tokens-file")
        return cls(table, source)

    @classmethod
    def load(cls, path):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("cannot read the tokens file %s: %s" % (path, exc), field="--tokens-file")
        return cls.parse(text, path)

    def scope(self, header):
        """The outlets the ``Authorization`` header's token may act for; 401 without a known token."""
        given = header.encode("utf-8", "surrogateescape")   # undecodable header bytes arrive as escapes
        found = False
        scope = ALL
        for token, outlets in self.table.items():
            if hmac.compare_digest(given, b"Bearer " + token):
                found, scope = True, outlets
        if not found:
            raise Refusal("UNAUTHORIZED", "missing or invalid bearer token", field="Authorization")
        return scope


def caller_of(header, scope):
    """The label a token scoped to outlets is known by in the store (``tok-`` and 12 hex digits
    of SHA-256 of the header: never the token itself), for its share of the device's PREPARE
    slots (hostd/owner/slots.py); None for a token of every outlet, or no token."""
    if scope is ALL:
        return None
    return "tok-" + hashlib.sha256(header.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def check_scope(scope, outlet_id):
    """403 unless a token of ``scope`` may act for ``outlet_id``."""
    if scope is not ALL and outlet_id not in scope:
        raise Refusal("FORBIDDEN", "this token may not act for outlet %s" % outlet_id, field="outlet_id")
