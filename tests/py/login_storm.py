"""Login storm: --count IMAP logins (STARTTLS, LOGIN, LOGOUT), --parallel at a
time, each on its own connection; every one must succeed. Counts only, never
timings."""
import imaplib
import sys
from concurrent.futures import ThreadPoolExecutor

from common import PASSWORD, args_with, check, tls

a = args_with(["--count", "--parallel", "--user"])
count, parallel = int(a.count), int(a.parallel)


def login(_):
    try:
        imap = imaplib.IMAP4(a.paris, 1430, timeout=120)
        imap.starttls(ssl_context=tls(a.ca))
        typ, _ = imap.login(a.user, PASSWORD)
        imap.logout()
        return typ == "OK" or f"LOGIN answered {typ}"
    except Exception as e:  # counted below: the test fails on any
        return repr(e)


with ThreadPoolExecutor(max_workers=parallel) as pool:
    results = list(pool.map(login, range(count)))
errors = [r for r in results if r is not True]
check(not errors, f"{count} logins, {parallel} at a time, all succeed ({len(errors)} failed: {errors[:3]})")
print("login storm passed", file=sys.stderr)
