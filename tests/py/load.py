"""Concurrency: 4 clients submit 25 messages each at the same time, every one to
andre@lyon.test (across domains) and jacques@paris.test (same domain). Every
message arrives exactly once in each mailbox, with distinct UIDs. Counts only,
never timings."""
import imaplib
import smtplib
import threading
import uuid

from common import PASSWORD, args, check, pop3_messages, tls, wait_for

a = args()
run = uuid.uuid4().hex[:8]
CLIENTS, EACH = 4, 25
errors = []


def client(n):
    try:
        smtp = smtplib.SMTP(a.paris, 5870, timeout=60)
        smtp.starttls(context=tls(a.ca))
        smtp.login("pierre@paris.test", PASSWORD)
        for i in range(EACH):
            token = f"load-{run}-{n}-{i}"
            msg = f"Subject: {token}\r\n\r\n{token}\r\n".encode()
            refused = smtp.sendmail("pierre@paris.test", ["andre@lyon.test", "jacques@paris.test"], msg)
            if refused:
                errors.append(f"{token}: {refused}")
        smtp.quit()
    except Exception as e:  # reported below, the test fails on any
        errors.append(f"client {n}: {e!r}")


threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check(not errors, f"every submission accepted ({errors[:3]})")
want = {f"load-{run}-{n}-{i}" for n in range(CLIENTS) for i in range(EACH)}


def tokens(messages):
    out = []
    for m in messages:
        for line in m.split(b"\r\n"):
            if line.startswith(b"Subject: load-"):
                out.append(line[len(b"Subject: "):].decode())
    return out


def andre():
    got = tokens(pop3_messages(a.lyon, "andre@lyon.test", a.ca))
    return got if len(got) >= len(want) else None


got = wait_for("all messages reach andre over POP3", andre, timeout=120)
check(sorted(got) == sorted(want), f"andre: each of {len(want)} messages exactly once ({len(got)} received)")


def jacques():
    imap = imaplib.IMAP4(a.paris, 1430, timeout=30)
    try:
        imap.starttls(ssl_context=tls(a.ca))
        imap.login("jacques@paris.test", PASSWORD)
        typ, data = imap.select("INBOX", readonly=True)
        if int(data[0]) < len(want):
            return None
        _, data = imap.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        items = [d for d in data if isinstance(d, tuple)]
        uids = [int(d[0].split(b"UID ")[1].split()[0]) for d in items]
        subjects = [d[1].decode().strip()[len("Subject: "):] for d in items]
        return uids, subjects
    finally:
        imap.logout()


uids, subjects = wait_for("all messages reach jacques over IMAP", jacques, timeout=120)
check(sorted(subjects) == sorted(want), f"jacques: each of {len(want)} messages exactly once")
check(len(set(uids)) == len(uids) and uids == sorted(uids), "UIDs distinct and ascending in sequence order")
print("load passed")
