"""Failure throttling in the MDA, across connections: the stack runs with
auth.throttle.ip_failures = 5, user_failures = 8 and a --window of a few
seconds. Each attempt is a new IMAP connection from a chosen source address
(any 127/8 address works on loopback), so the MAA's per-connection limit plays
no part."""
import imaplib
import socket

from common import PASSWORD, args_with, check, tls, wait_for

a = args_with(["--window"])
net = a.paris.rsplit(".", 1)[0]  # 127.N.0


class From(imaplib.IMAP4):
    """IMAP from a given source address."""

    def __init__(self, source):
        self.source = source
        super().__init__(a.paris, 1430, timeout=30)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout, source_address=(self.source, 0))


def login(source, user, password):
    """True if LOGIN succeeds, False if it gets a NO."""
    imap = From(source)
    imap.starttls(ssl_context=tls(a.ca))
    try:
        imap.login(user, password)
        imap.logout()
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            imap.shutdown()
        except OSError:
            pass


attacker = f"{net}.50"
for i in range(5):
    check(not login(attacker, "pierre@paris.test", f"guess-{i}"), f"wrong password {i + 1} from {attacker} refused")
check(not login(attacker, "pierre@paris.test", PASSWORD), "then the right password from that address is refused (IP throttled)")
check(not login(attacker, "jacques@paris.test", PASSWORD), "and so is another user from that address")
check(login(f"{net}.51", "jacques@paris.test", PASSWORD), "the same user from another address gets in")

for i in range(8):
    check(not login(f"{net}.{60 + i}", "jacques@paris.test", f"guess-{i}"), f"wrong password {i + 1} for jacques from {net}.{60 + i}")
check(not login(f"{net}.70", "jacques@paris.test", PASSWORD), "then jacques is refused from a fresh address too (user throttled)")
check(login(f"{net}.70", "pierre@paris.test", PASSWORD), "while another user gets in from that address")

window = float(a.window)
wait_for("the right password from the throttled address works once its window has passed",
         lambda: login(attacker, "pierre@paris.test", PASSWORD), timeout=window * 4 + 30)
wait_for("and jacques gets in again once his window has passed",
         lambda: login(f"{net}.71", "jacques@paris.test", PASSWORD), timeout=window * 4 + 30)
print("throttle passed")
