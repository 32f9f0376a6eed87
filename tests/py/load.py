"""Load through both domains at once: parallel port-25 sessions (to each
domain's MTA, for its local users) and parallel authenticated submissions
(pierre@paris.test → andre@lyon.test and andre@lyon.test → pierre@paris.test,
across the two MTAs), every session sending many messages. Every accepted
message is filed exactly once in its mailbox (counted over IMAP), with UIDs
distinct and ascending; a hang fails on the deadline. Counts only, never
timings."""
import collections
import imaplib
import smtplib
import threading
import time
import uuid

from common import PASSWORD, args_with, check, tls

a = args_with([], {"--smtp-sessions": 4, "--smtp-each": 25, "--submit-sessions": 4,
                   "--submit-each": 25, "--deadline": 240})
run = uuid.uuid4().hex[:8]
start = time.monotonic()
errors = []
# mailbox -> tokens sent to it
sent = collections.defaultdict(list)
lock = threading.Lock()


def remaining():
    return max(5.0, a.deadline - (time.monotonic() - start))


def session(kind, n, each):
    if kind == "smtp":
        # Another MTA's port-25 session, to one domain's MTA for its own user.
        host, port = (a.lyon, "andre@lyon.test") if n % 2 == 0 else (a.paris, "jacques@paris.test")
        sender, rcpt = f"peer{n}@example.org", port
        smtp = smtplib.SMTP(host, 2525, timeout=remaining())
        smtp.ehlo(f"mx{n}.example.org")
    else:
        # A user submitting to the other domain (relayed MTA → MTA).
        if n % 2 == 0:
            host, sender, rcpt = a.paris, "pierre@paris.test", "andre@lyon.test"
        else:
            host, sender, rcpt = a.lyon, "andre@lyon.test", "pierre@paris.test"
        smtp = smtplib.SMTP(host, 5870, timeout=remaining())
        smtp.starttls(context=tls(a.ca))
        smtp.login(sender, PASSWORD)
    for i in range(each):
        token = f"load-{run}-{kind}{n}-{i}"
        msg = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: {token}\r\n\r\n{token}\r\n".encode()
        smtp.sendmail(sender, [rcpt], msg)
        with lock:
            sent[rcpt].append(token)
    smtp.quit()


def worker(kind, n, each):
    try:
        session(kind, n, each)
    except Exception as e:  # reported below, the test fails on any
        errors.append(f"{kind} session {n}: {e!r}")


threads = [threading.Thread(target=worker, args=("smtp", n, a.smtp_each)) for n in range(a.smtp_sessions)]
threads += [threading.Thread(target=worker, args=("submit", n, a.submit_each)) for n in range(a.submit_sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join(remaining())
check(not any(t.is_alive() for t in threads), "every session finished before the deadline")
check(not errors, f"every message accepted ({len(errors)} errors: {errors[:3]})")
total = sum(len(v) for v in sent.values())
check(total == a.smtp_sessions * a.smtp_each + a.submit_sessions * a.submit_each, f"{total} messages accepted")
print(f"accepted {total} messages in {time.monotonic() - start:.0f}s", flush=True)

HOSTS = {"andre@lyon.test": a.lyon, "jacques@paris.test": a.paris, "pierre@paris.test": a.paris}


def mailbox(user, want):
    """(uids, subjects) of this run's messages once at least `want` are in:
    one login, then the INBOX is examined again each second until the deadline."""
    imap = imaplib.IMAP4(HOSTS[user], 1430, timeout=remaining())
    try:
        imap.starttls(ssl_context=tls(a.ca))
        imap.login(user, PASSWORD)
        while True:
            _, data = imap.select("INBOX", readonly=True)
            if int(data[0]) >= want:
                _, data = imap.fetch("1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                items = [d for d in data if isinstance(d, tuple)]
                uids = [int(d[0].split(b"UID ")[1].split()[0]) for d in items]
                subjects = [d[1].decode().strip()[len("Subject: "):] for d in items]
                mine = [s for s in subjects if s.startswith(f"load-{run}-")]
                if len(mine) >= want:
                    return uids, mine
            if remaining() <= 5.0:
                check(False, f"{want} messages reach {user} before the deadline ({int(data[0])} in)")
            time.sleep(1)
    finally:
        try:
            imap.logout()
        except Exception:
            pass


for user, tokens in sorted(sent.items()):
    uids, got = mailbox(user, len(tokens))
    extra = collections.Counter(got) - collections.Counter(tokens)
    missing = collections.Counter(tokens) - collections.Counter(got)
    check(not extra and not missing, f"{user}: each of {len(tokens)} messages exactly once "
          f"(twice or unknown: {list(extra)[:3]}, missing: {list(missing)[:3]})")
    check(len(set(uids)) == len(uids) and uids == sorted(uids), f"{user}: UIDs distinct and ascending")
print(f"load passed in {time.monotonic() - start:.0f}s")
