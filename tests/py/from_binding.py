"""The MSA binds From: to the login and drops a client's Return-Path. pierre,
logged in, sends three messages to andre: From: jacques (refused 553 5.7.1 at
the end of the data, never delivered), From: himself with a forged
Return-Path and Received (delivered: one Return-Path, the envelope's; the
client's Received kept, below the agents' own), From: contact@paris.test, an
alias the test configured (delivered)."""
import smtplib
import uuid

from common import PASSWORD, args, check, pop3_find, tls, wait_for

a = args()
token = uuid.uuid4().hex


def submit(from_header, tag, extra=""):
    smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
    smtp.starttls(context=tls(a.ca))
    smtp.login("pierre@paris.test", PASSWORD)
    msg = (f"{extra}From: {from_header}\r\nTo: andre@lyon.test\r\n"
           f"Subject: {tag} {token}\r\n\r\nhello\r\n").encode()
    try:
        smtp.sendmail("pierre@paris.test", ["andre@lyon.test"], msg)
        return 250, b""
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error
    finally:
        smtp.quit()


code, text = submit("Jacques <jacques@paris.test>", "forged")
check(code == 553 and text.startswith(b"5.7.1"), f"From: jacques refused ({code} {text!r})")
code, _ = submit("Pierre <pierre@paris.test>", "own",
                 extra="Return-Path: <evil@attacker.example>\r\n"
                       "Received: from fake.example by trusted.example; Wed, 2 Dec 2026 00:00:00 +0000\r\n")
check(code == 250, f"From: pierre accepted ({code})")
code, _ = submit("contact@paris.test", "alias")
check(code == 250, f"From: an alias of pierre accepted ({code})")

own = wait_for("the message from pierre", lambda: pop3_find(a.lyon, "andre@lyon.test", a.ca, f"own {token}"))
head = own.split(b"\r\n\r\n", 1)[0]
rp = [l for l in head.split(b"\r\n") if l.lower().startswith(b"return-path:")]
check(rp == [b"Return-Path: <pierre@paris.test>"], f"one Return-Path, the envelope's: {rp!r}")
received = [l for l in head.split(b"\r\n") if l.lower().startswith(b"received:")]
check(received and b"fake.example" in received[-1], f"the client's Received kept, last: {received!r}")
wait_for("the message from the alias", lambda: pop3_find(a.lyon, "andre@lyon.test", a.ca, f"alias {token}"))
# Sent before the two that arrived: had it been taken it would be there.
check(pop3_find(a.lyon, "andre@lyon.test", a.ca, f"forged {token}") is None, "the forged From: was not delivered")
print("from binding passed")
