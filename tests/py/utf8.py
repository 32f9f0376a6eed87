"""Internationalised mail (RFC 6531 SMTPUTF8, RFC 6152 8BITMIME): UTF-8 headers
and an 8-bit body cross both MTAs and arrive byte for byte."""
import smtplib
import uuid

from common import PASSWORD, args, check, pop3_find, tls, wait_for

a = args()
token = uuid.uuid4().hex
body = "Grüße aus Paris, ça va ? 日本語\r\n".encode()
message = f"From: Pierre <pierre@paris.test>\r\nTo: André <andre@lyon.test>\r\nSubject: Café ☕ {token}\r\n\r\n".encode() + body

smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
smtp.ehlo()
check(smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime"), "MSA offers SMTPUTF8 and 8BITMIME")
smtp.login("pierre@paris.test", PASSWORD)
refused = smtp.sendmail("pierre@paris.test", ["andre@lyon.test"], message,
                        mail_options=["SMTPUTF8", "BODY=8BITMIME"])
check(refused == {}, "accepted with SMTPUTF8 and BODY=8BITMIME")
smtp.quit()


def fetch():
    return pop3_find(a.lyon, "andre@lyon.test", a.ca, token)

raw = wait_for("the message reaches andre", fetch)
check(f"Subject: Café ☕ {token}\r\n".encode() in raw, "UTF-8 subject intact")
check("To: André <andre@lyon.test>\r\n".encode() in raw, "UTF-8 display name intact")
check(raw.endswith(b"\r\n\r\n" + body), "8-bit body byte for byte")
print("utf8 passed")
