"""A message to a user lyon.test does not have: the MSA accepts it (it cannot
know lyon's users), lyon's MTA refuses it with 550 5.1.1, and paris's MTA sends
pierre a delivery status notification (RFC 3464) from the null sender."""
import email
import smtplib
import uuid

from common import PASSWORD, args, check, pop3_find, tls, wait_for

a = args()
token = uuid.uuid4().hex
smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
smtp.login("pierre@paris.test", PASSWORD)
refused = smtp.sendmail("pierre@paris.test", ["nobody@lyon.test"],
                        f"From: pierre@paris.test\r\nTo: nobody@lyon.test\r\nSubject: {token}\r\n\r\nhello\r\n".encode())
check(refused == {}, "the MSA accepts a remote recipient it cannot check")
smtp.quit()


def bounce():
    return pop3_find(a.paris, "pierre@paris.test", a.ca, token)

raw = wait_for("the bounce reaches pierre", bounce)
msg = email.message_from_bytes(raw)
check(msg.get("Return-Path") == "<>", f"bounce comes from the null sender ({msg.get('Return-Path')})")
check(msg.get("From", "").startswith("Mail Delivery System <MAILER-DAEMON@mail.paris.test>"), f"From: {msg.get('From')}")
check(msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "delivery-status",
      "a multipart/report; report-type=delivery-status")
status = [p for p in msg.walk() if p.get_content_type() == "message/delivery-status"]
check(len(status) == 1, "one message/delivery-status part")
text = status[0].as_string()
check("Final-Recipient: rfc822; nobody@lyon.test" in text, "names the failed recipient")
check("Status: 5.1.1" in text and "Action: failed" in text, "Status 5.1.1, Action failed")
headers = [p for p in msg.walk() if p.get_content_type() == "text/rfc822-headers"]
check(headers and token in headers[0].as_string(), "returns the original headers")
print("bounce passed")
