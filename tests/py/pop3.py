"""POP3 as RFC 1939 says: CAPA before and after STLS, STAT/LIST/UIDL/RETR/TOP,
DELE only takes effect at QUIT (not when the connection drops, not after RSET),
UIDs stay stable, and the maildrop is locked while a session is open."""
import poplib
import smtplib
import socket

from common import PASSWORD, args, check, pop3_messages, tls, wait_for

a = args()

# Three messages for andre, straight to lyon's MTA on port 25.
smtp = smtplib.SMTP(a.lyon, 2525, timeout=30)
for i in range(1, 4):
    smtp.sendmail("someone@example.org", ["andre@lyon.test"],
                  f"Subject: pop3 test {i}\r\n\r\nbody {i}\r\n.starts with a dot\r\n".encode())
smtp.quit()


def session():
    pop = poplib.POP3(a.lyon, 1100, timeout=30)
    pop.stls(context=tls(a.ca))
    pop.user("andre@lyon.test")
    pop.pass_(PASSWORD)
    return pop


def count():
    pop = session()
    try:
        return pop.stat()[0] >= 3
    finally:
        pop.quit()


wait_for("three messages in andre's maildrop", count)

pop = poplib.POP3(a.lyon, 1100, timeout=30)
caps = pop.capa()
check("STLS" in caps and "USER" not in caps, f"CAPA before TLS offers STLS, not USER: {sorted(caps)}")
pop.stls(context=tls(a.ca))
caps = pop.capa()
check("USER" in caps and "UIDL" in caps and "TOP" in caps and "STLS" not in caps, f"CAPA after TLS: {sorted(caps)}")
pop.user("andre@lyon.test")
pop.pass_(PASSWORD)
n, size = pop.stat()
check(n == 3, f"STAT counts 3 messages ({n} {size})")
_, listing, _ = pop.list()
sizes = [int(line.split()[1]) for line in listing]
check(sum(sizes) == size, "LIST sizes add up to STAT")
_, uidls, _ = pop.uidl()
uids = [line.split()[1] for line in uidls]
check(len(set(uids)) == 3, "UIDL gives 3 distinct ids")
_, lines, octets = pop.retr(2)
check(b"body 2" in lines and b".starts with a dot" in lines, "RETR 2 returns the message, dot-unstuffed")
check(octets >= sizes[1], "RETR size matches LIST")
_, top, _ = pop.top(3, 0)
check(any(l.startswith(b"Subject: pop3 test 3") for l in top) and b"body 3" not in top, "TOP 3 0 gives the header only")

# The maildrop is locked while this session is open.
other = poplib.POP3(a.lyon, 1100, timeout=30)
other.stls(context=tls(a.ca))
other.user("andre@lyon.test")
try:
    other.pass_(PASSWORD)
    check(False, "a second session is refused while the maildrop is locked")
except poplib.error_proto as e:
    check("IN-USE" in str(e), f"second session refused: {e}")
other.close()

# DELE then RSET: nothing deleted.
pop.dele(1)
check(pop.stat()[0] == 2, "DELE hides the message in this session")
pop.rset()
check(pop.stat()[0] == 3, "RSET undeletes")
# DELE then drop the connection without QUIT: nothing deleted (RFC 1939 §6).
pop.dele(1)
pop.sock.shutdown(socket.SHUT_RDWR)
pop.sock.close()

def unlocked_stat():
    try:
        p = session()
    except poplib.error_proto:
        return None
    return p

pop = wait_for("the lock is released when the connection drops", unlocked_stat, timeout=30)
check(pop.stat()[0] == 3, "a dropped connection deletes nothing")
# DELE then QUIT: gone for good, and the other UIDs are unchanged.
pop.dele(1)
pop.quit()
pop = session()
check(pop.stat()[0] == 2, "DELE + QUIT removes the message")
_, uidls2, _ = pop.uidl()
check([l.split()[1] for l in uidls2] == uids[1:], "remaining UIDL ids are unchanged")
pop.quit()

# Pipelining (RFC 2449 PIPELINING): three large RETRs in one write all come back,
# in order, complete. Each is over the server's 256 KiB output high-water mark,
# so the server writes one response at a time instead of queueing all three.
big = [f"Subject: big {i}\r\n\r\n".encode() + (f"line {i} ".encode() * 40 + b"\r\n") * 1100 for i in range(3)]
smtp = smtplib.SMTP(a.lyon, 2525, timeout=30)
for m in big:
    smtp.sendmail("someone@example.org", ["andre@lyon.test"], m)
smtp.quit()
wait_for("the big messages arrive", lambda: len(pop3_messages(a.lyon, "andre@lyon.test", a.ca)) >= 5)
raw = socket.create_connection((a.lyon, 1100), timeout=30)
f = raw.makefile("rb")
f.readline()
raw.sendall(b"STLS\r\n")
check(f.readline().startswith(b"+OK"), "STLS")
sock = tls(a.ca).wrap_socket(raw, server_hostname=a.lyon)
f = sock.makefile("rb")
sock.sendall(f"USER andre@lyon.test\r\nPASS {PASSWORD}\r\n".encode())
check(f.readline().startswith(b"+OK") and f.readline().startswith(b"+OK"), "logged in")
sock.sendall(b"RETR 3\r\nRETR 4\r\nRETR 5\r\nNOOP\r\n")
for i in range(3):
    check(f.readline().startswith(b"+OK"), f"RETR {i + 3} answered")
    body = []
    while (line := f.readline()) != b".\r\n":
        body.append(line)
    got = b"".join(body)  # trace fields come first, then the message as sent
    check(got.startswith(b"Return-Path:") and got.endswith(big[i]), f"big message {i} complete ({len(got)} bytes)")
check(f.readline().startswith(b"+OK"), "NOOP after the pipelined RETRs")
sock.sendall(b"QUIT\r\n")
print("pop3 passed")
