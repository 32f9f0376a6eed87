"""LMTP into the MDA (RFC 2033), as Postfix's lmtp transport would deliver: LHLO,
unknown users refused at RCPT with 550 5.1.1, and after the data one reply per
accepted recipient, in RCPT order. Then the message is readable over IMAP."""
import imaplib
import socket
import uuid

from common import PASSWORD, args, check, tls

a = args()
s = socket.create_connection((a.paris, 2400), timeout=15)
f = s.makefile("rb")


def reply():
    lines = []
    while True:
        line = f.readline().rstrip(b"\r\n")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return lines


check(reply()[-1].startswith(b"220"), "LMTP greeting")
s.sendall(b"EHLO wrong.example\r\n")
check(reply()[-1][:1] == b"5", "EHLO refused on LMTP (LHLO is the greeting)")
s.sendall(b"LHLO postfix.example\r\n")
check(reply()[-1].startswith(b"250"), "LHLO accepted")
token = uuid.uuid4().hex
s.sendall(b"MAIL FROM:<someone@example.org>\r\n")
check(reply()[-1].startswith(b"250"), "MAIL")
for rcpt, want in [(b"pierre@paris.test", b"250"), (b"nobody@paris.test", b"550 5.1.1"), (b"jacques@paris.test", b"250")]:
    s.sendall(b"RCPT TO:<" + rcpt + b">\r\n")
    r = reply()[-1]
    check(r.startswith(want), f"RCPT {rcpt.decode()}: {r!r}")
s.sendall(b"DATA\r\n")
check(reply()[-1].startswith(b"354"), "DATA")
s.sendall(f"Subject: lmtp {token}\r\n\r\nvia LMTP\r\n.\r\n".encode())
first, second = reply()[-1], reply()[-1]
check(first.startswith(b"250") and b"pierre@paris.test" in first, f"first reply is pierre's: {first!r}")
check(second.startswith(b"250") and b"jacques@paris.test" in second, f"second reply is jacques's: {second!r}")
# The same transaction again, as a client that lost the replies resends it:
# answered 250 for each recipient, filed once.
s.sendall(b"MAIL FROM:<someone@example.org>\r\nRCPT TO:<pierre@paris.test>\r\nRCPT TO:<jacques@paris.test>\r\nDATA\r\n")
check([reply()[-1][:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"], "the resent transaction is taken")
s.sendall(f"Subject: lmtp {token}\r\n\r\nvia LMTP\r\n.\r\n".encode())
again = [reply()[-1], reply()[-1]]
check(all(r.startswith(b"250") for r in again), f"the resent message is acknowledged for both: {again!r}")
s.sendall(b"QUIT\r\n")
check(reply()[-1].startswith(b"221"), "QUIT")

imap = imaplib.IMAP4(a.paris, 1430, timeout=30)
imap.starttls(ssl_context=tls(a.ca))
imap.login("jacques@paris.test", PASSWORD)
imap.select("INBOX")
typ, data = imap.search(None, "ALL")
found, copies = False, 0
for n in data[0].split():
    typ, msg = imap.fetch(n, "(BODY.PEEK[])")
    if token.encode() in msg[0][1]:
        found = msg[0][1]
        copies += 1
check(copies == 1, f"the message sent twice is filed once ({copies} copies)")
check(found and found.startswith(b"Return-Path: <someone@example.org>\r\n"), "filed with its Return-Path, readable over IMAP")
imap.logout()
print("lmtp passed")
