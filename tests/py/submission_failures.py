"""What the MSA must never turn into mail: a DATA the client abandons halfway,
and a message it refuses (bare LF). Both are streamed to the MTA as they arrive,
so the MTA must queue nothing without the MSA's end marker. A control message
sent afterwards arrives; the other two never do."""
import imaplib
import smtplib
import socket
import uuid

from common import PASSWORD, args, check, tls, wait_for

a = args()
run = uuid.uuid4().hex


def authed():
    smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
    smtp.starttls(context=tls(a.ca))
    smtp.login("pierre@paris.test", PASSWORD)
    return smtp


# 1. Abandoned mid-DATA: the client vanishes after half a message.
smtp = authed()
smtp.mail("pierre@paris.test")
smtp.rcpt("jacques@paris.test")
code, _ = smtp.docmd("DATA")
check(code == 354, "DATA accepted")
smtp.send(f"Subject: aborted-{run}\r\n\r\n".encode() + b"x" * 200_000)
smtp.sock.shutdown(socket.SHUT_RDWR)
smtp.sock.close()

# 2. Refused: a bare LF inside the message.
smtp = authed()
smtp.mail("pierre@paris.test")
smtp.rcpt("jacques@paris.test")
code, _ = smtp.docmd("DATA")
check(code == 354, "DATA accepted")
smtp.send(f"Subject: bare-{run}\r\n\r\nline one\nline two\r\n.\r\n".encode())
code, msg = smtp.getreply()
check(code == 554, f"bare LF refused ({code} {msg!r})")

# 3. Control, on the same session: this one is complete.
smtp.rset()
refused = smtp.sendmail("pierre@paris.test", ["jacques@paris.test"],
                        f"Subject: control-{run}\r\n\r\nfine\r\n".encode())
check(refused == {}, "control message accepted")
smtp.quit()


def subjects():
    imap = imaplib.IMAP4(a.paris, 1430, timeout=30)
    try:
        imap.starttls(ssl_context=tls(a.ca))
        imap.login("jacques@paris.test", PASSWORD)
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [d[1] for d in data if isinstance(d, tuple)]
    except imaplib.IMAP4.error:
        return []
    finally:
        try:
            imap.logout()
        except Exception:
            pass


got = wait_for("the control message arrives", lambda: (lambda s: s if any(f"control-{run}".encode() in x for x in s) else None)(subjects()))
check(not any(f"aborted-{run}".encode() in x for x in got), "the abandoned message was never delivered")
check(not any(f"bare-{run}".encode() in x for x in got), "the refused message was never delivered")
print("submission failures passed")
