"""The MSA relaying to an SMTP next hop (the paris MTA's port 2525), and the MSA
and MAA checking passwords against a passwd-file. One mode per test:

deliver  pierre submits to jacques and to an unknown user: the unknown one is
         refused at RCPT with the next hop's 5xx, jacques gets the message once,
         with the MSA's fixes (Received by facteur-msa, Message-ID, no Bcc).
down     the next hop is down: MAIL is answered 451, nothing is delivered.
passwd   --user/--password are right for the passwd-file, --wrong is not: SMTP
         AUTH 235/535, IMAP LOGIN OK/NO [AUTHENTICATIONFAILED], POP3 +OK/-ERR.
"""
import argparse
import base64
import imaplib
import poplib
import re
import smtplib
import time

from common import PASSWORD, check, pop3_messages, tls, wait_for

p = argparse.ArgumentParser()
for name in ["--paris", "--lyon", "--ca", "--mode"]:
    p.add_argument(name, required=True)
for name in ["--token", "--user", "--password", "--wrong"]:
    p.add_argument(name, default="")
a = p.parse_args()


def submit_session(user=None, password=None):
    smtp = smtplib.SMTP(a.paris, 5870, timeout=60)
    smtp.starttls(context=tls(a.ca))
    smtp.login(user or "pierre@paris.test", password or PASSWORD)
    return smtp


def message(token):
    return (
        f"From: pierre@paris.test\r\nTo: jacques@paris.test\r\n"
        f"Bcc: hidden@paris.test\r\nSubject: hop {token}\r\n\r\n"
        f".leading dot\r\ntoken {token}\r\n"
    ).encode()


def carrying(token):
    return [m for m in pop3_messages(a.paris, "jacques@paris.test", a.ca) if token.encode() in m]


if a.mode == "deliver":
    smtp = submit_session()
    code, _ = smtp.mail("pierre@paris.test")
    check(code == 250, f"MAIL accepted through the next hop ({code})")
    code, text = smtp.rcpt("nobody@paris.test")
    check(500 <= code < 600, f"unknown recipient refused with the next hop's 5xx ({code} {text!r})")
    code, _ = smtp.rcpt("jacques@paris.test")
    check(code == 250, f"jacques accepted ({code})")
    code, text = smtp.data(message(a.token))
    check(code == 250, f"message accepted after the next hop's 250 ({code} {text!r})")
    smtp.quit()
    got = wait_for("the message in jacques' maildrop", lambda: carrying(a.token))
    time.sleep(1)
    got = carrying(a.token)
    check(len(got) == 1, f"delivered exactly once ({len(got)})")
    m = got[0]
    head = m.split(b"\r\n\r\n", 1)[0]
    check(b"facteur-msa" in head, "the MSA's Received header is there")
    # The MSA's own says ESMTPSA (authenticated client); the MTA's, ESMTPS.
    check(re.search(rb"with ESMTPS(?!A)", head), "the next hop took it over TLS (ESMTPS)")
    check(b"\r\nMessage-ID:" in head or head.startswith(b"Message-ID:"), "Message-ID added")
    check(b"\r\nDate:" in head, "Date added")
    check(b"hidden@paris.test" not in m, "Bcc removed")
    check(b"\r\n.leading dot\r\n" in m, "dot-stuffing undone end to end")
elif a.mode == "down":
    smtp = submit_session()
    code, text = smtp.mail("pierre@paris.test")
    check(code == 451, f"next hop down: MAIL answered 451 ({code} {text!r})")
    check(b"4.4.1" in text, "with 4.4.1")
    try:
        refused = smtp.sendmail("pierre@paris.test", ["jacques@paris.test"], message(a.token))
        check(False, f"sendmail did not fail ({refused})")
    except smtplib.SMTPSenderRefused as e:
        check(e.smtp_code == 451, f"sendmail refused with 451 ({e.smtp_code})")
    smtp.quit()
    time.sleep(2)
    check(carrying(a.token) == [], "nothing delivered")
elif a.mode == "passwd":
    user, password, wrong = a.user, a.password, a.wrong
    # SMTP AUTH on the MSA.
    smtp = smtplib.SMTP(a.paris, 5870, timeout=60)
    smtp.starttls(context=tls(a.ca))
    smtp.ehlo()
    code, _ = smtp.docmd("AUTH", "PLAIN " + base64.b64encode(
        f"\0{user}\0{wrong}".encode()).decode())
    check(code == 535, f"MSA: wrong password refused ({code})")
    code, _ = smtp.login(user, password)
    check(code == 235, f"MSA: passwd-file password accepted ({code})")
    smtp.quit()
    # IMAP LOGIN on the MAA.
    imap = imaplib.IMAP4(a.paris, 1430)
    imap.starttls(ssl_context=tls(a.ca))
    try:
        imap.login(user, wrong)
        check(False, "IMAP: wrong password accepted")
    except imaplib.IMAP4.error as e:
        check("AUTHENTICATIONFAILED" in str(e), f"IMAP: wrong password NO [AUTHENTICATIONFAILED] ({e})")
    imap.logout()
    imap = imaplib.IMAP4(a.paris, 1430)
    imap.starttls(ssl_context=tls(a.ca))
    typ, _ = imap.login(user, password)
    check(typ == "OK", "IMAP: passwd-file password accepted")
    typ, _ = imap.select("INBOX")
    check(typ == "OK", "IMAP: INBOX served by the MDA")
    imap.logout()
    # POP3 USER/PASS on the MAA.
    pop = poplib.POP3(a.paris, 1100, timeout=30)
    pop.stls(context=tls(a.ca))
    pop.user(user)
    try:
        pop.pass_(wrong)
        check(False, "POP3: wrong password accepted")
    except poplib.error_proto as e:
        check(str(e).startswith("b'-ERR"), f"POP3: wrong password -ERR ({e})")
    pop.quit()
    pop = poplib.POP3(a.paris, 1100, timeout=30)
    pop.stls(context=tls(a.ca))
    pop.user(user)
    reply = pop.pass_(password)
    check(reply.startswith(b"+OK"), f"POP3: passwd-file password accepted ({reply!r})")
    pop.stat()
    pop.quit()
else:
    check(False, f"unknown mode {a.mode}")
