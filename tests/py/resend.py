"""The MTA-to-MTA hop is at-least-once (RFC 1047): a sending MTA that dies
after the 250 but before it records the delivery sends the same message again.
The same envelope and bytes sent twice over port 25 are both answered 250 and
filed once; the same text with another Message-ID is another message."""
import smtplib
import time

from common import args, check, pop3_messages, wait_for

a = args()
token = f"resend-{time.time_ns()}"


def message(msgid):
    return (
        f"From: someone@example.org\r\nTo: andre@lyon.test\r\n"
        f"Message-ID: <{msgid}@example.org>\r\nSubject: {token}\r\n\r\n"
        f"the same message {token}\r\n"
    )


def send(msg):
    mta = smtplib.SMTP(a.lyon, 2525, timeout=30)
    mta.ehlo("mail.example.org")
    refused = mta.sendmail("someone@example.org", ["andre@lyon.test"], msg)
    mta.quit()
    return refused


first = message(f"{token}-1")
check(send(first) == {}, "the first copy is answered 250")
check(send(first) == {}, "the same message resent is answered 250 too")
check(send(message(f"{token}-2")) == {}, "another Message-ID is another message, answered 250")


def copies():
    found = [m for m in pop3_messages(a.lyon, "andre@lyon.test", a.ca) if token.encode() in m]
    return found if len(found) >= 2 else None


found = wait_for("both messages filed", copies)
time.sleep(2)  # let a wrongly queued third copy arrive before counting
found = [m for m in pop3_messages(a.lyon, "andre@lyon.test", a.ca) if token.encode() in m]
ids = sorted(m.split(b"Message-ID: <", 1)[1].split(b"@", 1)[0].decode() for m in found)
check(ids == [f"{token}-1", f"{token}-2"], f"filed once each: {ids}")
