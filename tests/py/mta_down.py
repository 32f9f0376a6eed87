"""With the MTA down the MSA cannot queue, so it must not say 250: the recipient
check fails with a transient 451 4.4.1 and the client keeps its message."""
import smtplib

from common import PASSWORD, args, check, tls

a = args()
smtp = smtplib.SMTP(a.paris, 5870, timeout=60)
smtp.starttls(context=tls(a.ca))
smtp.login("pierre@paris.test", PASSWORD)
try:
    smtp.sendmail("pierre@paris.test", ["andre@lyon.test"], b"Subject: x\r\n\r\nx\r\n")
    check(False, "submission with the MTA down must not be accepted")
except smtplib.SMTPRecipientsRefused as e:
    code, msg = e.recipients["andre@lyon.test"]
    check(code == 451 and b"4.4.1" in msg, f"transient refusal at RCPT ({code} {msg!r})")
print("mta down passed")
