"""For tests/logs.rs: `--mode send` submits one message as pierre@paris.test to
andre@lyon.test with the Message-ID `<TOKEN@client.example>` and waits for it
by POP3; `--mode badauth` tries AUTH PLAIN with a CR/LF inside the username
(AUTH PLAIN decodes to arbitrary bytes: the log line must stay one line)."""
import base64
import smtplib

from common import PASSWORD, args_with, check, pop3_messages, tls, wait_for

a = args_with(["--mode", "--token"])
smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
if a.mode == "send":
    smtp.login("pierre@paris.test", PASSWORD)
    msg = (
        f"From: pierre@paris.test\r\nTo: andre@lyon.test\r\nSubject: {a.token}\r\n"
        f"Message-ID: <{a.token}@client.example>\r\n\r\ntoken {a.token}\r\n"
    )
    refused = smtp.sendmail("pierre@paris.test", ["andre@lyon.test"], msg.encode())
    check(refused == {}, "submitted to andre@lyon.test")
    wait_for(
        "the message in andre's maildrop",
        lambda: any(
            a.token.encode() in m
            for m in pop3_messages(a.lyon, "andre@lyon.test", a.ca)
        ),
    )
    check(True, "delivered to andre@lyon.test")
else:
    smtp.ehlo("client.example")
    user = f"{a.token}\r\n2026-01-01T00:00:00Z  INFO forged: filed"
    blob = base64.b64encode(f"\0{user}\0wrong".encode()).decode()
    code, _ = smtp.docmd("AUTH", "PLAIN " + blob)
    check(code == 535, f"AUTH PLAIN with CR/LF in the username refused ({code})")
smtp.quit()
