"""The mail user's side of the swap matrix (tests/tests/swap.rs): send one raw
message by SMTP, and read it back over POP3 or IMAP (STARTTLS, dev CA), the way a
user checks that mail arrived. Every command fails loudly; nothing is retried
except waiting for the message to arrive.

usage:
  swap.py send HOST PORT MAIL_FROM RCPT FILE [--starttls CA] [--auth USER] [--expect-refused]
      one SMTP transaction; exits 0 only on the server's 250 for the data
      (with --expect-refused: only if the server refuses the recipient).
  swap.py pop HOST PORT CA USER TOKEN TIMEOUT OUT
      wait until the maildrop holds a message with TOKEN; fail unless exactly
      one does; write it to OUT exactly as RETR gave it (CRLF lines).
  swap.py imap HOST PORT CA USER TOKEN TIMEOUT OUT
      wait until INBOX holds a message with TOKEN in its Subject; fail unless
      exactly one does; write BODY.PEEK[] to OUT; print its FLAGS, then set
      \\Flagged and $Interop, and print the FLAGS a new session sees.

The password is $FACTEUR_DEV_PASSWORD or `facteur`."""
import imaplib
import os
import poplib
import smtplib
import ssl
import sys
import time

PASSWORD = os.environ.get("FACTEUR_DEV_PASSWORD", "facteur")


def context(ca):
    return ssl.create_default_context(cafile=ca)


def send(args):
    host, port, mail_from, rcpt, path = args[:5]
    opts = args[5:]
    with open(path, "rb") as f:
        msg = f.read()
    smtp = smtplib.SMTP(host, int(port), timeout=30)
    smtp.ehlo("client.interop.test")
    if "--starttls" in opts:
        smtp.starttls(context=context(opts[opts.index("--starttls") + 1]))
        smtp.ehlo("client.interop.test")
    if "--auth" in opts:
        smtp.login(opts[opts.index("--auth") + 1], PASSWORD)
    if "--expect-refused" in opts:
        try:
            smtp.sendmail(mail_from, [rcpt], msg)
        except smtplib.SMTPRecipientsRefused as e:
            print(f"ok: refused as expected: {e.recipients}", flush=True)
            return
        print(f"FAIL: {rcpt} was accepted", flush=True)
        sys.exit(1)
    refused = smtp.sendmail(mail_from, [rcpt], msg)
    if refused:
        print(f"FAIL: refused: {refused}", flush=True)
        sys.exit(1)
    smtp.quit()
    print(f"ok: sent {path} to {rcpt} via {host}:{port}", flush=True)


def wait_for(fetch, token, timeout):
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            found = fetch()
            if found:
                return found
            state = "not there yet"
        except (OSError, poplib.error_proto, imaplib.IMAP4.error) as e:
            state = f"error: {e!r}"
        if time.monotonic() > deadline:
            print(f"FAIL: no message with {token}: {state}", flush=True)
            sys.exit(1)
        time.sleep(0.3)


def pop(args):
    host, port, ca, user, token, timeout, out = args
    tok = token.encode()

    def fetch():
        p = poplib.POP3(host, int(port), timeout=30)
        try:
            p.stls(context=context(ca))
            p.user(user)
            p.pass_(PASSWORD)
            n, _ = p.stat()
            msgs = [b"".join(l + b"\r\n" for l in p.retr(i)[1]) for i in range(1, n + 1)]
        finally:
            p.quit()
        return [m for m in msgs if tok in m]

    found = wait_for(fetch, token, timeout)
    if len(found) != 1:
        print(f"FAIL: {len(found)} messages with {token}", flush=True)
        sys.exit(1)
    with open(out, "wb") as f:
        f.write(found[0])
    print(f"ok: {user} has one message with {token}", flush=True)


def imap_session(host, port, ca, user):
    m = imaplib.IMAP4(host, int(port), timeout=30)
    m.starttls(ssl_context=context(ca))
    m.login(user, PASSWORD)
    return m


def flags_of(m, uid):
    typ, data = m.uid("FETCH", uid, "(FLAGS)")
    if typ != "OK":
        raise imaplib.IMAP4.error(f"FETCH FLAGS: {data!r}")
    return b" ".join(imaplib.ParseFlags(data[0])).decode() if data and data[0] else ""


def imap(args):
    host, port, ca, user, token, timeout, out = args

    def fetch():
        m = imap_session(host, port, ca, user)
        try:
            m.select("INBOX")
            typ, data = m.uid("SEARCH", None, "SUBJECT", f'"{token}"')
            if typ != "OK":
                raise imaplib.IMAP4.error(f"SEARCH: {data!r}")
            uids = data[0].split()
            if not uids:
                return None
            if len(uids) != 1:
                print(f"FAIL: {len(uids)} messages with {token}", flush=True)
                sys.exit(1)
            uid = uids[0]
            before = flags_of(m, uid)
            typ, data = m.uid("FETCH", uid, "(BODY.PEEK[])")
            if typ != "OK":
                raise imaplib.IMAP4.error(f"FETCH: {data!r}")
            raw = data[0][1]
            typ, data = m.uid("STORE", uid, "+FLAGS", "(\\Flagged $Interop)")
            if typ != "OK":
                raise imaplib.IMAP4.error(f"STORE: {data!r}")
            return uid, before, raw
        finally:
            m.logout()

    uid, before, raw = wait_for(fetch, token, timeout)
    with open(out, "wb") as f:
        f.write(raw)
    m = imap_session(host, port, ca, user)
    try:
        m.select("INBOX", readonly=True)
        after = flags_of(m, uid)
    finally:
        m.logout()
    print(f"flags before: ({before})", flush=True)
    print(f"flags after: ({after})", flush=True)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    {"send": send, "pop": pop, "imap": imap}[cmd](args)


main()
