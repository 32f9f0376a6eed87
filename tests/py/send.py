"""Submit one message as pierre@paris.test to the given recipient; print the reply."""
import smtplib

from common import PASSWORD, args_with, check, tls

a = args_with(["--to", "--token"])
smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
smtp.login("pierre@paris.test", PASSWORD)
msg = f"From: pierre@paris.test\r\nTo: {a.to}\r\nSubject: {a.token}\r\n\r\ntoken {a.token}\r\n"
refused = smtp.sendmail("pierre@paris.test", [a.to], msg.encode())
check(refused == {}, f"submitted to {a.to}")
smtp.quit()
