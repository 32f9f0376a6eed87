"""Who may relay through paris.test's port 25: a client from a trusted network
(`--trusted` is an address inside `[smtp] trusted_networks`), and a client that
authenticated after STARTTLS; a client from anywhere else is refused with
554 5.7.1, and AUTH is neither offered nor taken before STARTTLS."""
import base64
import email
import smtplib
import uuid

from common import PASSWORD, args_with, check, pop3_find, tls, wait_for

a = args_with(["--trusted", "--untrusted"])


def mta(source):
    s = smtplib.SMTP(a.paris, 2525, timeout=30, source_address=(source, 0))
    s.ehlo("client.example")
    return s


def message(token):
    return (f"From: someone@example.org\r\nTo: andre@lyon.test\r\nSubject: relay {token}\r\n\r\n"
            f"relayed {token}\r\n").encode()


def received_of(token):
    raw = wait_for(f"{token} reaches andre", lambda: pop3_find(a.lyon, "andre@lyon.test", a.ca, token))
    return email.message_from_bytes(raw).get_all("Received") or []


# Trusted network: relays without AUTH.
token = uuid.uuid4().hex
s = mta(a.trusted)
s.mail("someone@example.org")
code, msg = s.rcpt("andre@lyon.test")
check(code == 250, f"trusted network: a remote recipient is accepted ({code} {msg!r})")
code, msg = s.data(message(token))
check(code == 250, f"trusted network: queued for relay ({code} {msg!r})")
s.quit()
received = received_of(token)
paris = [r for r in received if "by mail.paris.test" in r]
check(paris and f"[{a.trusted}]" in paris[0] and "with ESMTP id" in " ".join(paris[0].split()),
      f"paris's Received names the trusted client, plain ESMTP ({paris})")

# Untrusted source address: no relay, and no AUTH before STARTTLS.
s = mta(a.untrusted)
check(not s.has_extn("auth"), "AUTH is not offered before STARTTLS")
plain = base64.b64encode(f"\0pierre@paris.test\0{PASSWORD}".encode()).decode()
code, msg = s.docmd("AUTH", f"PLAIN {plain}")
check(code >= 500, f"AUTH before STARTTLS is refused ({code} {msg!r})")
s.mail("someone@example.org")
code, msg = s.rcpt("andre@lyon.test")
check(code == 554 and b"5.7.1" in msg, f"untrusted client: relaying refused with 554 5.7.1 ({code} {msg!r})")
code, msg = s.rcpt("pierre@paris.test")
check(code == 250, f"untrusted client: a local recipient is still taken ({code} {msg!r})")
s.rset()

# After STARTTLS: AUTH is offered; a wrong password is 535, still no relay.
s.starttls(context=tls(a.ca))
s.ehlo("client.example")
check(s.has_extn("auth") and "PLAIN" in s.esmtp_features["auth"].upper()
      and "LOGIN" in s.esmtp_features["auth"].upper(), f"AUTH PLAIN LOGIN offered after STARTTLS ({s.esmtp_features.get('auth')})")
try:
    s.login("pierre@paris.test", "wrong")
    check(False, "a wrong password is refused")
except smtplib.SMTPAuthenticationError as e:
    check(e.smtp_code == 535, f"wrong password: 535 ({e.smtp_code} {e.smtp_error!r})")
s.mail("someone@example.org")
code, msg = s.rcpt("andre@lyon.test")
check(code == 554 and b"5.7.1" in msg, f"failed AUTH: still no relay ({code} {msg!r})")
s.quit()

# AUTH LOGIN with the right password, then relay.
token = uuid.uuid4().hex
s = mta(a.untrusted)
s.starttls(context=tls(a.ca))
s.ehlo("client.example")
s.user, s.password = "pierre@paris.test", PASSWORD
code, msg = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
check(code == 235, f"AUTH LOGIN with the dev password ({code} {msg!r})")
s.mail("pierre@paris.test")
code, msg = s.rcpt("andre@lyon.test")
check(code == 250, f"authenticated: a remote recipient is accepted ({code} {msg!r})")
code, msg = s.data(message(token))
check(code == 250, f"authenticated: queued for relay ({code} {msg!r})")
s.quit()
received = received_of(token)
paris = [r for r in received if "by mail.paris.test" in r]
check(paris and "with ESMTPSA" in paris[0] and f"[{a.untrusted}]" in paris[0],
      f"paris's Received says ESMTPSA ({paris})")
print("mta_relay passed")
