"""Shared helpers for the end-to-end scripts: addresses from the command line,
TLS contexts that trust the dev CA, and polling with a bounded deadline."""
import argparse
import os
import ssl
import sys
import time

PASSWORD = os.environ.get("FACTEUR_DEV_PASSWORD", "facteur")


def args_with(extra, numbers=None):
    """The stack's addresses, the required `extra` options, and optional
    integer options `numbers` ({"--name": default})."""
    p = argparse.ArgumentParser()
    p.add_argument("--paris", required=True, help="paris.test agents' IP")
    p.add_argument("--lyon", required=True, help="lyon.test agents' IP")
    p.add_argument("--ca", required=True, help="dev CA (var/tls/ca.pem)")
    for name in extra:
        p.add_argument(name, required=True)
    for name, default in (numbers or {}).items():
        p.add_argument(name, type=int, default=default)
    return p.parse_args()


def args():
    return args_with([])


def tls(ca):
    """A client context that verifies the server against the dev CA only."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check(cond, what):
    if not cond:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def wait_for(what, fn, timeout=60.0):
    """Call fn until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            check(False, f"{what} within {timeout:.0f}s")
        time.sleep(0.3)


def pop3_messages(host, user, ca):
    """Every message in `user`'s maildrop as raw bytes (POP3 with STLS), or []
    while the server cannot be reached (agents restarting)."""
    import poplib

    try:
        pop = poplib.POP3(host, 1100, timeout=30)
    except OSError:
        return []
    try:
        pop.stls(context=tls(ca))
        pop.user(user)
        pop.pass_(PASSWORD)
        n, _ = pop.stat()
        return [b"\r\n".join(pop.retr(i)[1]) + b"\r\n" for i in range(1, n + 1)]
    except (OSError, poplib.error_proto):
        return []
    finally:
        try:
            pop.quit()
        except Exception:
            pass


def pop3_find(host, user, ca, token):
    """The first message holding `token`, or None."""
    return next((m for m in pop3_messages(host, user, ca) if token.encode() in m), None)
