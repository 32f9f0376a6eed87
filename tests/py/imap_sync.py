"""IMAP as a syncing client sees it, driven with Python's imaplib over IMAPS
(dev CA) as jacques@paris.test on a fresh stack: the capabilities, the
special-use folders made at first login, nested folders (CREATE, RENAME,
DELETE, SUBSCRIBE, LSUB, LIST-EXTENDED, LIST-STATUS), APPEND with APPENDUID,
every SEARCH key and ESEARCH, FETCH of parts (sections, partials, BINARY,
ENVELOPE, BODYSTRUCTURE), flags and keywords, COPY and MOVE with COPYUID,
CONDSTORE (UNCHANGEDSINCE, CHANGEDSINCE) and QRESYNC resync. Stops at the first
thing a client would see wrong."""
import email
import imaplib
import re
from datetime import datetime
from email import policy
from urllib.parse import unquote

from common import args, check
from imapwire import (ATTACHMENT, ATTACHMENT_NAME, build, capabilities, connect, fetch, fetch_items,
                      parse, pop, raw, seqset, simple, utc, with_attachment)

a = args()
imap = connect(a.paris, a.ca)

# ---- capabilities
caps = capabilities(imap)
for cap in ["IMAP4REV1", "IMAP4REV2", "IDLE", "UIDPLUS", "MOVE", "SPECIAL-USE", "NAMESPACE", "ENABLE",
            "CONDSTORE", "QRESYNC", "ID", "UNSELECT", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "ESEARCH"]:
    check(cap in caps, f"CAPABILITY advertises {cap} ({' '.join(sorted(caps))})")
check("LITERAL+" in caps or "LITERAL-" in caps, "CAPABILITY advertises LITERAL+ or LITERAL-")


# ---- folders
def listing(*cmd):
    """{name: (attributes, delimiter)} from LIST/LSUB `cmd`; also the STATUS lines."""
    typ, data = simple(imap, *cmd)
    check(typ == "OK", f"{' '.join(cmd)}: {typ} {data}")
    name = cmd[0]
    _, lines = imap._untagged_response(typ, data, name)
    out = {}
    for line in lines:
        if line is None:
            continue
        if isinstance(line, tuple):  # a name sent as a literal
            line = line[0] + b"\r\n" + line[1]
        attrs, delim, mbox = parse(b"(" + line + b")")[:3]
        attrs = {x.decode().lower() for x in attrs}
        out[mbox.decode()] = (attrs, delim)
    return out


everything = listing("LIST", '""', '"*"')
special = {"Sent": "\\sent", "Drafts": "\\drafts", "Trash": "\\trash", "Junk": "\\junk", "Archive": "\\archive"}
for name in ["INBOX", *special]:
    check(name in everything, f"LIST \"\" \"*\" shows {name} at first login: {sorted(everything)}")
check(everything["INBOX"][1] == b"/", f"the hierarchy delimiter is \"/\": {everything['INBOX']}")
root = listing("LIST", '""', '""')
check(list(root.values())[0][1] == b"/" if root else False, f"LIST \"\" \"\" gives the delimiter: {root}")

returned = listing("LIST", '""', '"*"', "RETURN", "(SPECIAL-USE)")
for name, role in special.items():
    check(role in returned[name][0], f"RETURN (SPECIAL-USE): {name} has {role}: {returned[name][0]}")
check(not returned["INBOX"][0] & set(special.values()), "INBOX has no special-use attribute")
selected = listing("LIST", "(SPECIAL-USE)", '""', '"*"')
check(set(selected) == set(special), f"LIST (SPECIAL-USE) lists exactly the five roles: {sorted(selected)}")
for name, role in special.items():
    check(role in selected[name][0], f"LIST (SPECIAL-USE): {name} has {role}")

typ, data = simple(imap, "NAMESPACE")
ns = pop(imap, "NAMESPACE")
check(typ == "OK" and ns and b'"/"' in ns[0], f"NAMESPACE gives a personal namespace with \"/\": {ns}")

check(imap.create("Projects/facteur")[0] == "OK", "CREATE Projects/facteur (nested)")
check(imap.create("Projects/facteur")[0] == "NO", "CREATE of an existing folder is NO")
tree = listing("LIST", '""', '"Projects*"')
check("Projects" in tree and "Projects/facteur" in tree, f"CREATE a/b makes a and a/b: {sorted(tree)}")
check("\\haschildren" in tree["Projects"][0], f"Projects \\HasChildren: {tree['Projects'][0]}")
check("\\hasnochildren" in tree["Projects/facteur"][0], f"Projects/facteur \\HasNoChildren: {tree['Projects/facteur'][0]}")
check(set(listing("LIST", '""', '"Projects/%"')) == {"Projects/facteur"}, "% matches one level only")
check(imap.rename("Projects/facteur", "Projects/mail")[0] == "OK", "RENAME Projects/facteur Projects/mail")
tree = listing("LIST", '""', '"Projects*"')
check(set(tree) == {"Projects", "Projects/mail"}, f"after RENAME: {sorted(tree)}")
check(imap.rename("Projects", "Work")[0] == "OK", "RENAME Projects Work (a parent)")
tree = listing("LIST", '""', '"*"')
check("Work/mail" in tree and not any(n.startswith("Projects") for n in tree),
      f"RENAME of a parent moves its children: {sorted(tree)}")
# A non-ASCII name in modified UTF-7 (an IMAP4rev1 client): "Reçus".
check(imap.create("Re&AOc-us")[0] == "OK", "CREATE Re&AOc-us (modified UTF-7 for Reçus)")
check("Re&AOc-us" in listing("LIST", '""', '"*"'), "LIST shows Re&AOc-us")

check(imap.subscribe("Work/mail")[0] == "OK", "SUBSCRIBE Work/mail")
check("Work/mail" in listing("LSUB", '""', '"*"'), "LSUB shows Work/mail")
subs = listing("LIST", "(SUBSCRIBED)", '""', '"*"')
check("Work/mail" in subs and "\\subscribed" in subs["Work/mail"][0],
      f"LIST (SUBSCRIBED) shows Work/mail \\Subscribed: {subs.get('Work/mail')}")
check("Work" not in subs, f"LIST (SUBSCRIBED) leaves out the unsubscribed parent: {sorted(subs)}")
check(imap.unsubscribe("Work/mail")[0] == "OK", "UNSUBSCRIBE Work/mail")
check("Work/mail" not in listing("LSUB", '""', '"*"'), "LSUB no longer shows Work/mail")

check(imap.delete("Work/mail")[0] == "OK", "DELETE Work/mail")
check(imap.delete("Work")[0] == "OK", "DELETE Work")
check(imap.delete("Re&AOc-us")[0] == "OK", "DELETE Re&AOc-us")
tree = listing("LIST", '""', '"*"')
check(not any(n.startswith("Work") or n.startswith("Re&") for n in tree), f"deleted folders are gone: {sorted(tree)}")
check(imap.delete("INBOX")[0] == "NO", "DELETE INBOX is NO")
check(imap.select("Nowhere")[0] == "NO", "SELECT of a missing folder is NO")

# ---- APPEND with APPENDUID
MESSAGES = [
    # (message, flags, internal date); the Date: headers are a month before the
    # internal dates so SENT* and the internal-date keys find different things.
    (build("hello world", "Alice <alice@example.org>", "jacques@paris.test", utc(2024, 1, 1),
           "first body needle-one\n", cc="Carol <carol@example.net>"),
     r"(\Seen \Answered)", utc(2024, 2, 1)),
    (with_attachment(build("Café au lait", "Bob <bob@example.org>", "Jacques <jacques@paris.test>",
                           utc(2024, 3, 15), "second body\n", bcc="dave@example.com")),
     r"(\Flagged)", utc(2024, 4, 15)),
    (build("draft note", "jacques@paris.test", "erin@example.org", utc(2024, 6, 10), "third body\n",
           extra={"X-Custom": "marker-77"}),
     r"(\Draft $Label1)", utc(2024, 7, 10)),
    (build("to delete", "frank@example.org", "jacques@paris.test", utc(2024, 6, 20), "fourth body\n"),
     r"(\Deleted \Seen)", utc(2024, 7, 20)),
]
typ, data = imap.status("INBOX", "(UIDVALIDITY UIDNEXT MESSAGES)")
check(typ == "OK", f"STATUS INBOX: {data}")
status = parse(data[0].split(b" ", 1)[1])
status = dict(zip(status[::2], status[1::2]))
inbox_validity = int(status[b"UIDVALIDITY"])
check(int(status[b"MESSAGES"]) == 0, "a new user's INBOX is empty")
uids = []
for m, flags, when in MESSAGES:
    pop(imap, "APPENDUID")
    typ, data = imap.append("INBOX", flags, when, raw(m))
    check(typ == "OK", f"APPEND {m['Subject']}: {data}")
    code = pop(imap, "APPENDUID")
    check(len(code) == 1, f"APPEND answers [APPENDUID ...]: {data}")
    validity, uid = (int(x) for x in code[0].split())
    check(validity == inbox_validity, f"APPENDUID names INBOX's UIDVALIDITY {inbox_validity}: {code}")
    uids.append(uid)
check(uids == sorted(uids) and len(set(uids)) == 4, f"APPENDUIDs ascend: {uids}")
typ, data = imap.append("Nowhere", None, None, raw(MESSAGES[0][0]))
check(typ == "NO" and b"TRYCREATE" in data[0], f"APPEND to a missing folder is NO [TRYCREATE]: {data}")

pop(imap, "STATUS")
listing("LIST", '""', '"*"', "RETURN", "(STATUS (MESSAGES UNSEEN))")
st = {}
for line in pop(imap, "STATUS"):
    name, values = parse(b"(" + line + b")")
    st[name.decode()] = {k.upper(): int(v) for k, v in zip(values[::2], values[1::2])}
check(st.get("INBOX") == {b"MESSAGES": 4, b"UNSEEN": 2}, f"LIST-STATUS: INBOX 4 messages, 2 unseen: {st.get('INBOX')}")
check(st.get("Sent") == {b"MESSAGES": 0, b"UNSEEN": 0}, f"LIST-STATUS: Sent is empty: {st.get('Sent')}")

typ, data = imap.select("INBOX")
check(typ == "OK" and int(data[0]) == 4, f"SELECT INBOX: 4 messages ({data})")
flags = pop(imap, "FLAGS")
check(flags and all(f in flags[0] for f in [b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Draft"]),
      f"FLAGS lists the system flags: {flags}")
check(b"$Label1" in flags[0], f"FLAGS lists the keyword used in the mailbox: {flags}")
perm = pop(imap, "PERMANENTFLAGS")
check(perm and b"\\*" in perm[0], f"PERMANENTFLAGS allows new keywords (\\*): {perm}")
check(pop(imap, "UIDVALIDITY") == [str(inbox_validity).encode()], "SELECT's UIDVALIDITY matches STATUS")
check(bool(pop(imap, "UIDNEXT")), "SELECT gives UIDNEXT")
recent = int((pop(imap, "RECENT") or [b"0"])[0])
got = fetch(imap, "1:4", "(UID FLAGS INTERNALDATE RFC822.SIZE)")
check([got[i]["UID"] for i in range(1, 5)] == [str(u).encode() for u in uids], "sequence numbers follow UIDs")
check(set(got[3]["FLAGS"]) >= {b"\\Draft", b"$Label1"}, f"APPEND stored flags and keywords: {got[3]['FLAGS']}")
kept = datetime.strptime(got[1]["INTERNALDATE"].decode().strip(), "%d-%b-%Y %H:%M:%S %z")
check(kept == MESSAGES[0][2], f"APPEND kept the date: {got[1]['INTERNALDATE']}")
for i, (m, _, _) in enumerate(MESSAGES, 1):
    check(int(got[i]["RFC822.SIZE"]) == len(raw(m)), f"RFC822.SIZE of {i} is the appended size")


# ---- SEARCH, every key
def search(*criteria, uid=False, charset=None, literal=None):
    imap.literal = literal
    if uid:
        typ, data = imap.uid("SEARCH", *(["CHARSET", charset] if charset else []), *criteria)
    else:
        typ, data = imap.search(charset, *criteria)
    check(typ == "OK", f"SEARCH {criteria}: {typ} {data}")
    return sorted(int(x) for x in (data[0] or b"").split())


def expect(criteria, want, **kw):
    got = search(*criteria, **kw)
    check(got == want, f"SEARCH {' '.join(criteria)} -> {want} (got {got})")


u1, u2, u3, u4 = uids
for criteria, want in [
    (["ALL"], [1, 2, 3, 4]),
    (["ANSWERED"], [1]), (["UNANSWERED"], [2, 3, 4]),
    (["BCC", "dave"], [2]),
    (["BEFORE", "1-Mar-2024"], [1]), (["ON", "15-Apr-2024"], [2]), (["SINCE", "10-Jul-2024"], [3, 4]),
    (["SENTBEFORE", "1-Feb-2024"], [1]), (["SENTON", "15-Mar-2024"], [2]), (["SENTSINCE", "10-Jun-2024"], [3, 4]),
    (["BODY", "needle-one"], [1]), (["BODY", '"second body"'], [2]), (["BODY", "hello"], []),
    (["CC", "carol@example.net"], [1]),
    (["DELETED"], [4]), (["UNDELETED"], [1, 2, 3]),
    (["DRAFT"], [3]), (["UNDRAFT"], [1, 2, 4]),
    (["FLAGGED"], [2]), (["UNFLAGGED"], [1, 3, 4]),
    (["FROM", "alice"], [1]), (["FROM", "BOB@EXAMPLE.ORG"], [2]),
    (["HEADER", "X-Custom", "marker-77"], [3]), (["HEADER", "X-Custom", '""'], [3]),
    (["KEYWORD", "$Label1"], [3]), (["UNKEYWORD", "$Label1"], [1, 2, 4]),
    (["LARGER", "2000"], [2]), (["SMALLER", "2000"], [1, 3, 4]),
    (["SEEN"], [1, 4]), (["UNSEEN"], [2, 3]),
    (["NOT", "SEEN"], [2, 3]), (["NOT", "FROM", "alice"], [2, 3, 4]),
    (["OR", "FROM", "alice", "FROM", "bob"], [1, 2]), (["OR", "FLAGGED", "DRAFT"], [2, 3]),
    (["SUBJECT", "hello"], [1]), (["SUBJECT", '"au lait"'], [2]), (["SUBJECT", "HELLO"], [1]),
    (["TEXT", "needle-one"], [1]), (["TEXT", "alice@example.org"], [1]), (["TEXT", "marker-77"], [3]),
    (["TO", "erin"], [3]), (["TO", "jacques"], [1, 2, 4]),
    (["UID", f"{u2}:{u3}"], [2, 3]), (["UID", f"{u4}"], [4]),
    (["2:3"], [2, 3]), (["1,4"], [1, 4]), (["3:*"], [3, 4]), (["*"], [4]), (["2:3", "FLAGGED"], [2]),
    (["(FROM", "alice", "SEEN)"], [1]), (["SEEN", "ANSWERED", "UNDELETED"], [1]),
]:
    expect(criteria, want)
# RECENT/NEW/OLD: whatever the server counts as recent, SELECT's RECENT, the
# RECENT key and NEW = RECENT UNSEEN, OLD = NOT RECENT must agree.
rec = search("RECENT")
check(len(rec) == recent, f"SEARCH RECENT {rec} agrees with SELECT's {recent} RECENT")
check(search("NEW") == sorted(set(rec) & {2, 3}), f"NEW is RECENT and UNSEEN: {search('NEW')}")
check(search("OLD") == sorted({1, 2, 3, 4} - set(rec)), f"OLD is NOT RECENT: {search('OLD')}")
# UTF-8: the subject is an encoded word; the criterion a literal in UTF-8.
expect(["SUBJECT"], [2], charset="UTF-8", literal="Café".encode())
check(search("SUBJECT", uid=True, charset="UTF-8", literal="Café".encode()) == [u2], "UID SEARCH CHARSET UTF-8 gives the UID")
check(search("UNDELETED", uid=True) == [u1, u2, u3], "UID SEARCH UNDELETED gives UIDs")
typ, data = imap.search("X-UNKNOWN", "ALL")
check(typ == "NO" and b"BADCHARSET" in data[0], f"an unknown charset is NO [BADCHARSET]: {data}")

# ESEARCH (RFC 4731)
for cmd, want in [
    (("RETURN", "(MIN MAX COUNT)", "UNDELETED"), {b"MIN": u1, b"MAX": u3, b"COUNT": 3}),
    (("RETURN", "(COUNT)", "ALL"), {b"COUNT": 4}),
    (("RETURN", "(ALL)", "UNSEEN"), {b"ALL": {u2, u3}}),
    (("RETURN", "()", "SEEN"), {b"ALL": {u1, u4}}),
]:
    pop(imap, "ESEARCH")
    typ, data = imap.uid("SEARCH", *cmd)
    es = pop(imap, "ESEARCH")
    check(typ == "OK" and len(es) == 1, f"UID SEARCH {' '.join(cmd)} answers one ESEARCH: {es}")
    items = parse(b"(" + es[0] + b")")
    check(items[0] and items[0][0].upper() == b"TAG", f"ESEARCH names the command's tag: {es[0]}")
    check(b"UID" in [x.upper() for x in items if isinstance(x, bytes)], f"ESEARCH says UID: {es[0]}")
    pairs = [x for x in items[1:] if not (isinstance(x, bytes) and x.upper() == b"UID")]
    got = {pairs[k].upper(): pairs[k + 1] for k in range(0, len(pairs) - 1, 2)}
    got = {k: (seqset(v.decode()) if k == b"ALL" else int(v)) for k, v in got.items()}
    check(got == want, f"UID SEARCH {' '.join(cmd)}: {want} (got {got})")

# ---- FETCH of parts (message 2: multipart/mixed, text + base64 attachment)
m2 = raw(MESSAGES[1][0])
parsed2 = email.message_from_bytes(m2, policy=policy.default)
got = fetch(imap, "2", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[]<0.10>)")[2]
check(got["BODY[1]"].replace(b"\r\n", b"\n") == b"second body\n", f"BODY[1] is the text part's body: {got['BODY[1]']!r}")
mime = got["BODY[2.MIME]"]
check(b"Content-Type: application/pdf" in mime and b"attachment" in mime and mime.endswith(b"\r\n\r\n")
      and b"AAEC" not in mime, f"BODY[2.MIME] is the attachment's MIME header: {mime!r}")
subject_line = re.search(rb"^Subject: [^\r\n]*\r\n", m2, re.M).group(0)
check(got["BODY[HEADER.FIELDS (SUBJECT)]"] == subject_line + b"\r\n",
      f"BODY[HEADER.FIELDS (SUBJECT)] is the Subject line and a blank line: {got['BODY[HEADER.FIELDS (SUBJECT)]']!r}")
check(got["BODY[]<0>"] == m2[:10], f"BODY[]<0.10> is the first 10 bytes: {got['BODY[]<0>']!r}")
got = fetch(imap, "2", "(BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1])")[2]
check(got["BINARY[2]"] == ATTACHMENT, f"BINARY[2] is the decoded attachment ({len(got['BINARY[2]'])} bytes)")
check(int(got["BINARY.SIZE[2]"]) == len(ATTACHMENT), f"BINARY.SIZE[2] is {len(ATTACHMENT)}")
check(got["BINARY[1]"].replace(b"\r\n", b"\n") == b"second body\n", "BINARY[1] of a 7bit part is its body")
check(b"\\Seen" not in fetch(imap, "2", "(FLAGS)")[2]["FLAGS"], "BODY.PEEK and BINARY.PEEK leave \\Seen unset")

env = fetch(imap, "2", "(ENVELOPE)")[2]["ENVELOPE"]
date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = env
check(date == parsed2["Date"].encode(), f"ENVELOPE date: {date}")
check(subject == re.search(rb"^Subject: ([^\r\n]*)", m2, re.M).group(1), f"ENVELOPE subject as sent: {subject}")
check(from_ == [[b"Bob", None, b"bob", b"example.org"]], f"ENVELOPE from: {from_}")
check(sender == from_ and reply_to == from_, f"ENVELOPE sender and reply-to default to from: {sender} {reply_to}")
check(to == [[b"Jacques", None, b"jacques", b"paris.test"]], f"ENVELOPE to: {to}")
check(cc is None and bcc == [[None, None, b"dave", b"example.com"]], f"ENVELOPE cc NIL, bcc dave: {cc} {bcc}")
check(in_reply_to is None and message_id == parsed2["Message-ID"].encode(), f"ENVELOPE message-id: {message_id}")

bs = fetch(imap, "2", "(BODYSTRUCTURE)")[2]["BODYSTRUCTURE"]
check(isinstance(bs[0], list) and isinstance(bs[1], list), f"BODYSTRUCTURE of a multipart starts with its parts: {bs}")
check(bs[2].upper() == b"MIXED", f"multipart subtype MIXED: {bs[2]}")
check(bs[3] and bs[3][0].upper() == b"BOUNDARY" and bs[3][1] == parsed2.get_boundary().encode(),
      f"multipart parameters carry the boundary: {bs[3]}")
t = bs[0]
check([t[0].upper(), t[1].upper()] == [b"TEXT", b"PLAIN"], f"part 1 is text/plain: {t[:2]}")
check([x.lower() for x in t[2]] == [b"charset", b"utf-8"], f"part 1 charset: {t[2]}")
check(t[5].upper() == b"7BIT", f"part 1 encoding: {t[5]}")
parts = m2.split(b"--" + parsed2.get_boundary().encode())
body1, body2 = (part.split(b"\r\n\r\n", 1)[1][:-2] for part in parts[1:3])
check(int(t[6]) in (len(body1), len(body1) - 2), f"part 1 size in octets: {t[6]} ({len(body1)})")
check(int(t[7]) == 1, f"part 1 size in lines: {t[7]}")
p = bs[1]
check([p[0].upper(), p[1].upper()] == [b"APPLICATION", b"PDF"], f"part 2 is application/pdf: {p[:2]}")
check(p[5].upper() == b"BASE64", f"part 2 encoding BASE64: {p[5]}")
check(int(p[6]) in (len(body2), len(body2) - 2), f"part 2 size in octets: {p[6]} ({len(body2)})")
# extension data: md5, disposition, language, location
disp = p[8]
check(disp and disp[0].upper() == b"ATTACHMENT", f"part 2 disposition attachment: {disp}")
dparams = disp[1] or []
params = {dparams[k].decode().lower(): dparams[k + 1].decode() for k in range(0, len(dparams), 2)}
if "filename*" in params:
    charset, _, value = params["filename*"].split("'", 2)
    name = unquote(value, encoding=charset or "utf-8")
else:
    name = str(email.header.make_header(email.header.decode_header(params.get("filename", ""))))
check(name == ATTACHMENT_NAME, f"part 2's filename decodes to {ATTACHMENT_NAME}: {params}")
got = fetch(imap, "1", "(BODYSTRUCTURE)")[1]["BODYSTRUCTURE"]
check(got[0].upper() == b"TEXT" and int(got[7]) == 1, f"BODYSTRUCTURE of a single part: {got}")
got = fetch(imap, "1", "FAST")[1]
check({"FLAGS", "INTERNALDATE", "RFC822.SIZE"} <= set(got), f"FETCH FAST: {sorted(got)}")
got = fetch(imap, "1", "ALL")[1]
check({"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"} <= set(got), f"FETCH ALL: {sorted(got)}")
got = fetch(imap, "1", "FULL")[1]
check({"ENVELOPE", "BODY"} <= set(got), f"FETCH FULL: {sorted(got)}")
got = fetch(imap, str(u1), "(BODY[TEXT])", uid=True)
seq, items = next(iter(got.items()))
check(items["UID"] == str(u1).encode(), "UID FETCH answers with the UID")
check(items["BODY[TEXT]"].replace(b"\r\n", b"\n") == b"first body needle-one\n", f"BODY[TEXT]: {items['BODY[TEXT]']!r}")
check(b"\\Seen" in items.get("FLAGS", b"") or b"\\Seen" in fetch(imap, "1", "(FLAGS)")[1]["FLAGS"], "message 1 is \\Seen")
check(b"\\Seen" not in fetch(imap, "3", "(FLAGS)")[3]["FLAGS"], "message 3 starts unseen")
got = fetch(imap, "3", "(BODY[TEXT])")[3]
check(b"\\Seen" in got.get("FLAGS", b"") or b"\\Seen" in fetch(imap, "3", "(FLAGS)")[3]["FLAGS"],
      "a FETCH of BODY[TEXT] (no PEEK) sets \\Seen")

# ---- flags and keywords


def flagset(flags):
    """The flags a client stores (\\Recent is the server's, per session)."""
    return {f for f in flags if f.lower() != b"\\recent"}


typ, data = imap.store("1", "+FLAGS", r"($Label1 \Flagged)")
got = fetch_items(data)
check(typ == "OK" and set(got[1]["FLAGS"]) >= {b"$Label1", b"\\Flagged", b"\\Seen"},
      f"STORE +FLAGS ($Label1 \\Flagged) answers the new FLAGS: {data}")
typ, data = imap.store("1", "-FLAGS.SILENT", r"(\Flagged)")
check(typ == "OK" and not fetch_items(data), f"-FLAGS.SILENT answers no FETCH: {data}")
check(flagset(fetch(imap, "1", "(FLAGS)")[1]["FLAGS"]) == {b"\\Seen", b"\\Answered", b"$Label1"}, "the flags after -FLAGS")
typ, data = imap.store("1", "FLAGS", r"(\Seen $Work)")
check(flagset(fetch_items(data)[1]["FLAGS"]) == {b"\\Seen", b"$Work"}, f"STORE FLAGS replaces: {data}")
expect(["KEYWORD", "$Work"], [1])
expect(["KEYWORD", "$Label1"], [3])
imap.store("1", "FLAGS", r"(\Seen \Answered)")

# ---- COPY and MOVE with COPYUID, EXPUNGE
archive = imap.status("Archive", "(UIDVALIDITY UIDNEXT MESSAGES)")[1][0]
archive = parse(archive.split(b" ", 1)[1])
archive = {k: int(v) for k, v in zip(archive[::2], archive[1::2])}
pop(imap, "COPYUID")
typ, data = imap.uid("COPY", str(u1), "Trash")
code = pop(imap, "COPYUID")
check(typ == "OK" and len(code) == 1, f"UID COPY answers [COPYUID ...]: {data} {code}")
check(code[0].split()[1] == str(u1).encode(), f"COPYUID names the source UID: {code}")
pop(imap, "COPYUID")
pop(imap, "EXPUNGE")
typ, data = imap.uid("MOVE", f"{u3}", "Archive")
code = pop(imap, "COPYUID")
check(typ == "OK" and len(code) == 1, f"UID MOVE answers [COPYUID ...]: {data} {code}")
validity, src, dst = code[0].split()
check(int(validity) == archive[b"UIDVALIDITY"] and src == str(u3).encode(),
      f"COPYUID names Archive's UIDVALIDITY and the source UID: {code} {archive}")
check(pop(imap, "EXPUNGE") == [b"3"], "MOVE expunged message 3 from INBOX")
check(search("ALL") == [1, 2, 3], "INBOX holds three messages after the MOVE")
check(imap.uid("COPY", "999999", "Trash")[0] == "OK", "UID COPY of a UID that is gone copies nothing and is OK")
check(imap.copy("1", "Nowhere")[0] == "NO", "COPY to a missing folder is NO")
check(imap.uid("EXPUNGE", str(u4))[0] == "OK" and pop(imap, "EXPUNGE") == [b"3"], "UID EXPUNGE removes the \\Deleted message")

imap.select("Archive", readonly=True)
got = fetch(imap, dst.decode(), "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])", uid=True)
check(len(got) == 1, f"Archive holds the moved message under UID {dst}")
items = next(iter(got.values()))
check(b"draft note" in items["BODY[HEADER.FIELDS (SUBJECT)]"], "it is 'draft note'")
check(set(items["FLAGS"]) >= {b"\\Draft", b"$Label1"}, f"MOVE keeps flags and keywords: {items['FLAGS']}")
try:
    imap.store("1", "+FLAGS", r"(\Answered)")
except imaplib.IMAP4.error:
    pass
check(b"\\Answered" not in fetch(imap, "1", "(FLAGS)")[1]["FLAGS"], "a STORE in an EXAMINEd folder changes nothing")
check(imap.unselect()[0] == "OK", "UNSELECT")
typ, data = imap.status("Trash", "(MESSAGES)")
check(typ == "OK" and b"MESSAGES 1" in data[0], f"Trash holds the copy: {data}")

# ---- CONDSTORE (RFC 7162) in a folder of its own
check(imap.create("sync")[0] == "OK", "CREATE sync")
for i in range(1, 4):
    imap.append("sync", None, utc(2024, 8, i), raw(build(f"sync {i}", "z@example.org", "jacques@paris.test",
                                                         utc(2024, 8, i), f"sync body {i}\n")))
typ, data = simple(imap, "SELECT", "sync", "(CONDSTORE)")
imap.state = "SELECTED"
high = pop(imap, "HIGHESTMODSEQ")
check(typ == "OK" and high, f"SELECT (CONDSTORE) gives HIGHESTMODSEQ: {data} {high}")
high = int(high[0])
got = fetch(imap, "1:*", "(UID MODSEQ)")
mods = {int(v["UID"]): int(v["MODSEQ"][0]) for v in got.values()}
check(len(mods) == 3 and max(mods.values()) <= high, f"every message has a MODSEQ <= HIGHESTMODSEQ: {mods}")
s1, s2, s3 = sorted(mods)
typ, data = imap.uid("STORE", str(s1), f"(UNCHANGEDSINCE {mods[s1]})", "+FLAGS", r"(\Flagged)")
got = fetch_items(data)
check(typ == "OK" and int(next(iter(got.values()))["MODSEQ"][0]) > high,
      f"STORE UNCHANGEDSINCE the current modseq succeeds with a higher MODSEQ: {data}")
pop(imap, "MODIFIED")
typ, data = imap.uid("STORE", str(s1), f"(UNCHANGEDSINCE {mods[s1]})", "+FLAGS", r"(\Seen)")
modified = pop(imap, "MODIFIED")
check(typ == "OK" and modified and seqset(modified[0].decode()) == {s1},
      f"STORE UNCHANGEDSINCE an older modseq answers [MODIFIED {s1}]: {data} {modified}")
check(b"\\Seen" not in fetch(imap, str(s1), "(FLAGS)", uid=True)[1]["FLAGS"], "the refused STORE changed nothing")
typ, data = imap.uid("FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {high})")
got = fetch_items(data)
check(typ == "OK" and [int(v["UID"]) for v in got.values()] == [s1],
      f"FETCH (CHANGEDSINCE {high}) gives only the changed message: {data}")
check(all("MODSEQ" in v for v in got.values()), "CHANGEDSINCE answers carry MODSEQ")
typ, data = imap.uid("SEARCH", "MODSEQ", str(high + 1))
check(typ == "OK" and [int(x) for x in data[0].split(b"(")[0].split()] == [s1], f"SEARCH MODSEQ finds the changed message: {data}")
imap.logout()

# ---- QRESYNC: a client that was offline resyncs after changes made elsewhere
q = connect(a.paris, a.ca)
typ, data = simple(q, "ENABLE", "QRESYNC")
check(typ == "OK" and any(b"QRESYNC" in x.upper() for x in pop(q, "ENABLED")), "ENABLE QRESYNC answers ENABLED QRESYNC")
typ, data = q.select("sync")
validity = int(pop(q, "UIDVALIDITY")[0])
before = int(pop(q, "HIGHESTMODSEQ")[0])
q.logout()

other = connect(a.paris, a.ca)
other.select("sync")
other.uid("STORE", str(s3), "+FLAGS", r"($Done)")
other.uid("STORE", str(s2), "+FLAGS", r"(\Deleted)")
check(other.uid("EXPUNGE", str(s2))[0] == "OK", f"another session expunges UID {s2}")
other.logout()

q = connect(a.paris, a.ca)
simple(q, "ENABLE", "QRESYNC")
typ, data = simple(q, "SELECT", "sync", f"(QRESYNC ({validity} {before}))")
q.state = "SELECTED"
check(typ == "OK", f"SELECT sync (QRESYNC ({validity} {before})): {data}")
vanished = pop(q, "VANISHED")
check(len(vanished) == 1 and vanished[0].upper().startswith(b"(EARLIER) "),
      f"VANISHED (EARLIER) comes with the SELECT: {vanished}")
gone = seqset(vanished[0].split()[1].decode())
check(s2 in gone and s1 not in gone and s3 not in gone, f"VANISHED names the expunged UID {s2}: {vanished}")
changed = fetch_items(pop(q, "FETCH"))
changed = {int(v["UID"]): v for v in changed.values()}
check(s3 in changed and b"$Done" in changed[s3]["FLAGS"], f"the SELECT sends FETCH of the changed flags: {changed}")
check(all("MODSEQ" in v for v in changed.values()), "with MODSEQ")
check(set(changed) == {s3}, f"and nothing unchanged since {before}: {sorted(changed)}")
check(int(pop(q, "HIGHESTMODSEQ")[0]) > before, "HIGHESTMODSEQ moved on")
# In a QRESYNC session an expunge is reported as VANISHED, not EXPUNGE.
q.uid("STORE", str(s1), "+FLAGS.SILENT", r"(\Deleted)")
typ, data = q.uid("EXPUNGE", str(s1))
check(typ == "OK" and pop(q, "VANISHED") == [str(s1).encode()] and not pop(q, "EXPUNGE"),
      "UID EXPUNGE in a QRESYNC session answers VANISHED, not EXPUNGE")
q.logout()
print("imap_sync passed")
