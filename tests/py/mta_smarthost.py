"""paris.test's MTA sends lyon.test's mail to a smarthost (`transport."lyon.test"
= "smtp:<lyon>:2525"`) while its DNS is dead: delivered without any MX lookup,
over STARTTLS as to an MX."""
import email
import smtplib
import uuid

from common import PASSWORD, args, check, pop3_find, tls, wait_for

a = args()
token = uuid.uuid4().hex
smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
smtp.login("pierre@paris.test", PASSWORD)
refused = smtp.sendmail("pierre@paris.test", ["andre@lyon.test"],
                        f"From: pierre@paris.test\r\nTo: andre@lyon.test\r\nSubject: smarthost {token}\r\n\r\nhi\r\n".encode())
check(refused == {}, "submitted")
smtp.quit()
raw = wait_for("the message reaches andre through the smarthost",
               lambda: pop3_find(a.lyon, "andre@lyon.test", a.ca, token))
received = email.message_from_bytes(raw).get_all("Received") or []
lyon = [r for r in received if "by mail.lyon.test" in r]
check(lyon and "with ESMTPS" in lyon[0], f"lyon took it over TLS ({lyon})")
print("mta_smarthost passed")
