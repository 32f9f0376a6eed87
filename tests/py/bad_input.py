"""Hostile input on every listener gets the protocol's error, never a hang or a
crash: overlong lines (500 5.5.2), unknown commands (500 5.5.1 / -ERR / BAD), too
many errors (421, closed), and SMTP smuggling (a bare-LF "end of data" never ends
the message, CVE-2023-51764/5/6) on port 25."""
import socket

from common import args, check, pop3_messages, wait_for

a = args()


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=15)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.s.recv(4096)
            if not data:
                raise EOFError("closed")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def reply(self):
        """One SMTP reply (last line of a multi-line one)."""
        while True:
            line = self.line()
            if len(line) < 4 or line[3:4] != b"-":
                return line

    def send(self, data):
        self.s.sendall(data)

    def closed(self):
        try:
            while True:
                if not self.s.recv(4096):
                    return True
        except (ConnectionResetError, socket.timeout):
            return False


# SMTP on the MTA's port 25
c = Conn(a.lyon, 2525)
check(c.reply().startswith(b"220 "), "MTA greets with 220")
c.send(b"EHLO evil.example\r\n")
check(c.reply().startswith(b"250 "), "EHLO accepted")
c.send(b"X" * 5000 + b"\r\n")
r = c.reply()
check(r.startswith(b"500 5.5.2"), f"overlong line: {r!r}")
c.send(b"FROBNICATE\r\n")
r = c.reply()
check(r.startswith(b"500 5.5.1"), f"unknown command: {r!r}")
c.send(b"NOOP\r\n")
check(c.reply().startswith(b"250"), "still in sync after the bad lines")

# Smuggling: a bare-LF dot must not end the message, and the bytes after it must
# never be taken as commands (they would queue a second, forged message).
c.send(b"MAIL FROM:<someone@example.org>\r\n")
check(c.reply().startswith(b"250"), "MAIL accepted")
c.send(b"RCPT TO:<andre@lyon.test>\r\n")
check(c.reply().startswith(b"250"), "RCPT accepted")
c.send(b"DATA\r\n")
check(c.reply().startswith(b"354"), "DATA accepted")
c.send(
    b"Subject: first\r\n\r\nhello\n.\n"
    b"MAIL FROM:<forged@example.org>\r\nRCPT TO:<andre@lyon.test>\r\nDATA\r\n"
    b"Subject: smuggled\r\n\r\nforged\r\n.\r\n"
)
r = c.reply()
check(r.startswith(b"554 5.6.0"), f"message with a bare LF refused as a whole: {r!r}")
c.send(b"NOOP\r\n")
check(c.reply().startswith(b"250"), "session in sync after the refused message")
# A control message after the attempt: once it has arrived, anything queued before
# it (a smuggled message) would have arrived too.
c.send(b"MAIL FROM:<someone@example.org>\r\nRCPT TO:<andre@lyon.test>\r\nDATA\r\n")
check(c.reply().startswith(b"250") and c.reply().startswith(b"250"), "control MAIL/RCPT")
check(c.reply().startswith(b"354"), "control DATA")
c.send(b"Subject: control-after-smuggling\r\n\r\ncontrol\r\n.\r\n")
check(c.reply().startswith(b"250"), "control message queued")
c.send(b"QUIT\r\n")
check(c.reply().startswith(b"221"), "QUIT")

# A mail loop: more Received fields than max_hops (50) is refused (RFC 5321 §6.3).
c = Conn(a.lyon, 2525)
c.reply()
c.send(b"EHLO loop.example\r\nMAIL FROM:<someone@example.org>\r\nRCPT TO:<andre@lyon.test>\r\nDATA\r\n")
for want in (b"250", b"250", b"250", b"354"):
    check(c.reply().startswith(want), f"loop transaction: {want.decode()}")
c.send(b"".join(b"Received: from hop%d by hop%d; date\r\n" % (i, i + 1) for i in range(51))
       + b"Subject: looping\r\n\r\nround and round\r\n.\r\n")
r = c.reply()
check(r.startswith(b"554 5.4.6"), f"51 hops refused as a loop: {r!r}")
c.send(b"QUIT\r\n")
c.reply()

# Too many errors: the server closes with 421.
c = Conn(a.lyon, 2525)
c.reply()
last = b""
for _ in range(30):
    try:
        c.send(b"BOGUS\r\n")
        last = c.reply()
    except (EOFError, BrokenPipeError, ConnectionResetError):
        break
    if last.startswith(b"421"):
        break
check(last.startswith(b"421"), f"too many errors: {last!r}")
check(c.closed(), "connection closed after 421")

# Submission refuses MAIL before AUTH and AUTH before TLS.
c = Conn(a.paris, 5870)
c.reply()
c.send(b"EHLO x\r\nAUTH PLAIN AHBpZXJyZUBwYXJpcy50ZXN0AGZhY3RldXI=\r\n")
c.reply()
r = c.reply()
check(r.startswith(b"538 5.7.11"), f"AUTH without TLS refused: {r!r}")
c.send(b"MAIL FROM:<pierre@paris.test>\r\n")
r = c.reply()
check(r.startswith(b"530 5.7.0"), f"MAIL without AUTH: {r!r}")
c.send(b"STARTTLS\r\nNOOP\r\n")
try:
    r = c.reply()
    closed = c.closed()
except EOFError:
    closed = True
check(closed, "STARTTLS with pipelined plaintext closes the connection (CVE-2011-0411)")

# POP3
c = Conn(a.lyon, 1100)
check(c.line().startswith(b"+OK"), "POP3 greeting")
c.send(b"FROB\r\n")
check(c.line().startswith(b"-ERR"), "POP3 unknown command gets -ERR")
c.send(b"USER andre@lyon.test\r\n")
r = c.line()
check(r.startswith(b"-ERR"), f"POP3 USER before STLS refused: {r!r}")
c.send(b"A" * 5000 + b"\r\n")
check(c.line().startswith(b"-ERR"), "POP3 overlong line gets -ERR")
c.send(b"QUIT\r\n")
check(c.line().startswith(b"+OK"), "POP3 QUIT")

# POP3: a connection that keeps sending garbage is closed.
c = Conn(a.lyon, 1100)
c.line()
c.send(b"FROB\r\n" * 12)
replies = []
try:
    while True:
        replies.append(c.line())
except (EOFError, ConnectionResetError):
    pass
check(replies and b"Too many errors" in replies[-1], f"POP3 closes after too many errors: {replies[-1:]!r}")

# IMAP
c = Conn(a.paris, 1430)
check(c.line().startswith(b"* OK"), "IMAP greeting")
c.send(b"a1 FROBNICATE\r\n")
r = c.line()
check(b"BAD" in r, f"IMAP unknown command gets BAD: {r!r}")
c.send(b"a2 LOGIN jacques@paris.test facteur\r\n")
r = c.line()
check(r.startswith(b"a2 NO") or r.startswith(b"a2 BAD"), f"IMAP LOGIN before STARTTLS refused: {r!r}")
c.send(b"a3 LOGOUT\r\n")
r = c.line()
check(r.startswith(b"* BYE"), "IMAP LOGOUT")

# The control message arrives; the smuggled one never does.
def subjects():
    return [m.split(b"\r\n\r\n")[0] for m in pop3_messages(a.lyon, "andre@lyon.test", a.ca)]

heads = wait_for("the control message arrives", lambda: [h for h in subjects() if b"control-after-smuggling" in h] and subjects())
check(not any(b"smuggled" in h for h in heads), "the smuggled message was never delivered")
check(not any(b"Subject: first" in h for h in heads), "the message with the bare LF was not delivered")
print("bad input passed")
