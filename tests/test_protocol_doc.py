"""protocol/PROTOCOL.md agrees with the tables in the code it documents.

PROTOCOL.md is what third parties implement from, so its tables must not drift from
protocol/errors.py, protocol/messages.py, protocol/record.py, protocol/invoice.py,
protocol/taxgroups.py and the shipped profiles (protocol/profiles/). Each ``check_*`` function parses the Markdown and returns a list of
problems (empty when the document agrees); the ``test_doc_*`` tests run them on the real document,
and the ``test_mutation_*`` tests prove every check can fail by running it on a mutated copy of
the text. ``PROTOCOL_DOC=/path/to/copy.md`` points the tests at another file (e.g. a scratch
copy being edited).

Table conventions the checks rely on (see the document):
- error table: header ``Code | Name | Family | Meaning``, codes written ``0x31``;
- message table: header starting ``Id | Message``; one heading ``### <n> NAME (id N)`` per message;
- field tables: ``Key | Field | Type | Meaning`` under ``#### NAME request`` / ``#### NAME response``;
- ``GENESIS = <64 hex digits>`` once at least;
- tax groups: one table per shipped profile, header starting ``Code | Name | Rate (ppm)`` (seed-tg)
  or ``Letter | Name | Rate (ppm)`` (drc-dgi), with ``Rate`` and ``Effective from``;
- profile fields: header ``Field | JSON type | Rule`` under ``#### Profile fields``;
- each shipped profile's hash (64 hex digits) in backticks under ``#### The <name> profile``;
- the protocol version in the versioning table row ``protocol version`` and in the title.
"""

import hashlib
import os
import re

import pytest

from device import core
from protocol import error_table as errors, invoice, messages, profile_check, profile_host, record, schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_PATH = os.environ.get("PROTOCOL_DOC") or os.path.join(ROOT, "protocol", "PROTOCOL.md")

FIELD_HEADER = ["Key", "Field", "Type", "Meaning"]
INVOICE_HEADER = ["Key", "Field", "Type", "Empty", "Meaning"]


def load_doc():
    with open(DOC_PATH, encoding="utf-8") as fh:
        return fh.read()


# ------------------------------------------------------------------ Markdown parsing

def _cells(line):
    """Cells of a Markdown table line (backticks stripped), or None for a non-table line."""
    line = line.strip()
    if not line.startswith("|"):
        return None
    inner = line[1:-1] if line.endswith("|") and len(line) > 1 else line[1:]
    return [cell.strip().replace("`", "") for cell in re.split(r"(?<!\\)\|", inner)]


def _is_separator(cells):
    return all(re.fullmatch(r":?-{1,}:?", cell) for cell in cells)


def tables(lines):
    """[(header cells, [row cells, ...]), ...] for every table in ``lines``."""
    found = []
    i = 0
    while i < len(lines):
        header = _cells(lines[i])
        if header is not None and i + 1 < len(lines):
            sep = _cells(lines[i + 1])
            if sep is not None and _is_separator(sep):
                rows = []
                j = i + 2
                while j < len(lines) and _cells(lines[j]) is not None:
                    rows.append(_cells(lines[j]))
                    j += 1
                found.append((header, rows))
                i = j
                continue
        i += 1
    return found


def sections(text):
    """[(level, title, body lines)] for every heading outside fenced code blocks."""
    out = []
    current = None
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"^(#{1,6})\s+(.*?)\s*$", line)
        if match:
            current = (len(match.group(1)), match.group(2), [])
            out.append(current)
        elif current is not None:
            current[2].append(line)
    return out


def one_section(text, title, level, problems):
    """Body lines of the single heading ``title`` at ``level``; records a problem otherwise."""
    hits = [body for lvl, name, body in sections(text) if lvl == level and name == title]
    if len(hits) != 1:
        problems.append("expected exactly one heading %s %s, found %d" % ("#" * level, title, len(hits)))
        return None
    return hits[0]


def tables_with(lines, header_prefix):
    return [(h, rows) for h, rows in tables(lines) if h[:len(header_prefix)] == header_prefix]


def one_table(lines, header_prefix, what, problems):
    found = tables_with(lines, header_prefix)
    if len(found) != 1:
        problems.append("expected exactly one %s table (header %s), found %d"
                        % (what, " | ".join(header_prefix), len(found)))
        return None
    return found[0]


def _int(cell, problems, what):
    try:
        return int(cell)
    except ValueError:
        problems.append("%s: %r is not an integer" % (what, cell))
        return None


def key_rows(lines, header, what, problems):
    """{key: row cells} from the tables with ``header`` in ``lines``; duplicates are problems."""
    out = {}
    for _, rows in tables_with(lines, header):
        for row in rows:
            if len(row) != len(header):
                problems.append("%s: row %r has %d cells, expected %d" % (what, row, len(row), len(header)))
                continue
            key = _int(row[0], problems, what)
            if key is None:
                continue
            if key in out:
                problems.append("%s: key %d listed twice" % (what, key))
            out[key] = row
    return out


def _compare(what, doc, code, show=repr):
    """Problems for two {key: value} dicts that should be equal."""
    problems = []
    for key in sorted(set(code) - set(doc), key=repr):
        problems.append("%s: %s missing from the document (code has %r)" % (what, show(key), code[key]))
    for key in sorted(set(doc) - set(code), key=repr):
        problems.append("%s: %s in the document but not in the code (%r)" % (what, show(key), doc[key]))
    for key in sorted(set(doc) & set(code), key=repr):
        if doc[key] != code[key]:
            problems.append("%s: %s is %r in the document, %r in the code" % (what, show(key), doc[key], code[key]))
    return problems


# ------------------------------------------------------------------ checks

def check_error_table(text):
    problems = []
    found = one_table(text.splitlines(), ["Code", "Name", "Family", "Meaning"], "error", problems)
    if found is None:
        return problems
    doc = {}
    for row in found[1]:
        if len(row) != 4 or not re.fullmatch(r"0x[0-9A-F]{2}", row[0]):
            problems.append("error table: malformed row %r (code must be written like 0x31)" % (row,))
            continue
        code = int(row[0], 16)
        if code in doc:
            problems.append("error table: code %s listed twice" % row[0])
        doc[code] = (row[1], row[2], row[3])
    return problems + _compare("error code", doc, dict(errors.ERRORS), lambda code: "0x%02X" % code)


def check_message_table(text):
    problems = []
    code = {mid: messages.MESSAGES[mid][0] for mid in messages.MESSAGES}
    found = one_table(text.splitlines(), ["Id", "Message"], "message", problems)
    if found is not None:
        doc = {}
        for row in found[1]:
            mid = _int(row[0], problems, "message table")
            if mid is not None:
                if mid in doc:
                    problems.append("message table: id %d listed twice" % mid)
                doc[mid] = row[1] if len(row) > 1 else ""
        problems += _compare("message table id", doc, code)
    headed = {}
    for level, title, _ in sections(text):
        match = re.fullmatch(r"(?:[\d.]+\s+)?([A-Z_]+)\s+\(id\s+(\d+)\)", title)
        if level == 3 and match:
            if match.group(1) in headed:
                problems.append("message heading for %s appears twice" % match.group(1))
            headed[match.group(1)] = int(match.group(2))
    problems += _compare("message heading", headed, {code[mid]: mid for mid in code})
    return problems


def check_message_fields(text):
    problems = []
    for mid in sorted(messages.MESSAGES):
        name, request, response = messages.MESSAGES[mid]
        for part, spec in (("request", messages.fields_of(request)), ("response", messages.fields_of(response))):
            what = "%s %s" % (name, part)
            body = one_section(text, what, 4, problems)
            if body is None:
                continue
            if spec and not tables_with(body, FIELD_HEADER):
                problems.append("%s: no Key | Field | Type | Meaning table" % what)
            rows = key_rows(body, FIELD_HEADER, what, problems)
            doc = {key: (row[1], row[2]) for key, row in rows.items()}
            problems += _compare(what + " field", doc, dict(spec))
    return problems


def check_genesis(text):
    found = re.findall(r"GENESIS\s*=\s*([0-9A-Fa-f]{8,})", text)
    want = record.genesis().hex()
    if not found:
        return ["no 'GENESIS = <hex>' line in the document"]
    return ["GENESIS in the document is %s, code gives %s" % (value, want) for value in found if value != want]


def _taxgroup_table(text, first, profile):
    """The tax group table whose header starts ``first | Name | Rate (ppm)`` against ``profile``."""
    problems = []
    found = one_table(text.splitlines(), [first, "Name", "Rate (ppm)"], "%s tax group" % profile, problems)
    if found is None:
        return problems
    header, rows = found
    if "Effective from" not in header:
        return problems + ["%s tax group table has no 'Effective from' column" % profile]
    eff = header.index("Effective from")
    pct = header.index("Rate") if "Rate" in header else None
    doc = []
    for row in rows:
        if len(row) != len(header):
            problems.append("tax group table: malformed row %r" % (row,))
            continue
        rate = _int(row[2], problems, "tax group %s rate" % row[0])
        if pct is not None:
            match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", row[pct])
            if not match or rate is None or round(float(match.group(1)) * 10000) != rate:
                problems.append("tax group %s: percentage %r does not match %r ppm" % (row[0], row[pct], rate))
        doc.append((row[0], row[1], rate, row[eff]))
    code = [tuple(entry) for entry in profile_host.load(profile)["groups"]]
    for entry in sorted(set(code) - set(doc)):
        problems.append("%s tax group entry %r missing from the document" % (profile, entry))
    for entry in sorted(set(doc) - set(code), key=repr):
        problems.append("tax group row %r is not in profile %s" % (entry, profile))
    if len(doc) != len(set(doc)):
        problems.append("%s tax group table has duplicate rows" % profile)
    return problems


def check_taxgroups(text):
    return _taxgroup_table(text, "Code", "seed-tg") + _taxgroup_table(text, "Letter", "drc-dgi")


def check_profile_fields(text):
    """The Profile fields table lists exactly the keys protocol/profile_check.py accepts."""
    problems = []
    body = one_section(text, "Profile fields", 4, problems)
    if body is None:
        return problems
    found = one_table(body, ["Field", "JSON type", "Rule"], "profile field", problems)
    if found is None:
        return problems
    doc = [row[0] for row in found[1]]
    if len(doc) != len(set(doc)):
        problems.append("profile field listed twice")
    return problems + _compare("profile field", dict.fromkeys(doc, True),
                               dict.fromkeys(profile_check.KEYS + profile_check.OPTIONAL, True))


def check_profile_hashes(text):
    """Each shipped profile's section gives the SHA-256 of its device form."""
    problems = []
    for name in profile_host.shipped():
        body = one_section(text, "The %s profile" % name, 4, problems)
        if body is None:
            continue
        want = hashlib.sha256(profile_host.load_bytes(name)).hexdigest()
        found = re.findall(r"`([0-9a-f]{64})`", "\n".join(body))
        if found != [want]:
            problems.append("profile %s: the document gives hash %r, its device form hashes to %s" % (name, found, want))
    return problems


def check_versions(text):
    problems = []
    title = re.match(r"# .*, version (\d+)\n", text)
    if not title or int(title.group(1)) != core.PROTOCOL_VERSION:
        problems.append("the title does not name protocol version %d" % core.PROTOCOL_VERSION)
    rows = [r for h, rows in tables(text.splitlines()) if h[:2] == ["Item", "Value"] for r in rows
            if r[0] == "protocol version"]
    if [r[1] for r in rows] != [str(core.PROTOCOL_VERSION)]:
        problems.append("versioning table: protocol version %r, the device answers %d"
                        % ([r[1] for r in rows], core.PROTOCOL_VERSION))
    return problems


def _constants(prefix, skip=()):
    """{value: lower-case name without prefix} of the integer constants ``prefix*`` of record."""
    out = {}
    for attr in dir(record):
        if attr.startswith(prefix) and attr not in skip and isinstance(getattr(record, attr), int):
            out[getattr(record, attr)] = attr[len(prefix):].lower()
    return out


def check_sealed_keys(text):
    problems = []
    body = one_section(text, "Sealed result", 4, problems)
    if body is None:
        return problems
    rows = key_rows(body, FIELD_HEADER, "sealed result", problems)
    return problems + _compare("sealed result key", {k: r[1] for k, r in rows.items()}, _constants("S_"))


def check_record_keys(text):
    problems = []
    doc = {}
    for title in ("Common body keys", "INVOICE body keys", "TIME body keys", "POWER_UP body keys",
                  "CHECKPOINT body keys", "EVENT body keys", "CLOSURE body keys"):
        body = one_section(text, title, 4, problems)
        if body is None:
            continue
        rows = key_rows(body, FIELD_HEADER, title, problems)
        for key in rows:
            # a key may serve several record types, with one name (protocol/record.py)
            if key in doc and doc[key] != rows[key][1]:
                problems.append("body key %d is %r in one record table, %r in another" % (key, doc[key], rows[key][1]))
            doc[key] = rows[key][1]
        if title == "Common body keys" and sorted(rows) != sorted(schema.COMMON):
            problems.append("common body keys are %r, the verifier requires %r" % (sorted(rows), sorted(schema.COMMON)))
    return problems + _compare("record body key", doc, _constants("K_"))


def check_record_schema(text):
    """Each record type's table lists exactly the keys protocol/schema.py checks for that type."""
    problems = []
    for rtype, title in ((record.INVOICE, "INVOICE"), (record.TIME, "TIME"), (record.POWER_UP, "POWER_UP"),
                         (record.CHECKPOINT, "CHECKPOINT"), (record.EVENT, "EVENT"), (record.CLOSURE, "CLOSURE")):
        body = one_section(text, title + " body keys", 4, problems)
        if body is None:
            continue
        rows = key_rows(body, FIELD_HEADER, title, problems)
        problems += _compare("%s schema key" % title, {k: r[1] for k, r in rows.items()},
                             {k: v[0] for k, v in schema.BY_TYPE[rtype].items()})
    return problems


def check_nonce_states(text):
    problems = []
    found = one_table(text.splitlines(), ["State", "Name"], "nonce state", problems)
    if found is None:
        return problems
    doc = {}
    for row in found[1]:
        state = _int(row[0], problems, "nonce state table")
        if state is not None:
            doc[state] = row[1]
    return problems + _compare("nonce state", doc, dict(messages.STATE_NAMES))


INVOICE_TABLES = (("Invoice (top level)", invoice.INVOICE + invoice.OPTIONAL), ("Client", invoice.CLIENT),
                  ("Item", invoice.ITEM), ("Tax line", invoice.TAX_LINE), ("Totals", invoice.TOTALS),
                  ("Payment", invoice.PAYMENT), ("Credit", invoice.CREDIT))


def _invoice_kind(kind, empty_ok):
    if kind == "str":
        return ("str", "yes" if empty_ok else "no")
    if kind == "int":
        return ("int", "-")
    if isinstance(kind, tuple) and kind and kind[0] == "list":
        return ("list", "-")
    return ("map", "-")


def check_invoice_tables(text):
    problems = []
    for title, table in INVOICE_TABLES:
        body = one_section(text, title, 4, problems)
        if body is None:
            continue
        rows = key_rows(body, INVOICE_HEADER, title, problems)
        doc = {key: (row[1],) + (row[2], row[3]) for key, row in rows.items()}
        code = {key: (name,) + _invoice_kind(kind, empty_ok) for key, name, kind, empty_ok in table}
        problems += _compare("invoice %s field" % title, doc, code)
    return problems


CHECKS = {
    "errors": check_error_table,
    "messages": check_message_table,
    "fields": check_message_fields,
    "genesis": check_genesis,
    "taxgroups": check_taxgroups,
    "sealed": check_sealed_keys,
    "record": check_record_keys,
    "schema": check_record_schema,
    "nonce_states": check_nonce_states,
    "invoice": check_invoice_tables,
    "profile_fields": check_profile_fields,
    "profile_hashes": check_profile_hashes,
    "versions": check_versions,
}


# ------------------------------------------------------------------ the document agrees with the code

@pytest.fixture(scope="module")
def doc():
    return load_doc()


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_doc_agrees_with_code(doc, name):
    problems = CHECKS[name](doc)
    assert problems == [], "\n".join(problems)


def test_doc_lists_every_error_code_once(doc):
    # independent of check_error_table: a plain scan for every code/name pair of ERRORS
    for code, (name, family, _) in errors.ERRORS.items():
        rows = [line for line in doc.splitlines() if re.match(r"^\|\s*0x%02X\s*\|" % code, line)]
        assert len(rows) == 1, "0x%02X" % code
        assert _cells(rows[0])[1:3] == [name, family]


# ------------------------------------------------------------------ every check can fail

def replace_once(old, new):
    def mutate(text):
        assert text.count(old) == 1, "mutation target %r must occur exactly once" % old
        return text.replace(old, new)
    return mutate


def drop_line(needle):
    def mutate(text):
        lines = text.splitlines(True)
        hits = [i for i, line in enumerate(lines) if needle in line]
        assert len(hits) == 1, "mutation target %r must be on exactly one line" % needle
        del lines[hits[0]]
        return "".join(lines)
    return mutate


def add_after(needle, extra):
    def mutate(text):
        lines = text.splitlines(True)
        hits = [i for i, line in enumerate(lines) if needle in line]
        assert len(hits) == 1, "mutation target %r must be on exactly one line" % needle
        lines.insert(hits[0] + 1, extra + "\n")
        return "".join(lines)
    return mutate


def genesis_flip(text):
    want = record.genesis().hex()
    flipped = want[:-1] + ("0" if want[-1] != "0" else "1")
    assert text.count(want) >= 1
    return text.replace(want, flipped, 1)


MUTATIONS = [
    ("errors", replace_once("| 0x31 | NONCE_EXPIRED |", "| 0x31 | NONCE_EXPIRE |")),
    ("errors", replace_once("| 0x31 | NONCE_EXPIRED |", "| 0x39 | NONCE_EXPIRED |")),
    ("errors", drop_line("| 0x2A | CURRENCY_INVALID |")),
    ("errors", add_after("| 0x65 | VERIFY_KEY |", "| 0x7E | VERIFY_EXTRA | verify | invented |")),
    ("errors", drop_line("| 0x97 | CREDIT_EXCEEDS |")),
    ("errors", drop_line("| 0x35 | REQUEST_ID_REUSED |")),
    ("errors", replace_once("| 0x53 | JOURNAL_CORRUPT | journal |", "| 0x53 | JOURNAL_CORRUPT | nonce |")),
    ("errors", replace_once("| 0x02 | FRAME_OVERSIZE | frame | frame payload is longer",
                            "| 0x02 | FRAME_OVERSIZE | frame | frame payload is shorter")),
    ("messages", replace_once("| 4 | PREPARE |", "| 9 | PREPARE |")),
    ("messages", replace_once("PREPARE (id 4)", "PREPARE (id 5)")),
    ("messages", drop_line("READ_JOURNAL (id 8)")),
    ("fields", drop_line("| 6 | invoice_hash | bytes |")),
    ("fields", replace_once("| 4 | replayed | bool |", "| 5 | replayed | bool |")),
    ("fields", replace_once("| 10 | clock | ?int |", "| 10 | clock | int |")),
    ("fields", replace_once("| 3 | time | int | new time", "| 3 | when | int | new time")),
    ("fields", replace_once("#### STATUS response", "#### STATUS answer")),
    ("fields", add_after("| 3 | data | bytes | 0 to 64 bytes", "| 4 | padding | bytes | invented |")),
    ("fields", replace_once("| 3 | challenge | bytes |", "| 3 | challenge | str |")),
    ("fields", drop_line("| 5 | erased_sectors | int |")),
    ("fields", replace_once("| 6 | first_live | int |", "| 7 | first_live | int |")),
    ("genesis", genesis_flip),
    ("genesis", lambda text: re.sub(r"GENESIS\s*=\s*[0-9a-f]{64}", "GENESIS = (see code)", text)),
    ("taxgroups", replace_once("| TG04 | Reduced VAT | 80000 | 8 % |", "| TG04 | Reduced VAT | 160000 | 16 % |")),
    ("taxgroups", replace_once("| TG04 | Reduced VAT | 80000 | 8 % |", "| TG04 | Reduced VAT | 80000 | 16 % |")),
    ("taxgroups", replace_once("| TG14 | Specific VAT | 160000 | 16 % | 2023-03-03T00:00:00Z |",
                               "| TG14 | Specific VAT | 160000 | 16 % | 2024-01-01T00:00:00Z |")),
    ("taxgroups", drop_line("| TG09 | Packaging deposits |")),
    ("sealed", replace_once("| 3 | auth_code | str |", "| 3 | authcode | str |")),
    ("record", drop_line("| 13 | previous_time | int |")),
    ("record", replace_once("| 16 | totals | list |", "| 14 | totals | list |")),
    ("record", drop_line("| 0 | request_id | bytes |")),
    ("schema", replace_once("| 19 | archived | list |", "| 18 | archived | list |")),
    ("sealed", drop_line("| 11 | previous_hash | bytes |")),
    ("nonce_states", replace_once("| 4 | expired |", "| 4 | expiring |")),
    ("invoice", replace_once("| 2 | nif | str | yes |", "| 2 | nif | str | no |")),
    ("invoice", replace_once("| 3 | quantity | int |", "| 3 | qty | int |")),
    ("invoice", drop_line("| 12 | credit | map |")),
    ("invoice", replace_once("| 2 | reason | str | yes |", "| 2 | reason | str | no |")),
    ("messages", drop_line("| 17 | CLOSE |")),
    ("messages", replace_once("### 4.21 EVIDENCE (id 16)", "### 4.21 EVIDENCE (id 19)")),
    ("fields", replace_once("| 5 | credited | list |", "| 5 | credited | map |")),
    ("fields", drop_line("| 27 | profile_hash | bytes |")),
    ("fields", replace_once("| 7 | last | bool |", "| 7 | final | bool |")),
    ("record", replace_once("| 28 | merkle | bytes |", "| 28 | root | bytes |")),
    ("record", replace_once("| 18 | credit_root | bytes | optional: the device's", "| 18 | root | bytes | optional: the device's")),
    ("schema", drop_line("| 30 | end | bytes |")),
    ("schema", add_after("| 32 | profile | bytes |", "| 33 | extra | bytes | invented |")),
    ("taxgroups", replace_once("| E | Export | 0 | 0 % |", "| E | Export | 160000 | 16 % |")),
    ("taxgroups", drop_line("| P | Reserved |")),
    ("profile_fields", drop_line("| window | array |")),
    ("profile_fields", add_after("| notes | string |", "| colour | string | invented |")),
    ("profile_hashes", lambda text: text.replace(hashlib.sha256(profile_host.load_bytes("drc-dgi")).hexdigest(),
                                                 "0" * 64)),
    ("versions", replace_once("| protocol version | 3 |", "| protocol version | 2 |")),
    ("versions", replace_once("# Fiscal memory device protocol, version 3", "# Fiscal memory device protocol, version 2")),
]


@pytest.mark.parametrize("name,mutate", MUTATIONS, ids=["%s-%d" % (m[0], i) for i, m in enumerate(MUTATIONS)])
def test_mutation_is_detected(doc, name, mutate):
    mutated = mutate(doc)
    assert mutated != doc
    assert CHECKS[name](mutated) != []
