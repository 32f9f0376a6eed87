"""Shared helpers for the end-to-end scripts: addresses from the command line,
TLS contexts that trust the dev CA, and polling with a bounded deadline."""
import argparse
import os
import ssl
import sys
import time

PASSWORD = os.environ.get("FACTEUR_DEV_PASSWORD", "facteur")


def args_with(extra):
    p = argparse.ArgumentParser()
    p.add_argument("--paris", required=True, help="paris.test agents' IP")
    p.add_argument("--lyon", required=True, help="lyon.test agents' IP")
    p.add_argument("--ca", required=True, help="dev CA (var/tls/ca.pem)")
    for name in extra:
        p.add_argument(name, required=True)
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
