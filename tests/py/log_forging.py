"""Log forging: user names holding CR LF (AUTH PLAIN decodes to any bytes; an
IMAP literal may hold any octet) sent to paris's MSA and MAA. Each login is
refused; the test then reads the agents' logs: no line may start with the
forged text."""
import base64
import imaplib
import smtplib

from common import args, check, tls

a = args()
FORGED = "\r\n2026-12-02T00:00:00.000000Z  INFO FORGED-LINE user=admin authenticated"

smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
smtp.ehlo("forger.example")
token = base64.b64encode(f"\0eve{FORGED}\0wrong".encode()).decode()
code, msg = smtp.docmd("AUTH", f"PLAIN {token}")
check(code == 535, f"SMTP AUTH with a CR LF in the name refused ({code} {msg!r})")
smtp.quit()

imap = imaplib.IMAP4(a.paris, 1430)
imap.starttls(ssl_context=tls(a.ca))
name = f"eve{FORGED}".encode()
# LOGIN with the name as a literal ({n}), which may hold CR LF.
tag = imap._new_tag().decode()
imap.send(f"{tag} LOGIN {{{len(name)}}}\r\n".encode())
cont = imap.readline()
check(cont.startswith(b"+"), f"the literal is invited ({cont!r})")
imap.send(name + b" wrong\r\n")
while True:
    line = imap.readline()
    if line.startswith(tag.encode()):
        break
check(b" NO " in line, f"IMAP LOGIN with a CR LF in the name refused ({line!r})")
imap.logout()
print("log forging attempts refused")
