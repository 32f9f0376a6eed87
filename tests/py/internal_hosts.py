"""Outbound to internal addresses: pierre, logged in, sends to an address
literal in a private network (refused at RCPT, 550 5.7.1) and to evil.test,
whose MX answer is a private address (taken, then bounced back to pierre
with the reason, never connected to)."""
import smtplib
import uuid

from common import PASSWORD, args, check, pop3_find, tls, wait_for

a = args()
token = uuid.uuid4().hex
smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
smtp.login("pierre@paris.test", PASSWORD)
code, _ = smtp.mail("pierre@paris.test")
check(code == 250, "MAIL")
for literal in ["root@[10.0.0.1]", "root@[169.254.169.254]", "root@[IPv6:fd00::1]"]:
    code, text = smtp.rcpt(literal)
    check(code == 550 and text.startswith(b"5.7.1"), f"{literal} refused at RCPT ({code} {text!r})")
code, text = smtp.rcpt("victim@evil.test")
check(code == 250, f"evil.test taken at RCPT: its MX is looked up at delivery ({code} {text!r})")
msg = (f"From: pierre@paris.test\r\nTo: victim@evil.test\r\nSubject: internal {token}\r\n\r\nhi\r\n").encode()
code, text = smtp.data(msg)
check(code == 250, f"queued ({code} {text!r})")
smtp.quit()


def bounce():
    m = pop3_find(a.paris, "pierre@paris.test", a.ca, token)
    return m if m and b"internal addresses" in m else None


dsn = wait_for("the bounce for evil.test", bounce)
check(b"5.7.1" in dsn and b"10.0.0.1" in dsn, "the bounce names the refused address and 5.7.1")
print("internal hosts refused")
