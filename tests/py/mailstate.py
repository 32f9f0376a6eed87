"""What a mail client sees, as JSON, for the Dovecot rows of the swap matrix
(tests/tests/swap_dovecot.rs); the same commands run against facteur and Dovecot.

  submit  --host IP --ca CA --to A[,B] --subject S   pierre@paris.test submits over
          the MSA (port 5870, STARTTLS, AUTH); prints the refused recipients
  imap    --host IP --ca CA --user U [--wait SUBJECT] [--dates]   over IMAPS: every folder
          (attributes, subscribed) and its messages (Subject, Message-ID, flags without
          \\Recent, SHA-256 of BODY[], with --dates INTERNALDATE); --wait: first poll until a message with that
          Subject is in INBOX; --mention T: whether each message holds T (a bounce: its delivery report)
  arrange --host IP --ca CA --user U   over IMAPS: mark the first INBOX message
          \\Flagged and $Work, the second \\Seen \\Answered, make Projects/2024 and
          copy the first there, subscribe Projects/2024, make Empty and unsubscribe it
  organise --host IP --ca CA --user U   over IMAPS, on INBOX's first three messages
          (UID order): the first \\Flagged $Work, copied into Projects/2024 (Projects made
          first); the second \\Seen \\Answered; the third \\Seen \\Draft $Work Projekt-X, moved
          (UID MOVE) into Archiv/Reçus (its parent not made); subscribe Projects/2024 and
          Archiv/Reçus, make Empty, subscribe and unsubscribe it
  deliver --host IP --ca CA --to A --subject S   one message from pierre@paris.test over
          LMTP (port --lmtp) straight into the server's store
  pop3    --host IP --ca CA --user U   over POP3 with STLS: every message's Subject,
          LIST size and SHA-256
"""
import argparse
import email
import hashlib
import imaplib
import json
import poplib
import re
import smtplib
import time
from datetime import datetime
from email import policy

from common import PASSWORD, tls
from imapwire import fetch_items, parse

p = argparse.ArgumentParser()
p.add_argument("command", choices=["submit", "imap", "arrange", "organise", "deliver", "pop3"])
p.add_argument("--host", required=True)
p.add_argument("--ca", required=True)
p.add_argument("--user", default="")
p.add_argument("--to", default="")
p.add_argument("--subject", default="")
p.add_argument("--wait", default="")
p.add_argument("--mention", default="", help="imap: also say whether each message's bytes hold this text")
p.add_argument("--imaps", type=int, default=9930)
p.add_argument("--pop3", type=int, default=1100)
p.add_argument("--submission", type=int, default=5870)
p.add_argument("--lmtp", type=int, default=2400)
p.add_argument("--dates", action="store_true", help="imap: also give each message's INTERNALDATE (unix seconds)")
a = p.parse_args()


def connect():
    imap = imaplib.IMAP4_SSL(a.host, a.imaps, ssl_context=tls(a.ca), timeout=30)
    imap.login(a.user, PASSWORD)
    return imap


def folders(imap):
    """{name: sorted attributes (\\Subscribed added when LSUB shows it)}."""
    out = {}
    for cmd in (("LIST", '""', '"*"'), ("LSUB", '""', '"*"')):
        typ, data = imap._simple_command(*cmd)
        _, lines = imap._untagged_response(typ, data, cmd[0])
        for line in lines:
            if line is None:
                continue
            if isinstance(line, tuple):
                line = line[0] + b"\r\n" + line[1]
            attrs, _, name = parse(b"(" + line + b")")[:3]
            name = name.decode()
            if cmd[0] == "LIST":
                out[name] = sorted({x.decode().lower() for x in attrs} - {"\\subscribed"})
            elif name in out:
                out[name] = sorted(set(out[name]) | {"\\subscribed"})
    return out


def messages(imap, folder):
    typ, data = imap.select(f'"{folder}"', readonly=True)
    if typ != "OK" or int(data[0]) == 0:
        return []
    typ, data = imap.fetch("1:*", "(FLAGS INTERNALDATE BODY.PEEK[])")
    out = []
    for items in fetch_items(data).values():
        body = items["BODY[]"]
        m = email.message_from_bytes(body, policy=policy.default)
        out.append({"subject": str(m["Subject"]), "message-id": str(m["Message-ID"]),
                    "flags": sorted(x.decode() for x in items["FLAGS"] if x.lower() != b"\\recent"),
                    "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)})
        if a.dates:
            # As a point in time: servers may give it in different zones.
            when = datetime.strptime(items["INTERNALDATE"].decode().strip(), "%d-%b-%Y %H:%M:%S %z")
            out[-1]["internaldate"] = int(when.timestamp())
        if a.mention:
            # A bounce names its recipients in the delivery report; the
            # returned headers it also carries name every original recipient.
            status = [p for p in m.walk() if p.get_content_type() == "message/delivery-status"]
            where = status[0].as_bytes() if status else body
            out[-1]["mentions"] = a.mention.encode() in where
    return sorted(out, key=lambda x: (x["subject"], x["message-id"]))


def inbox_subjects(imap):
    return [m["subject"] for m in messages(imap, "INBOX")]


def message(to):
    return (f"From: Pierre <pierre@paris.test>\r\nTo: {', '.join(to)}\r\nSubject: {a.subject}\r\n"
            f"Message-ID: <{re.sub(r'[^A-Za-z0-9]', '-', a.subject)}@paris.test>\r\n\r\n"
            f"The body of {a.subject}.\r\n.leading dot\r\n").encode()


if a.command == "submit":
    to = a.to.split(",")
    smtp = smtplib.SMTP(a.host, a.submission, timeout=30)
    smtp.starttls(context=tls(a.ca))
    smtp.login("pierre@paris.test", PASSWORD)
    refused = smtp.sendmail("pierre@paris.test", to, message(to))
    smtp.quit()
    print(json.dumps(sorted(refused)))
elif a.command == "deliver":
    to = a.to.split(",")
    lmtp = smtplib.LMTP(a.host, a.lmtp, timeout=30)
    refused = lmtp.sendmail("pierre@paris.test", to, message(to))
    lmtp.quit()
    print(json.dumps(sorted(refused)))
elif a.command == "imap":
    if a.wait:
        deadline = time.monotonic() + 60
        while True:
            imap = connect()
            found = a.wait in inbox_subjects(imap)
            imap.logout()
            if found:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"no message {a.wait!r} in {a.user}'s INBOX after 60 s")
            time.sleep(0.3)
    imap = connect()
    state = {name: {"attributes": attrs, "messages": messages(imap, name)}
             for name, attrs in folders(imap).items()}
    imap.logout()
    print(json.dumps(state, indent=1, sort_keys=True))
elif a.command == "arrange":
    imap = connect()
    imap.select("INBOX")
    typ, data = imap.uid("SEARCH", "ALL")
    uids = data[0].split()
    assert len(uids) >= 2, f"two messages in INBOX to arrange: {uids}"
    for cmd in [("STORE", uids[0], "+FLAGS", "(\\Flagged $Work)"), ("STORE", uids[1], "+FLAGS", "(\\Seen \\Answered)")]:
        typ, data = imap.uid(*cmd)
        assert typ == "OK", f"{cmd}: {typ} {data}"
    for typ, data in [imap.create("Projects/2024"), imap.uid("COPY", uids[0], "Projects/2024"),
                      imap.subscribe("Projects/2024"), imap.create("Empty"), imap.unsubscribe("Empty")]:
        assert typ == "OK", f"{typ} {data}"
    imap.logout()
    print("arranged")
elif a.command == "organise":
    imap = connect()
    imap.select("INBOX")
    typ, data = imap.uid("SEARCH", "ALL")
    uids = data[0].split()
    assert len(uids) >= 3, f"three messages in INBOX to organise: {uids}"
    recus = '"Archiv/Re&AOc-us"'  # Archiv/Reçus in modified UTF-7 (RFC 3501 §5.1.3)
    steps = [
        ("STORE", uids[0], "+FLAGS", "(\\Flagged $Work)"),
        ("STORE", uids[1], "+FLAGS", "(\\Seen \\Answered)"),
        ("STORE", uids[2], "+FLAGS", "(\\Seen \\Draft $Work Projekt-X)"),
        ("CREATE", "Projects"), ("CREATE", "Projects/2024"), ("COPY", uids[0], "Projects/2024"),
        ("CREATE", recus), ("MOVE", uids[2], recus),
        ("SUBSCRIBE", "Projects/2024"), ("SUBSCRIBE", recus),
        ("CREATE", "Empty"), ("SUBSCRIBE", "Empty"), ("UNSUBSCRIBE", "Empty"),
    ]
    for cmd in steps:
        if cmd[0] in ("STORE", "COPY", "MOVE"):
            typ, data = imap.uid(*cmd)
        else:
            typ, data = getattr(imap, cmd[0].lower())(*cmd[1:])
        assert typ == "OK", f"{cmd}: {typ} {data}"
    imap.logout()
    print("organised")
elif a.command == "pop3":
    pop = poplib.POP3(a.host, a.pop3, timeout=30)
    pop.stls(context=tls(a.ca))
    pop.user(a.user)
    pop.pass_(PASSWORD)
    _, listing, _ = pop.list()
    out = []
    for line in listing:
        n, size = (int(x) for x in line.split())
        _, lines, _ = pop.retr(n)
        body = b"\r\n".join(lines) + b"\r\n"
        m = email.message_from_bytes(body, policy=policy.default)
        out.append({"subject": str(m["Subject"]), "list size": size, "size": len(body),
                    "sha256": hashlib.sha256(body).hexdigest()})
    pop.quit()
    print(json.dumps(sorted(out, key=lambda x: x["subject"]), indent=1))
