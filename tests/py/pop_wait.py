"""Wait until andre@lyon.test's maildrop holds exactly one message with the token."""
import poplib

from common import PASSWORD, args_with, check, tls, wait_for

a = args_with(["--token", "--timeout"])


def count():
    pop = poplib.POP3(a.lyon, 1100, timeout=30)
    try:
        pop.stls(context=tls(a.ca))
        pop.user("andre@lyon.test")
        pop.pass_(PASSWORD)
        n, _ = pop.stat()
        found = 0
        for i in range(1, n + 1):
            _, lines, _ = pop.retr(i)
            if any(a.token.encode() in line for line in lines):
                found += 1
        return found
    except (OSError, poplib.error_proto):
        return 0
    finally:
        try:
            pop.quit()
        except Exception:
            pass


found = wait_for("message reaches andre@lyon.test", count, timeout=float(a.timeout))
check(found == 1, f"exactly one copy delivered ({found})")
