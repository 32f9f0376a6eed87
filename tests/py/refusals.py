"""Wrong passwords and unknown recipients, on every protocol: 535 5.7.8 from the
MSA, -ERR from POP3, NO from IMAP; 550 5.1.1 for an unknown user at RCPT time on
the MSA and on the MTA's port 25; and port 25 is no open relay."""
import imaplib
import poplib
import smtplib

from common import PASSWORD, args, check, tls

a = args()

smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
smtp.ehlo("client.example")
try:
    smtp.login("pierre@paris.test", "wrong")
    check(False, "SMTP AUTH with a wrong password is refused")
except smtplib.SMTPAuthenticationError as e:
    check(e.smtp_code == 535 and b"5.7.8" in e.smtp_error, f"SMTP wrong password: {e.smtp_code} {e.smtp_error!r}")
code, msg = smtp.mail("pierre@paris.test")
check(code == 530, f"MAIL without AUTH refused with 530 ({code} {msg!r})")
smtp.close()

smtp = smtplib.SMTP_SSL(a.paris, 4650, timeout=30, context=tls(a.ca))
smtp.ehlo("client.example")
smtp.user, smtp.password = "pierre@paris.test", PASSWORD
code, msg = smtp.auth("LOGIN", smtp.auth_login)
check(code == 235, f"AUTH LOGIN over implicit TLS ({code} {msg!r})")
code, _ = smtp.mail("pierre@paris.test")
check(code == 250, "implicit-TLS submission on 4650 accepts MAIL after AUTH")
code, msg = smtp.rcpt("nobody@paris.test")
check(code == 550 and b"5.1.1" in msg, f"MSA: unknown local user refused with 550 5.1.1 ({code} {msg!r})")
code, msg = smtp.rcpt("nobody@lyon.test")
check(code == 250, f"MSA: a remote recipient is accepted for relay ({code})")
smtp.quit()

mta = smtplib.SMTP(a.lyon, 2525, timeout=30)
mta.ehlo("mail.example.org")
mta.mail("someone@example.org")
code, msg = mta.rcpt("nobody@lyon.test")
check(code == 550 and b"5.1.1" in msg, f"MTA: unknown user refused with 550 5.1.1 ({code} {msg!r})")
code, msg = mta.rcpt("postmaster")
check(code == 250, f"MTA: <postmaster> is always accepted, RFC 5321 §4.5.1 ({code} {msg!r})")
code, msg = mta.rcpt("someone@elsewhere.example")
check(code == 554 and b"5.7.1" in msg, f"MTA: relaying refused with 554 5.7.1 ({code} {msg!r})")
mta.quit()

pop = poplib.POP3(a.lyon, 1100, timeout=30)
pop.stls(context=tls(a.ca))
pop.user("andre@lyon.test")
try:
    pop.pass_("wrong")
    check(False, "POP3 PASS with a wrong password is refused")
except poplib.error_proto as e:
    check(str(e).startswith("b'-ERR"), f"POP3 wrong password: {e}")
pop.close()

imap = imaplib.IMAP4(a.paris, 1430, timeout=30)
imap.starttls(ssl_context=tls(a.ca))
try:
    imap.login("jacques@paris.test", "wrong")
    check(False, "IMAP LOGIN with a wrong password is refused")
except imaplib.IMAP4.error as e:
    # imaplib raises a NO as its bare text, a BAD as "LOGIN command error: BAD ...".
    check(str(e).startswith("b'[AUTHENTICATIONFAILED]"), f"IMAP wrong password gets NO [AUTHENTICATIONFAILED]: {e}")
imap.shutdown()
print("refusals passed")
