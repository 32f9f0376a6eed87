"""One client script for two servers (interop row 7): run against the facteur
MAA and against Dovecot, each on a fresh account, it does the same IMAP and
POP3 session and writes what the server answered as normalised records, one
JSON object {key: value}, for tests/tests/swap_dovecot.rs to compare.

Normalised: messages are named by their Message-ID (UIDs, sequence numbers and
UIDVALIDITY differ legitimately between servers, so they are mapped to
Message-IDs or reduced to their shape), sets are sorted lists, big byte strings
are their length and SHA-256. Everything else is recorded as the server sent it.

Usage: compare_imap.py --host IP --ca CA --imaps PORT --pop3 PORT --lmtp PORT --out FILE
"""
import argparse
import hashlib
import imaplib
import json
import poplib
import re
import smtplib
import socket
import sys
import time

from common import PASSWORD, tls
from imapwire import ATTACHMENT, ATTACHMENT_NAME, build, fetch_items, internal, parse, pop, raw, simple, utc, with_attachment

p = argparse.ArgumentParser()
p.add_argument("--host", required=True)
p.add_argument("--ca", required=True)
p.add_argument("--imaps", type=int, required=True)
p.add_argument("--pop3", type=int, required=True)
p.add_argument("--lmtp", type=int, required=True)
p.add_argument("--user", default="jacques@paris.test")
p.add_argument("--out", required=True)
a = p.parse_args()

records = {}


def rec(key, value):
    if key in records:
        raise SystemExit(f"record {key} twice")
    records[key] = value


def blob(data):
    """Short byte strings as text, long ones as length and digest."""
    if data is None:
        return None
    if len(data) <= 200:
        return data.decode("latin-1")
    return f"{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:16]}"


def norm(value):
    """Parsed IMAP data as JSON: bytes as text, lists kept."""
    if isinstance(value, list):
        return [norm(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def connect():
    imap = imaplib.IMAP4_SSL(a.host, a.imaps, ssl_context=tls(a.ca), timeout=30)
    typ, _ = imap.login(a.user, PASSWORD)
    if typ != "OK":
        raise SystemExit(f"LOGIN {a.user}: {typ}")
    return imap


def ok(imap, typ, data, what):
    if typ != "OK":
        raise SystemExit(f"{what}: {typ} {data}")


def untagged(imap, typ, data, name):
    _, lines = imap._untagged_response(typ, data, name)
    return [line for line in lines if line is not None]


# ---- the messages: fixed Message-IDs, dates and bytes, so both servers hold the same
def message(n, subject, sender, date, body, to="Jacques <jacques@paris.test>", cc=None, attach=False):
    m = build(subject, sender, to, date, body, cc=cc)
    del m["Message-ID"]
    m["Message-ID"] = f"<m{n}@compare.test>"
    if attach:
        with_attachment(m, ATTACHMENT, ATTACHMENT_NAME)
        m.set_boundary(f"compare-boundary-{n}")
    return raw(m)


# A message that exercises the parsers: encoded words in the From name and Subject,
# Sender, Reply-To, a group in To, In-Reply-To, a preamble and an epilogue, nested
# multipart/alternative (quoted-printable, ISO-8859-1 and UTF-8, Content-Language),
# a message/rfc822 part, and a part with Content-ID, Content-Description and an
# RFC 2047-encoded filename.
COMPLEX = "\r\n".join([
    "From: =?utf-8?q?Fran=C3=A7oise_Dupr=C3=A9?= <francoise@example.fr>",
    "Sender: secretary@example.fr",
    "Reply-To: team@example.fr",
    "To: undisclosed-recipients:;",
    "Cc: \"Jacques, J.\" <jacques@paris.test>, eve@example.org",
    "Subject: =?utf-8?b?UsOpc3Vtw6kgZGUgbGEgc2VtYWluZQ==?=",
    "Date: Sun, 05 May 2024 09:30:00 +0200",
    "Message-ID: <m7@compare.test>",
    "In-Reply-To: <m1@compare.test>",
    "MIME-Version: 1.0",
    "Content-Type: multipart/mixed; boundary=\"outer\"",
    "",
    "This is the preamble.",
    "--outer",
    "Content-Type: multipart/alternative; boundary=alt",
    "",
    "--alt",
    "Content-Type: text/plain; charset=iso-8859-1",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "R=E9sum=E9 de la semaine, avec une ligne tr=",
    "=E8s longue.",
    "--alt",
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "Content-Language: fr",
    "",
    "<p>R=C3=A9sum=C3=A9 de la semaine.</p>",
    "--alt--",
    "--outer",
    "Content-Type: message/rfc822",
    "Content-Disposition: inline",
    "",
    "From: bob@example.net",
    "To: alice@example.org",
    "Subject: forwarded",
    "Date: Mon, 06 May 2024 08:00:00 +0000",
    "Message-ID: <inner@compare.test>",
    "",
    "The forwarded text.",
    "--outer",
    "Content-Type: text/plain; name=\"=?utf-8?q?r=C3=A9sum=C3=A9.txt?=\"",
    "Content-Disposition: attachment; filename=\"=?utf-8?q?r=C3=A9sum=C3=A9.txt?=\"",
    "Content-Description: a note",
    "Content-ID: <note@compare.test>",
    "",
    "note",
    "--outer--",
    "This is the epilogue.",
    "",
]).encode()

MESSAGES = {
    "m1": (message(1, "Quarterly report", "Alice Martin <alice@example.org>", utc(2024, 1, 10),
                   "The numbers are up this quarter.\n"), utc(2024, 1, 10), ["\\Seen"]),
    "m2": (message(2, "CV attached", "Bob <bob@example.net>", utc(2024, 2, 15),
                   "Please find my CV attached.\n", cc="alice@example.org", attach=True), utc(2024, 2, 15), []),
    "m3": (message(3, "Réunion lundi", "Alice Martin <alice@example.org>", utc(2024, 3, 1),
                   "On se voit lundi à 10 h ?\n"), utc(2024, 3, 1), ["\\Seen", "\\Answered"]),
    "m4": (message(4, "lunch?", "carol@example.com", utc(2024, 3, 20),
                   "Lunch at noon, the usual place.\n" + "filler line for size\n" * 60), utc(2024, 3, 20), []),
    "m5": (message(5, "Draft of the plan", "Jacques <jacques@paris.test>", utc(2024, 4, 2),
                   "Step one: write the plan.\n"), utc(2024, 4, 2), ["\\Draft"]),
    "m7": (COMPLEX, utc(2024, 5, 5), []),
}

imap = connect()

# ---- capabilities the script relies on (and IMAP4rev2)
typ, data = imap.capability()
caps = set(data[0].decode().upper().split())
for cap in ["IMAP4REV1", "IMAP4REV2", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "NAMESPACE", "ENABLE",
            "CONDSTORE", "QRESYNC", "ID", "UNSELECT", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH",
            "BINARY", "LITERAL+", "SASL-IR"]:
    rec(f"capability {cap}", cap in caps)


# ---- folders
def listing(*cmd):
    """{name: sorted attributes} of a LIST/LSUB, plus the delimiters seen."""
    typ, data = simple(imap, *cmd)
    out, delims = {}, set()
    if typ != "OK":
        return typ, {}, []
    for line in untagged(imap, typ, data, cmd[0]):
        if isinstance(line, tuple):
            line = line[0] + b"\r\n" + line[1]
        attrs, delim, name = parse(b"(" + line + b")")[:3]
        out[name.decode()] = sorted(x.decode().lower() for x in attrs)
        delims.add(norm(delim))
    return typ, out, sorted(delims, key=str)


def record_list(key, *cmd):
    typ, names, delims = listing(*cmd)
    rec(key, {"status": typ, "mailboxes": names, "delimiters": delims})


record_list("LIST \"\" \"*\" at first login", "LIST", '""', '"*"')
record_list("LIST RETURN (SPECIAL-USE)", "LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")
record_list("LIST (SPECIAL-USE)", "LIST", "(SPECIAL-USE)", '""', '"*"')
record_list("LSUB at first login", "LSUB", '""', '"*"')
record_list("LIST \"\" \"\"", "LIST", '""', '""')
typ, data = simple(imap, "NAMESPACE")
rec("NAMESPACE", norm(parse(b"(" + pop(imap, "NAMESPACE")[0] + b")")) if typ == "OK" else typ)

rec("CREATE Projects/facteur", imap.create("Projects/facteur")[0])
rec("CREATE Projects/facteur again", imap.create("Projects/facteur")[0])
rec("CREATE Notes", imap.create("Notes")[0])
record_list("LIST after CREATE Projects/facteur", "LIST", '""', '"Projects*"')
record_list("LIST Projects/%", "LIST", '""', '"Projects/%"')
rec("RENAME Projects/facteur Projects/mail", imap.rename("Projects/facteur", "Projects/mail")[0])
record_list("LIST after RENAME", "LIST", '""', '"Projects*"')
rec("RENAME to an existing name", imap.rename("Projects/mail", "Notes")[0])
rec("RENAME a missing folder", imap.rename("Nowhere", "Elsewhere")[0])
rec("DELETE Projects/mail", imap.delete("Projects/mail")[0])
rec("DELETE Projects", imap.delete("Projects")[0])
rec("DELETE Notes", imap.delete("Notes")[0])
rec("DELETE a missing folder", imap.delete("Nowhere")[0])
rec("DELETE INBOX", imap.delete("INBOX")[0])
record_list("LIST after DELETE", "LIST", '""', '"Projects*"')
# a non-ASCII name in modified UTF-7 (RFC 3501 §5.1.3)
rec("CREATE &AMk-t&AOk-", imap.create("&AMk-t&AOk-")[0])
rec("SUBSCRIBE &AMk-t&AOk-", imap.subscribe("&AMk-t&AOk-")[0])
record_list("LSUB after SUBSCRIBE", "LSUB", '""', '"*"')
rec("UNSUBSCRIBE &AMk-t&AOk-", imap.unsubscribe("&AMk-t&AOk-")[0])
record_list("LIST (SUBSCRIBED) after UNSUBSCRIBE", "LIST", "(SUBSCRIBED)", '""', '"*"')
record_list("LIST RETURN (CHILDREN) %", "LIST", '""', '"%"', "RETURN", "(CHILDREN)")

# ---- APPEND with APPENDUID (RFC 4315): the shape, checked against STATUS
typ, data = imap.status("INBOX", "(UIDNEXT UIDVALIDITY MESSAGES)")
st = parse(b"(" + data[0].split(b" (", 1)[1])
inbox_status = dict(zip([x.decode() for x in st[::2]], [int(x) for x in st[1::2]]))
rec("STATUS INBOX fresh MESSAGES", inbox_status["MESSAGES"])
uid_of = {}
appended = []
for key, (data, date, flags) in MESSAGES.items():
    pop(imap, "APPENDUID")
    typ, resp = imap.append("INBOX", f"({' '.join(flags)})" if flags else None, internal(date), data)
    code = pop(imap, "APPENDUID")
    parts = code[0].split() if code else []
    shape = None
    if len(parts) == 2:
        validity, uid = int(parts[0]), int(parts[1])
        uid_of[key] = uid
        shape = {"validity is INBOX's": validity == inbox_status["UIDVALIDITY"]}
        appended.append(uid)
    rec(f"APPEND {key}", {"status": typ, "APPENDUID": shape})
rec("APPENDUIDs ascend from UIDNEXT", appended == sorted(appended) and appended[:1] == [inbox_status["UIDNEXT"]])

# ---- SELECT
pop(imap, "FLAGS")
pop(imap, "PERMANENTFLAGS")
typ, data = imap.select("INBOX")
rec("SELECT INBOX EXISTS", int(data[0]))
flags = pop(imap, "FLAGS")
rec("SELECT INBOX FLAGS", sorted(x.decode() for x in parse(flags[0])) if flags else None)
perm = pop(imap, "PERMANENTFLAGS")
rec("SELECT INBOX PERMANENTFLAGS", sorted(x.decode() for x in parse(perm[0])) if perm else None)
uidnext = pop(imap, "UIDNEXT")
rec("SELECT INBOX UIDNEXT is past the APPENDUIDs", bool(uidnext) and int(uidnext[0]) == max(appended, default=0) + 1)


def msgids(uids):
    """Message-IDs of UIDs in the selected mailbox, sorted."""
    if not uids:
        return []
    typ, data = imap.uid("FETCH", ",".join(str(u) for u in uids), "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = []
    for items in fetch_items(data).values():
        v = next(v for k, v in items.items() if k.startswith("BODY["))
        out.append(v.decode().split(":", 1)[1].strip())
    return sorted(out)


def by_id():
    """{Message-ID: UID} in the selected mailbox."""
    typ, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    out = {}
    for items in fetch_items(data).values():
        v = next(v for k, v in items.items() if k.startswith("BODY["))
        out[v.decode().split(":", 1)[1].strip()] = int(items["UID"])
    return out


def flags_of():
    """{Message-ID: sorted flags} in the selected mailbox (\\Recent kept apart)."""
    ids = {u: m for m, u in by_id().items()}
    typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS)")
    out = {}
    for items in fetch_items(data).values():
        out[ids[int(items["UID"])]] = sorted(x.decode() for x in items["FLAGS"] if x.lower() != b"\\recent")
    return out


def has_recent():
    typ, data = imap.fetch("1:*", "(FLAGS)")
    return any(b"\\Recent" in items["FLAGS"] for items in fetch_items(data).values())


rec("flags after APPEND", flags_of())
rec("\\Recent flag on new messages", has_recent())
ids = by_id()
uid = {key: ids[f"<{key}@compare.test>"] for key in MESSAGES}
rec("UID FETCH by Message-ID matches APPENDUID", all(uid[k] == uid_of.get(k) for k in uid))

# ---- FETCH: sizes, dates, envelope, structure, parts
def media_lower(body):
    """A BODY/BODYSTRUCTURE with its media types and subtypes in lower case
    (they are case-insensitive, RFC 2045 §5.1; the case sent is recorded apart)."""
    if not isinstance(body, list) or not body:
        return body
    if isinstance(body[0], list):  # multipart: parts, then the subtype
        n = next((i for i, x in enumerate(body) if not isinstance(x, list)), len(body))
        return [media_lower(x) for x in body[:n]] + ([body[n].lower()] if n < len(body) else []) + body[n + 1:]
    out = [x.lower() if i < 2 and isinstance(x, str) else x for i, x in enumerate(body)]
    if out[:2] == ["message", "rfc822"] and len(out) > 8:
        out[8] = media_lower(out[8])
    return out


for key in uid:
    typ, data = imap.uid("FETCH", str(uid[key]), "(RFC822.SIZE INTERNALDATE ENVELOPE BODY BODYSTRUCTURE)")
    items = list(fetch_items(data).values())[0]
    rec(f"FETCH {key} RFC822.SIZE", int(items["RFC822.SIZE"]))
    rec(f"FETCH {key} RFC822.SIZE is the APPENDed length", int(items["RFC822.SIZE"]) == len(MESSAGES[key][0]))
    rec(f"FETCH {key} INTERNALDATE", norm(items["INTERNALDATE"]))
    rec(f"FETCH {key} ENVELOPE", norm(items["ENVELOPE"]))
    if key == "m1":
        rec("FETCH m1 BODY media type as sent", norm(items["BODY"][:2]))
    rec(f"FETCH {key} BODY", media_lower(norm(items["BODY"])))
    rec(f"FETCH {key} BODYSTRUCTURE", media_lower(norm(items["BODYSTRUCTURE"])))

sections = ["BODY.PEEK[1]", "BODY.PEEK[2]", "BODY.PEEK[2.MIME]", "BODY.PEEK[1.MIME]", "BODY.PEEK[HEADER]",
            "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]", "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM DATE)]",
            "BODY.PEEK[TEXT]", "BODY.PEEK[]", "BODY.PEEK[]<0.40>", "BODY.PEEK[2]<10.30>", "BINARY.PEEK[2]",
            "BINARY.SIZE[2]", "BODY.PEEK[3]", "RFC822.HEADER"]
for section in sections:
    typ, data = imap.uid("FETCH", str(uid["m2"]), f"({section})")
    if typ != "OK":
        rec(f"FETCH m2 {section}", typ)
        continue
    items = list(fetch_items(data).values())[0]
    items.pop("UID", None)
    rec(f"FETCH m2 {section}", {k: blob(v) if isinstance(v, bytes) else norm(v) for k, v in items.items()})
rec("BINARY.PEEK[2] is the attachment", list(fetch_items(imap.uid("FETCH", str(uid["m2"]), "(BINARY.PEEK[2])")[1]).values())[0]
    .get("BINARY[2]") == ATTACHMENT)
for section in ["BODY.PEEK[1]", "BODY.PEEK[TEXT]", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]:
    typ, data = imap.uid("FETCH", str(uid["m3"]), f"({section})")
    items = list(fetch_items(data).values())[0]
    items.pop("UID", None)
    rec(f"FETCH m3 {section}", {k: blob(v) for k, v in items.items()})
for section in ["BODY.PEEK[1]", "BODY.PEEK[1.1]", "BODY.PEEK[1.2]", "BODY.PEEK[1.MIME]", "BODY.PEEK[1.1.MIME]",
                "BODY.PEEK[2]", "BODY.PEEK[2.MIME]", "BODY.PEEK[2.HEADER]", "BODY.PEEK[2.TEXT]", "BODY.PEEK[2.1]",
                "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]", "BODY.PEEK[3]", "BODY.PEEK[3.MIME]", "BODY.PEEK[TEXT]",
                "BINARY.PEEK[1.1]", "BINARY.PEEK[1.2]", "BINARY.SIZE[1.1]", "BINARY.PEEK[3]"]:
    typ, data = imap.uid("FETCH", str(uid["m7"]), f"({section})")
    if typ != "OK":
        rec(f"FETCH m7 {section}", typ)
        continue
    items = list(fetch_items(data).values())[0]
    items.pop("UID", None)
    rec(f"FETCH m7 {section}", {k: blob(v) if isinstance(v, bytes) else norm(v) for k, v in items.items()})
# a non-peek fetch sets \Seen
imap.uid("FETCH", str(uid["m4"]), "(BODY[TEXT])")
rec("flags after FETCH BODY[TEXT] of m4", flags_of()["<m4@compare.test>"])
imap.uid("STORE", str(uid["m4"]), "-FLAGS.SILENT", "(\\Seen)")


# ---- flags and keywords
def store(what, op, flags, label):
    typ, data = imap.uid("STORE", what, op, flags)
    answers = {}
    ids = {u: m for m, u in by_id().items()}
    for items in fetch_items([d for d in data if d is not None]).values():
        if "FLAGS" in items and "UID" in items:
            answers[ids[int(items["UID"])]] = sorted(x.decode() for x in items["FLAGS"] if x.lower() != b"\\recent")
        elif "FLAGS" in items:
            answers["(no UID)"] = sorted(x.decode() for x in items["FLAGS"] if x.lower() != b"\\recent")
    rec(f"STORE {label}", {"status": typ, "answers": answers})


store(str(uid["m1"]), "+FLAGS", "(\\Flagged)", "m1 +FLAGS (\\Flagged)")
store(str(uid["m2"]), "+FLAGS", "($Work Urgent)", "m2 +FLAGS ($Work Urgent)")
store(str(uid["m3"]), "-FLAGS", "(\\Seen)", "m3 -FLAGS (\\Seen)")
store(str(uid["m5"]), "FLAGS", "(\\Seen \\Draft $Later)", "m5 FLAGS (\\Seen \\Draft $Later)")
store(str(uid["m4"]), "+FLAGS.SILENT", "(\\Flagged)", "m4 +FLAGS.SILENT (\\Flagged)")
store(str(uid["m2"]), "-FLAGS", "(Urgent)", "m2 -FLAGS (Urgent)")
rec("flags after STORE", flags_of())
imap.close()
pop(imap, "FLAGS")
pop(imap, "PERMANENTFLAGS")
imap.select("INBOX")
flags = pop(imap, "FLAGS")
rec("FLAGS after keywords", sorted(x.decode() for x in parse(flags[0])) if flags else None)
perm = pop(imap, "PERMANENTFLAGS")
rec("PERMANENTFLAGS after keywords", sorted(x.decode() for x in parse(perm[0])) if perm else None)


# ---- SEARCH, answers as sets of Message-IDs
def search(*criteria, charset=None):
    typ, data = imap.uid("SEARCH", *criteria) if charset is None else imap.uid("SEARCH", "CHARSET", charset, *criteria)
    if typ != "OK":
        return typ
    return msgids([int(x) for x in b" ".join(d for d in data if d).split()])


for criteria in [
    ("ALL",), ("SUBJECT", "report"), ("SUBJECT", "REPORT"), ("FROM", "alice"), ("FROM", "Martin"), ("TO", "jacques"),
    ("CC", "alice"), ("BODY", "lundi"), ("BODY", "numbers"), ("TEXT", "Bob"), ("TEXT", "noon"), ("UNSEEN",), ("SEEN",),
    ("FLAGGED",), ("UNFLAGGED",), ("ANSWERED",), ("DRAFT",), ("KEYWORD", "$Work"), ("UNKEYWORD", "$Work"),
    ("SINCE", "1-Mar-2024"), ("BEFORE", "1-Mar-2024"), ("ON", "15-Feb-2024"), ("SENTSINCE", "1-Mar-2024"),
    ("SENTBEFORE", "15-Feb-2024"), ("LARGER", "2000"), ("SMALLER", "1000"), ("OR", "SUBJECT", "lunch", "FROM", "bob"),
    ("NOT", "FROM", "alice"), ("NOT", "SEEN", "NOT", "DRAFT"), ("HEADER", "Message-ID", "m3@compare"),
    ("HEADER", "X-Missing", "\"\""), ("SUBJECT", "nothing-like-this"), ("UID", f"{uid['m2']}:{uid['m4']}"),
    ("1:2",), ("OR", "OR", "FLAGGED", "DRAFT", "KEYWORD", "$Later"), ("NEW",), ("OLD",), ("RECENT",),
    ("FROM", "francoise"), ("CC", "Jacques"), ("TO", "undisclosed"), ("HEADER", "In-Reply-To", "m1@compare"),
    ("BODY", "forwarded"), ("BODY", "preamble"), ("TEXT", "secretary"), ("SUBJECT", "semaine"), ("*",),
    ("SENTON", "5-May-2024"), ("UNDRAFT", "UNANSWERED"),
]:
    rec(f"SEARCH {' '.join(criteria)}", search(*criteria))
imap.literal = "Réunion".encode()
rec("SEARCH CHARSET UTF-8 SUBJECT Réunion (literal)", search("SUBJECT", charset="UTF-8"))
imap.literal = "à 10".encode()
rec("SEARCH CHARSET UTF-8 BODY à 10 (literal)", search("BODY", charset="UTF-8"))
imap.literal = "Résumé".encode()
rec("SEARCH CHARSET UTF-8 SUBJECT Résumé (literal)", search("SUBJECT", charset="UTF-8"))
imap.literal = "Françoise".encode()
rec("SEARCH CHARSET UTF-8 FROM Françoise (literal)", search("FROM", charset="UTF-8"))
imap.literal = "tr\u00e8s longue".encode()
rec("SEARCH CHARSET UTF-8 BODY très longue (quoted-printable, literal)", search("BODY", charset="UTF-8"))
rec("SEARCH CHARSET KOI8-Q", search("SUBJECT", "x", charset="X-NO-SUCH-CHARSET"))
typ, data = simple(imap, "UID", "SEARCH", "RETURN", "(MIN MAX COUNT)", "FROM", "alice")
es = pop(imap, "ESEARCH")
if es:
    items = parse(b"(" + es[0] + b")")
    d = {items[i].decode().upper(): items[i + 1] for i in range(0, len(items) - 1) if isinstance(items[i], bytes)
         and items[i].decode().upper() in ("MIN", "MAX", "COUNT")}
    inv = {u: m for m, u in by_id().items()}
    rec("ESEARCH MIN MAX COUNT FROM alice", {"MIN": inv.get(int(d.get("MIN", 0))), "MAX": inv.get(int(d.get("MAX", 0))),
                                              "COUNT": int(d.get("COUNT", -1)), "UID": b"UID" in es[0]})
else:
    rec("ESEARCH MIN MAX COUNT FROM alice", typ)

# ---- COPY with COPYUID, MOVE, STATUS, EXPUNGE
typ, data = imap.status("Archive", "(UIDVALIDITY UIDNEXT)")
st = parse(b"(" + data[0].split(b" (", 1)[1])
archive = dict(zip([x.decode() for x in st[::2]], [int(x) for x in st[1::2]]))
pop(imap, "COPYUID")
typ, data = imap.uid("COPY", f"{uid['m1']},{uid['m3']}", "Archive")
code = pop(imap, "COPYUID")
shape = None
if code:
    v, src, dst = code[0].split()
    shape = {"validity is Archive's": int(v) == archive["UIDVALIDITY"],
             "source set": sorted(int(x) for x in re.split(rb"[,:]", src)) == sorted([uid["m1"], uid["m3"]]),
             "destination starts at UIDNEXT": int(re.split(rb"[,:]", dst)[0]) == archive["UIDNEXT"]}
rec("UID COPY m1,m3 Archive", {"status": typ, "COPYUID": shape})
typ, data = imap.status("Archive", "(MESSAGES UNSEEN)")
rec("STATUS Archive after COPY", norm(parse(b"(" + data[0].split(b" (", 1)[1])))
rec("UID COPY to a missing folder", imap.uid("COPY", str(uid["m1"]), "Nowhere")[0])
rec("TRYCREATE on COPY to a missing folder", bool(pop(imap, "TRYCREATE")))

typ, data = imap.status("Trash", "(UIDVALIDITY UIDNEXT)")
st = parse(b"(" + data[0].split(b" (", 1)[1])
trash = dict(zip([x.decode() for x in st[::2]], [int(x) for x in st[1::2]]))
pop(imap, "COPYUID")
pop(imap, "EXPUNGE")
typ, data = imap.uid("MOVE", str(uid["m4"]), "Trash")
code = pop(imap, "COPYUID")
expunged = pop(imap, "EXPUNGE")
shape = None
if code:
    v, src, dst = code[0].split()
    shape = {"validity is Trash's": int(v) == trash["UIDVALIDITY"], "source": int(src) == uid["m4"],
             "destination is UIDNEXT": int(dst) == trash["UIDNEXT"]}
rec("UID MOVE m4 Trash", {"status": typ, "COPYUID": shape, "EXPUNGE": [int(x) for x in expunged]})
rec("INBOX after MOVE", sorted(by_id()))

store(str(uid["m5"]), "+FLAGS.SILENT", "(\\Deleted)", "m5 +FLAGS.SILENT (\\Deleted)")
pop(imap, "EXPUNGE")
typ, data = imap.expunge()
rec("EXPUNGE", {"status": typ, "EXPUNGE": [int(x) for x in data if x is not None]})
rec("INBOX after EXPUNGE", sorted(by_id()))

for folder, flag_note in [("Archive", "copied flags"), ("Trash", "moved flags")]:
    imap.select(folder, readonly=True)
    rec(f"{folder} after COPY/MOVE ({flag_note})", flags_of())
imap.logout()

# ---- POP3 (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS): INBOX as a maildrop
pop3 = poplib.POP3(a.host, a.pop3, timeout=30)
rec("POP3 greeting is +OK", pop3.getwelcome().startswith(b"+OK"))
STANDARD_CAPA = ("STLS", "UIDL", "TOP", "USER", "SASL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "UTF8", "EXPIRE",
                 "LOGIN-DELAY")
rec("POP3 CAPA before STLS", {k: v for k, v in pop3.capa().items() if k in STANDARD_CAPA})
pop3.stls(context=tls(a.ca))
rec("POP3 CAPA after STLS", {k: v for k, v in pop3.capa().items() if k in STANDARD_CAPA})
pop3.user(a.user)
pop3.pass_(PASSWORD)
count, size = pop3.stat()
rec("POP3 STAT", [count, size])
_, listing_, _ = pop3.list()
sizes = {int(n): int(s) for n, s in (line.split() for line in listing_)}
_, uidls, _ = pop3.uidl()
uidl = {int(n): u for n, u in (line.split() for line in uidls)}
rec("POP3 UIDL shape", {"one per message": sorted(uidl) == sorted(sizes), "unique": len(set(uidl.values())) == len(uidl),
                        "1-70 chars 0x21-0x7E": all(1 <= len(u) <= 70 and all(0x21 <= c <= 0x7E for c in u)
                                                    for u in uidl.values())})
retrieved = {}
for n in sorted(sizes):
    _, lines, octets = pop3.retr(n)
    body = b"\r\n".join(lines) + b"\r\n"
    mid = re.search(rb"(?im)^message-id:\s*(\S+)", body).group(1).decode()
    retrieved[n] = mid
    original = next(v[0] for k, v in MESSAGES.items() if f"<{k}@compare.test>" == mid)
    rec(f"POP3 RETR {mid}", {"bytes are the APPENDed ones": body == original, "LIST size": sizes[n],
                             "LIST size is the length": sizes[n] == len(original)})
rec("POP3 maildrop order", [retrieved[n] for n in sorted(retrieved)])
_, lines, _ = pop3.top(1, 0)
rec("POP3 TOP 1 0", blob(b"\r\n".join(lines)))
_, lines, _ = pop3.top(1, 2)
rec("POP3 TOP 1 2 lines of body", blob(b"\r\n".join(lines).split(b"\r\n\r\n", 1)[1]))
rec("POP3 DELE 1", pop3.dele(1)[:3].decode())
try:
    pop3.retr(1)
    rec("POP3 RETR of a deleted message", "+OK")
except poplib.error_proto as e:
    rec("POP3 RETR of a deleted message", e.args[0][:4].decode())
rec("POP3 STAT after DELE", list(pop3.stat()))
rec("POP3 RSET", pop3.rset()[:3].decode())
rec("POP3 STAT after RSET", list(pop3.stat()))
pop3.dele(1)
pop3.quit()
pop3 = poplib.POP3(a.host, a.pop3, timeout=30)
pop3.stls(context=tls(a.ca))
pop3.user(a.user)
pop3.pass_(PASSWORD)
_, uidls2, _ = pop3.uidl()
rec("POP3 after QUIT: the deleted one is gone, UIDLs kept",
    {"count": len(uidls2), "UIDLs are the old ones minus the first":
     sorted(x.split()[1] for x in uidls2) == sorted(u for n, u in uidl.items() if n != 1)})
try:
    pop3.user("x")
    rec("POP3 USER in TRANSACTION state", "+OK")
except poplib.error_proto as e:
    rec("POP3 USER in TRANSACTION state", e.args[0][:4].decode())
pop3.quit()
bad = poplib.POP3(a.host, a.pop3, timeout=30)
bad.stls(context=tls(a.ca))
bad.user(a.user)
try:
    bad.pass_("wrong password")
    rec("POP3 PASS with a wrong password", "+OK")
except poplib.error_proto as e:
    rec("POP3 PASS with a wrong password", e.args[0][:4].decode())
bad.close()

# ---- IDLE (RFC 2177): a delivery over LMTP during IDLE is announced with EXISTS
imap = connect()
typ, data = imap.select("INBOX")
before = int(data[0])
tag = imap._new_tag()
imap.send(tag + b" IDLE\r\n")
cont = imap.readline()
rec("IDLE continuation", cont[:1].decode())
lmtp = smtplib.LMTP(a.host, a.lmtp)
delivered = message(6, "Delivered during IDLE", "dave@example.org", utc(2024, 5, 1), "Fresh mail.\n")
refused = lmtp.sendmail("dave@example.org", [a.user], delivered)
lmtp.quit()
rec("LMTP delivery refused recipients", sorted(refused))
seen = []
imap.sock.settimeout(30)
while True:
    line = imap.readline()
    seen.append(line.strip())
    if re.match(rb"\* \d+ EXISTS", line):
        break
rec("EXISTS during IDLE", int(re.match(rb"\* (\d+) EXISTS", seen[-1]).group(1)) - before)


def idle_until(pattern):
    """Read untagged lines during IDLE until one matches `pattern`; that line."""
    while True:
        line = imap.readline()
        if re.match(pattern, line):
            return line.strip()


# another session flags the new message, then expunges m2: IDLE hears both
other = connect()
other.select("INBOX")
typ, data = other.uid("SEARCH", "HEADER", "Message-ID", "m6@compare")
m6 = data[0].split()[-1].decode()
typ, data = other.uid("SEARCH", "HEADER", "Message-ID", "m2@compare")
m2 = data[0].split()[-1].decode()
typ, data = other.uid("STORE", m6, "+FLAGS.SILENT", "(\\Flagged)")
line = idle_until(rb"\* \d+ FETCH ")
flags = re.search(rb"FLAGS \(([^)]*)\)", line)
rec("IDLE hears another session's STORE", {
    "is the new message": int(line.split()[1]) == before + 1,
    "flags": sorted(x.decode() for x in flags.group(1).split() if x.lower() != b"\\recent") if flags else None})
other.uid("STORE", m2, "+FLAGS.SILENT", "(\\Deleted)")
other.expunge()
other.logout()
line = idle_until(rb"\* \d+ (EXPUNGE|FETCH)")
while b"EXPUNGE" not in line:  # the \Deleted flag change may come first
    line = idle_until(rb"\* \d+ (EXPUNGE|FETCH)")
rec("IDLE hears another session's EXPUNGE of m2", int(line.split()[1]))
imap.send(b"DONE\r\n")
while True:
    line = imap.readline()
    if line.startswith(tag):
        rec("IDLE DONE", line.split()[1].decode())
        break
rec("INBOX after the delivery", sorted(by_id()))
typ, data = imap.uid("FETCH", str(by_id()["<m6@compare.test>"]), "(BODY.PEEK[TEXT] ENVELOPE)")
items = list(fetch_items(data).values())[0]
rec("the delivered message's text", blob(items["BODY[TEXT]"]))
rec("the delivered message's envelope", norm(items["ENVELOPE"]))
imap.logout()

with open(a.out, "w") as f:
    json.dump(records, f, indent=1, sort_keys=True, ensure_ascii=False)
print(f"{len(records)} records written to {a.out}")
