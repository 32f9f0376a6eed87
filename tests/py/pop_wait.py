"""Wait until andre@lyon.test's maildrop holds exactly one message with the token."""

from common import args_with, check, pop3_messages, wait_for

a = args_with(["--token", "--timeout"])


def count():
    return sum(a.token.encode() in m for m in pop3_messages(a.lyon, "andre@lyon.test", a.ca))

found = wait_for("message reaches andre@lyon.test", count, timeout=float(a.timeout))
check(found == 1, f"exactly one copy delivered ({found})")
