"""The issue's scenario: pierre submits one message (STARTTLS, AUTH PLAIN) to
andre@lyon.test and jacques@paris.test; andre reads it over POP3 (STLS), jacques
over IMAP (STARTTLS). The body must arrive byte-identical (the header gains
trace fields by design), each MTA crossed must have added a Received header, and
the final delivery a Return-Path."""
import email
import imaplib
import smtplib
import uuid

from common import PASSWORD, args, check, pop3_find, tls, wait_for

a = args()
token = uuid.uuid4().hex
body = (
    "Bonjour,\r\n"
    ".a line starting with a dot\r\n"
    "..two dots\r\n"
    "\r\n"
    f"token {token}\r\n"
    "Fin.\r\n"
)
message = (
    "From: Pierre <pierre@paris.test>\r\n"
    "To: Andre <andre@lyon.test>, Jacques <jacques@paris.test>\r\n"
    f"Subject: scenario {token}\r\n"
    "\r\n" + body
)

smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.ehlo("client.example")
check(smtp.has_extn("starttls"), "MSA offers STARTTLS")
check(not smtp.has_extn("auth"), "MSA does not offer AUTH before TLS")
smtp.starttls(context=tls(a.ca))
smtp.ehlo("client.example")
check("PLAIN" in smtp.esmtp_features.get("auth", ""), "MSA offers AUTH PLAIN over TLS")
smtp.login("pierre@paris.test", PASSWORD)  # smtplib picks PLAIN when offered first
refused = smtp.sendmail(
    "pierre@paris.test", ["andre@lyon.test", "jacques@paris.test"], message.encode()
)
check(refused == {}, "both recipients accepted")
smtp.quit()


def split(raw: bytes):
    head, _, rest = raw.partition(b"\r\n\r\n")
    return head.decode("utf-8", "replace"), rest


def check_delivered(raw: bytes, who: str, mtas: list):
    head, got_body = split(raw)
    check(got_body == body.encode(), f"{who}: body byte-identical")
    msg = email.message_from_bytes(raw)
    check(msg.get("Return-Path") == "<pierre@paris.test>", f"{who}: Return-Path <pierre@paris.test>")
    received = msg.get_all("Received") or []
    by_mta = [r for r in received if "(facteur-mta)" in r]
    for host in mtas:
        check(any(f"by {host} (facteur-mta)" in r for r in by_mta), f"{who}: Received by {host}'s MTA")
    check(len(by_mta) == len(mtas), f"{who}: one Received per MTA crossed ({len(mtas)})")
    check(any("(facteur-msa)" in r for r in received), f"{who}: Received by the MSA")
    check(msg.get("Message-ID"), f"{who}: Message-ID added")
    check(msg.get("Date"), f"{who}: Date added")


# andre@lyon.test over POP3 with STLS
def pop_fetch():
    return pop3_find(a.lyon, "andre@lyon.test", a.ca, token)

raw = wait_for("message reaches andre@lyon.test over POP3", pop_fetch)
check_delivered(raw, "andre (POP3)", ["mail.paris.test", "mail.lyon.test"])
lyon_hop = [r for r in email.message_from_bytes(raw).get_all("Received") if "by mail.lyon.test" in r][0]
check(f"[{a.paris}]" in lyon_hop, f"lyon's MTA names paris's address as the sender: {lyon_hop!r}")
check("with ESMTPS" in lyon_hop, "the MTA-to-MTA hop was encrypted (STARTTLS)")


# jacques@paris.test over IMAP with STARTTLS
def imap_fetch():
    imap = imaplib.IMAP4(a.paris, 1430, timeout=30)
    try:
        imap.starttls(ssl_context=tls(a.ca))
        imap.login("jacques@paris.test", PASSWORD)
        typ, data = imap.select("INBOX")
        check(typ == "OK", "IMAP SELECT INBOX")
        n = int(data[0])
        for i in range(1, n + 1):
            typ, data = imap.fetch(str(i), "(BODY.PEEK[])")
            check(typ == "OK", f"IMAP FETCH {i}")
            raw = data[0][1]
            if token.encode() in raw:
                return raw
        return None
    finally:
        try:
            imap.logout()
        except Exception:
            pass


raw = wait_for("message reaches jacques@paris.test over IMAP", imap_fetch)
check_delivered(raw, "jacques (IMAP)", ["mail.paris.test"])
print("scenario passed")
