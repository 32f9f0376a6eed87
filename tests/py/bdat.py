"""CHUNKING (RFC 3030): BDAT on the MTA's port 25. Chunks are taken by length,
never dot-stuffed, so lines like "." and ".." arrive as sent; BDAT before RCPT
is refused; an empty last chunk (BDAT 0 LAST) completes a message; a bare LF
or bare CR in BDAT content is refused with 554 5.6.0, as DATA refuses it, and
that message is never delivered."""
import socket
import uuid

from common import args, check, pop3_find, wait_for

a = args()
token = uuid.uuid4().hex
part1 = f"Subject: bdat {token}\r\n\r\nfirst line\r\n.\r\n".encode()
part2 = b"..two dots\r\n.x\r\nlast line\r\n"

s = socket.create_connection((a.lyon, 2525), timeout=15)
f = s.makefile("rb")


def reply():
    while True:
        line = f.readline()
        if len(line) < 4 or line[3:4] != b"-":
            return line.rstrip(b"\r\n")


def ehlo():
    s.sendall(b"EHLO sender.example\r\n")
    lines = []
    while True:
        line = f.readline().rstrip(b"\r\n")
        lines.append(line[4:])
        if line[3:4] != b"-":
            return lines


reply()
check(b"CHUNKING" in ehlo(), "the MTA offers CHUNKING")
s.sendall(b"MAIL FROM:<someone@example.org>\r\nBDAT 5 LAST\r\nhello")
check(reply().startswith(b"250"), "MAIL")
r = reply()
check(r.startswith(b"503"), f"BDAT before RCPT refused, its bytes skipped: {r!r}")
s.sendall(b"RSET\r\n")
check(reply().startswith(b"250"), "RSET: in sync after the refused chunk")

s.sendall(b"MAIL FROM:<someone@example.org>\r\nRCPT TO:<andre@lyon.test>\r\n")
check(reply().startswith(b"250") and reply().startswith(b"250"), "MAIL, RCPT")
s.sendall(b"BDAT %d\r\n" % len(part1) + part1)
r = reply()
check(r.startswith(b"250"), f"first chunk: {r!r}")
s.sendall(b"BDAT %d LAST\r\n" % len(part2) + part2)
r = reply()
check(r.startswith(b"250 2.0.0 Ok: queued"), f"last chunk queues the message: {r!r}")

for name, chunks in [
    ("bare-lf", [f"Subject: bare-lf {token}\r\n\r\nline\nMAIL FROM:<x@y>\r\n".encode()]),
    ("bare-cr", [f"Subject: bare-cr {token}\r\n\r\nab\r".encode(), b"x\r\n"]),
]:
    s.sendall(b"MAIL FROM:<someone@example.org>\r\nRCPT TO:<andre@lyon.test>\r\n")
    check(reply().startswith(b"250") and reply().startswith(b"250"), "MAIL, RCPT")
    replies = []
    for i, c in enumerate(chunks):
        last = b" LAST" if i + 1 == len(chunks) else b""
        s.sendall(b"BDAT %d%s\r\n" % (len(c), last) + c)
        replies.append(reply())
    check(replies[-1].startswith(b"554 5.6.0"), f"{name}: refused as DATA refuses it: {replies!r}")
    s.sendall(b"NOOP\r\n")
    check(reply().startswith(b"250"), f"{name}: the session goes on in sync")
s.sendall(b"MAIL FROM:<someone@example.org>\r\nRCPT TO:<andre@lyon.test>\r\n")
check(reply().startswith(b"250") and reply().startswith(b"250"), "MAIL, RCPT")
body = f"Subject: empty-last {token}\r\n\r\nx\r\n".encode()
s.sendall(b"BDAT %d\r\n" % len(body) + body + b"BDAT 0 LAST\r\n")
check(reply().startswith(b"250"), "chunk")
r = reply()
check(r.startswith(b"250 2.0.0 Ok: queued"), f"BDAT 0 LAST completes the message: {r!r}")
s.sendall(b"QUIT\r\n")
reply()

raw = wait_for("the BDAT message arrives", lambda: pop3_find(a.lyon, "andre@lyon.test", a.ca, f"bdat {token}"))
check(raw.endswith(part1 + part2), "delivered byte for byte, dots untouched")
wait_for("the second BDAT message arrives", lambda: pop3_find(a.lyon, "andre@lyon.test", a.ca, f"empty-last {token}"))
# Sent before the empty-last message in the same session, which has
# arrived: had they been queued they would be there too.
for name in ["bare-lf", "bare-cr"]:
    check(pop3_find(a.lyon, "andre@lyon.test", a.ca, f"{name} {token}") is None, f"{name}: nothing delivered")
print("bdat passed")
