"""Disk full on paris.test's MTA queue (a small tmpfs the test mounted).

--phase fill: five submissions to andre@lyon.test are acknowledged (250) while
lyon's MTA is down, so they wait in paris's queue; then the queue's disk is
filled below the reserve, and new mail is refused with a temporary 452 4.3.1,
both over submission (the MSA maps the MTA's status) and on port 25.
--phase recover: (lyon's MTA is back) every acknowledged message arrives
exactly once; the filler is deleted, and new mail is accepted and delivered
again without restarting anything."""
import os
import smtplib

from common import PASSWORD, args_with, check, pop3_messages, tls, wait_for

a = args_with(["--phase", "--token", "--queue-dir", "--reserve"])
filler = os.path.join(a.queue_dir, "filler")
reserve = int(a.reserve)
FIRST = 5


def send(port, sender, to, token, login):
    """One message; (250, "") or the refusal's code and text."""
    smtp = smtplib.SMTP(a.paris, port, timeout=60)
    try:
        if login:
            smtp.starttls(context=tls(a.ca))
            smtp.login(sender, PASSWORD)
        else:
            smtp.ehlo("mx.example.org")
        msg = f"From: {sender}\r\nTo: {to}\r\nSubject: {token}\r\n\r\ntoken {token}\r\n"
        smtp.sendmail(sender, [to], msg.encode())
        return (250, "")
    except smtplib.SMTPResponseException as e:
        return (e.smtp_code, e.smtp_error.decode(errors="replace"))
    finally:
        try:
            smtp.quit()
        except Exception:
            pass


def submit(token, to="andre@lyon.test"):
    return send(5870, "pierre@paris.test", to, token, login=True)


def port25(token, to="jacques@paris.test"):
    return send(2525, "someone@example.org", to, token, login=False)


def free():
    st = os.statvfs(a.queue_dir)
    return st.f_bavail * st.f_frsize


def copies(host, user, token):
    return sum(token.encode() + b"\r\n" in m for m in pop3_messages(host, user, a.ca))


if a.phase == "fill":
    for i in range(FIRST):
        code, text = submit(f"{a.token}-{i}")
        check(code == 250, f"message {i} acknowledged before the disk fills ({code} {text})")
    # Fill the queue's disk to half the reserve.
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as f:
        while free() > reserve // 2:
            n = min(len(chunk), free() - reserve // 2)
            try:
                f.write(chunk[: max(n, 4096)])
                f.flush()
            except OSError:
                break
    check(free() < reserve, f"the queue's disk is below the reserve ({free()} bytes free)")
    code, text = submit(f"{a.token}-refused")
    check(code == 452 and "4.3.1" in text, f"submission refused for now: {code} {text}")
    code, text = port25(f"{a.token}-refused25")
    check(code == 452 and "4.3.1" in text, f"port 25 refused for now: {code} {text}")
elif a.phase == "recover":
    for i in range(FIRST):
        token = f"{a.token}-{i}"
        n = wait_for(f"acknowledged message {i} delivered", lambda: copies(a.lyon, "andre@lyon.test", token), 90)
        check(n == 1, f"message {i} delivered exactly once ({n})")
    check(copies(a.lyon, "andre@lyon.test", f"{a.token}-refused") == 0, "the refused submission was not delivered")
    os.remove(filler)
    code, text = submit(f"{a.token}-after")
    check(code == 250, f"submission accepted once space returns ({code} {text})")
    code, text = port25(f"{a.token}-after25")
    check(code == 250, f"port 25 accepted once space returns ({code} {text})")
    n = wait_for("new submission delivered", lambda: copies(a.lyon, "andre@lyon.test", f"{a.token}-after"), 60)
    check(n == 1, "new submission delivered once")
    n = wait_for("new port-25 message delivered", lambda: copies(a.paris, "jacques@paris.test", f"{a.token}-after25"), 60)
    check(n == 1, "new port-25 message delivered once")
    check(copies(a.paris, "jacques@paris.test", f"{a.token}-refused25") == 0, "the refused port-25 message was not delivered")
print(f"disk_full {a.phase} passed")
