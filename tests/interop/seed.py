"""Send raw messages by plain SMTP (no AUTH) to a domain's MTA on port 2525.

usage: seed.py HOST RCPT FILE...   (each FILE is one message, CRLF line ends,
already dot-safe: smtplib does the dot-stuffing). Prints one line per message."""
import smtplib
import sys

host, rcpt, files = sys.argv[1], sys.argv[2], sys.argv[3:]
smtp = smtplib.SMTP(host, 2525, timeout=30)
smtp.ehlo("interop.test")
for path in files:
    with open(path, "rb") as f:
        msg = f.read()
    refused = smtp.sendmail("sender@interop.test", [rcpt], msg)
    if refused:
        print(f"FAIL: {path} refused: {refused}", flush=True)
        sys.exit(1)
    print(f"ok: {path} queued for {rcpt}", flush=True)
smtp.quit()
