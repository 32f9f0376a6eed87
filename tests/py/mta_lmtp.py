"""lyon.test's MTA delivers its own domain over LMTP (`transport."lyon.test" =
"lmtp:..."`) into the MDA's LMTP listener, with no gRPC MDA to fall back on (its
`mda.url` points nowhere). Two recipients in one message: the known one is
delivered and readable over POP3 and IMAP; the unknown one is refused by the
LMTP server and bounces to the sender with that server's 5.1.1."""
import email
import imaplib
import smtplib
import uuid

from common import PASSWORD, args, check, pop3_find, tls, wait_for

a = args()
token = uuid.uuid4().hex
mta = smtplib.SMTP(a.lyon, 2525, timeout=30)
mta.ehlo("mail.paris.test")
mta.mail("pierre@paris.test")
code, msg = mta.rcpt("andre@lyon.test")
check(code == 250, f"port 25 takes a user of the LMTP-routed domain ({code} {msg!r})")
code, msg = mta.rcpt("nobody@lyon.test")
check(code == 250, f"port 25 leaves an unknown user to the LMTP server ({code} {msg!r})")
code, msg = mta.data(f"From: pierre@paris.test\r\nTo: andre@lyon.test, nobody@lyon.test\r\n"
                     f"Subject: lmtp {token}\r\n\r\nover LMTP {token}\r\n".encode())
check(code == 250, f"message queued ({code} {msg!r})")
mta.quit()

raw = wait_for("andre's copy over POP3", lambda: pop3_find(a.lyon, "andre@lyon.test", a.ca, token))
check(f"over LMTP {token}".encode() in raw, "POP3: the body arrived intact")


def imap_copy():
    imap = imaplib.IMAP4(a.lyon, 1430, timeout=30)
    try:
        imap.starttls(ssl_context=tls(a.ca))
        imap.login("andre@lyon.test", PASSWORD)
        imap.select("INBOX", readonly=True)
        typ, data = imap.search(None, "SUBJECT", token)
        ids = data[0].split()
        if typ != "OK" or len(ids) != 1:
            return None
        typ, data = imap.fetch(ids[0], "(BODY.PEEK[])")
        return data[0][1]
    finally:
        imap.logout()


raw = wait_for("andre's copy over IMAP", imap_copy)
check(f"Subject: lmtp {token}".encode() in raw, "IMAP: exactly one copy, with its subject")


def bounce():
    return pop3_find(a.paris, "pierre@paris.test", a.ca, token)


raw = wait_for("the bounce for nobody@lyon.test reaches pierre", bounce)
msg = email.message_from_bytes(raw)
check(msg.get("Return-Path") == "<>", f"the bounce comes from the null sender ({msg.get('Return-Path')})")
status = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
check(len(status) == 1, "one message/delivery-status part")
text = status[0].as_string()
check("Final-Recipient: rfc822; nobody@lyon.test" in text, "names the unknown recipient")
check("andre@lyon.test" not in text, "and not the delivered one")
check("Status: 5.1.1" in text and "Action: failed" in text, "Status 5.1.1, Action failed (the LMTP server's reply)")
print("mta_lmtp passed")
