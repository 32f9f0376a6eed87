"""A user's mailboxes as the IMAP server holds them, for the client tests
(imap_clients.rs) to arrange and check over IMAPS with imaplib:

  imap_state.py --paris IP --lyon IP --ca CA --user U create FOLDER
  ... append FOLDER SUBJECT [FLAG...]     a small message, `FLAG`s like \\Seen
  ... store FOLDER SUBJECT +FLAGS FLAG... STORE on the messages with that subject
  ... expunge FOLDER SUBJECT               mark \\Deleted and expunge them
  ... dump                                 one line per message, sorted:
        FOLDER<TAB>UIDVALIDITY<TAB>UID<TAB>SUBJECT<TAB>FLAGS (system flags, sorted)
      and one line `FOLDER<TAB>-` per selectable folder, empty or not."""
import argparse
import imaplib
import re
import sys

from common import PASSWORD, tls
from imapwire import IMAPS, build, fetch_items, raw, utc

p = argparse.ArgumentParser()
p.add_argument("--paris", required=True)
p.add_argument("--lyon", required=True)
p.add_argument("--ca", required=True)
p.add_argument("--user", default="jacques@paris.test")
p.add_argument("command")
p.add_argument("rest", nargs="*")
a = p.parse_args()

host = a.paris if a.user.endswith("@paris.test") else a.lyon
imap = imaplib.IMAP4_SSL(host, IMAPS, ssl_context=tls(a.ca), timeout=30)
imap.login(a.user, PASSWORD)
SYSTEM = {"\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"}


def q(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ok(reply, what):
    typ, data = reply
    if typ != "OK":
        print(f"FAIL: {what}: {typ} {data}", file=sys.stderr)
        sys.exit(1)
    return data


def matching(folder, subject):
    ok(imap.select(q(folder)), f"SELECT {folder}")
    imap.literal = subject.encode()
    data = ok(imap.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT"), f"SEARCH SUBJECT {subject}")
    uids = data[0].split()
    if not uids:
        print(f"FAIL: no message with subject {subject!r} in {folder}", file=sys.stderr)
        sys.exit(1)
    return b",".join(uids).decode()


cmd, rest = a.command, a.rest
if cmd == "create":
    ok(imap.create(q(rest[0])), f"CREATE {rest[0]}")
elif cmd == "append":
    folder, subject, *flags = rest
    m = build(subject, "someone@example.org", a.user, utc(2024, 10, 1), f"the body of {subject}\n")
    ok(imap.append(q(folder), "(" + " ".join(flags) + ")" if flags else None, utc(2024, 10, 1), raw(m)),
       f"APPEND {subject} to {folder}")
elif cmd == "store":
    folder, subject, op, *flags = rest
    ok(imap.uid("STORE", matching(folder, subject), op, "(" + " ".join(flags) + ")"), f"STORE {subject}")
elif cmd == "expunge":
    folder, subject = rest
    uids = matching(folder, subject)
    ok(imap.uid("STORE", uids, "+FLAGS.SILENT", r"(\Deleted)"), f"STORE \\Deleted {subject}")
    ok(imap.uid("EXPUNGE", uids), f"UID EXPUNGE {subject}")
elif cmd == "dump":
    typ, data = imap.list('""', '"*"')
    names = []
    for line in data:
        if isinstance(line, tuple):
            line = line[0] + line[1]
        m = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line)
        attrs, name = m.group(1).lower(), m.group(2)
        if b"\\noselect" in attrs or b"\\nonexistent" in attrs:
            continue
        names.append(name.strip(b'"').decode())
    lines = []
    for name in names:
        exists = int(ok(imap.select(q(name), readonly=True), f"EXAMINE {name}")[0])
        validity = imap.response("UIDVALIDITY")[1][0].decode()
        lines.append(f"{name}\t-")
        if not exists:
            continue
        data = ok(imap.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"), f"FETCH in {name}")
        for item in fetch_items(data).values():
            uid = item["UID"].decode()
            flags = sorted(f.decode() for f in item.get("FLAGS", []) if f.decode().lower() in SYSTEM)
            subject = item["BODY[HEADER.FIELDS (SUBJECT)]"].decode("utf-8", "replace").split(":", 1)[-1].strip()
            lines.append(f"{name}\t{validity}\t{uid}\t{subject}\t{' '.join(flags)}")
    print("\n".join(sorted(lines)))
else:
    print(f"unknown command {cmd}", file=sys.stderr)
    sys.exit(2)
imap.logout()
