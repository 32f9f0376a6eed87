"""Wait until a maildrop (POP3 with STLS, dev CA) holds exactly `want` messages
carrying one of the tokens, and `total` messages in all if given (`-` = any);
print the counts; fail after the timeout. A login or protocol error is reported
and retried, never taken for an empty maildrop.

usage: count.py HOST USER CA WANT TOTAL TIMEOUT TOKEN..."""
import os
import poplib
import ssl
import sys
import time

PASSWORD = os.environ.get("FACTEUR_DEV_PASSWORD", "facteur")
host, user, ca, want, total, timeout = sys.argv[1:7]
tokens = [t.encode() for t in sys.argv[7:]]


def messages():
    ctx = ssl.create_default_context(cafile=ca)
    pop = poplib.POP3(host, 1100, timeout=30)
    try:
        pop.stls(context=ctx)
        pop.user(user)
        pop.pass_(PASSWORD)
        n, _ = pop.stat()
        return [b"\r\n".join(pop.retr(i)[1]) for i in range(1, n + 1)]
    finally:
        pop.quit()


deadline = time.monotonic() + float(timeout)
while True:
    try:
        msgs = messages()
        n = sum(any(t in m for t in tokens) for m in msgs)
        state = f"{n} of {want} messages with the tokens, {len(msgs)} in all"
        if n == int(want) and total in ("-", str(len(msgs))):
            print(f"ok: {user}: {state}", flush=True)
            sys.exit(0)
    except (OSError, poplib.error_proto) as e:
        state = f"POP3 error: {e!r}"
    if time.monotonic() > deadline:
        print(f"FAIL: {user}: {state} (wanted {want}, total {total})", flush=True)
        sys.exit(1)
    time.sleep(0.3)
