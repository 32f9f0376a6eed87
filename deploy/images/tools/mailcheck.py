#!/usr/bin/env python3
"""mailcheck: send a message and read mailboxes from inside the compose networks.

  mailcheck send  --host H --port 587 --user U --from A --to B --subject S [--ssl]
  mailcheck pop3  --host H --port 995 --user U [--starttls]   prints the Subject of each message
  mailcheck imap  --host H --port 993 --user U [--starttls]   prints the Subject of each INBOX message
  mailcheck metric URL NAME [LABEL=VALUE ...]                 prints the sum of NAME's samples

The password is read from --password-file (default /run/secrets/password);
certificates are verified against --cafile (default /run/secrets/ca). Every
network operation has a timeout; a failure exits non-zero with the reason.
"""

import argparse
import email
import email.utils
import imaplib
import poplib
import smtplib
import ssl
import sys
import urllib.request

TIMEOUT = 20


def context(args):
    ctx = ssl.create_default_context(cafile=args.cafile)
    # The chain is verified against the deployment CA; the name on it is the
    # public host name (mail.<domain>), not the container's.
    ctx.check_hostname = False
    return ctx


def password(args):
    with open(args.password_file, encoding="utf-8") as f:
        return f.read().strip()


def send(args):
    msg = email.message.EmailMessage()
    msg["From"] = args.sender
    msg["To"] = ", ".join(args.to)
    msg["Subject"] = args.subject
    msg["Message-ID"] = email.utils.make_msgid(domain=args.sender.split("@")[-1])
    msg["Date"] = email.utils.formatdate()
    msg.set_content(args.body or f"{args.subject}\n")
    if args.ssl:
        smtp = smtplib.SMTP_SSL(args.host, args.port, context=context(args), timeout=TIMEOUT)
    else:
        smtp = smtplib.SMTP(args.host, args.port, timeout=TIMEOUT)
        smtp.starttls(context=context(args))
    with smtp:
        if args.user:
            smtp.login(args.user, password(args))
        smtp.send_message(msg, from_addr=args.sender, to_addrs=args.to)
    print(msg["Message-ID"])


def subject_of(raw):
    return str(email.message_from_bytes(raw).get("Subject", ""))


def pop3(args):
    if args.starttls:
        box = poplib.POP3(args.host, args.port, timeout=TIMEOUT)
        box.stls(context=context(args))
    else:
        box = poplib.POP3_SSL(args.host, args.port, context=context(args), timeout=TIMEOUT)
    box.user(args.user)
    box.pass_(password(args))
    count, _ = box.stat()
    for i in range(1, count + 1):
        _, lines, _ = box.retr(i)
        print(subject_of(b"\r\n".join(lines)))
    box.quit()


def imap(args):
    if args.starttls:
        box = imaplib.IMAP4(args.host, args.port, timeout=TIMEOUT)
        box.starttls(ssl_context=context(args))
    else:
        box = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=context(args), timeout=TIMEOUT)
    box.login(args.user, password(args))
    box.select("INBOX", readonly=True)
    _, data = box.search(None, "ALL")
    for num in data[0].split():
        _, parts = box.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        print(subject_of(parts[0][1]).strip())
    box.logout()


def metric(args):
    with urllib.request.urlopen(args.url, timeout=TIMEOUT) as r:
        text = r.read().decode()
    want = [f'{kv.split("=", 1)[0]}="{kv.split("=", 1)[1]}"' for kv in args.labels]
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name_labels, _, value = line.rpartition(" ")
        name = name_labels.split("{", 1)[0]
        if name == args.name and all(w in name_labels for w in want):
            total += float(value)
    print(int(total) if total.is_integer() else total)


def main():
    p = argparse.ArgumentParser(prog="mailcheck")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("send", "pop3", "imap"):
        s = sub.add_parser(name)
        s.add_argument("--host", required=True)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--user", default="")
        s.add_argument("--password-file", default="/run/secrets/password")
        s.add_argument("--cafile", default="/run/secrets/ca")
        if name == "send":
            s.add_argument("--ssl", action="store_true", help="implicit TLS (465)")
            s.add_argument("--from", dest="sender", required=True)
            s.add_argument("--to", action="append", required=True)
            s.add_argument("--subject", required=True)
            s.add_argument("--body", default="")
        else:
            s.add_argument("--starttls", action="store_true", help="STLS/STARTTLS (110/143)")
    m = sub.add_parser("metric")
    m.add_argument("url")
    m.add_argument("name")
    m.add_argument("labels", nargs="*")
    args = p.parse_args()
    try:
        {"send": send, "pop3": pop3, "imap": imap, "metric": metric}[args.cmd](args)
    except Exception as e:  # noqa: BLE001 - one line for the caller
        print(f"mailcheck {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
