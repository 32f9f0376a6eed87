"""IMAP through imapclient (PyPI), the library many sync tools and scripts use,
as pierre@paris.test over IMAPS (dev CA): special folders found by role,
folder management, APPEND/COPY/MOVE with UIDPLUS, SEARCH with a UTF-8
criterion, parsed ENVELOPE and BODYSTRUCTURE of a nested multipart with a
message/rfc822 part, CONDSTORE FETCH CHANGEDSINCE, and IDLE: one session
IDLEs on INBOX while another APPENDs, flags and expunges, and a message
submitted to the MSA arrives; each shows up under IDLE without polling."""
import re
import smtplib
import time
from email import policy
from email.message import EmailMessage

from imapclient import imapclient
from imapclient import IMAPClient

from common import PASSWORD, args, check, tls
from imapwire import IMAPS, build, raw, utc, with_attachment

a = args()
USER = "pierre@paris.test"


def session():
    c = IMAPClient(a.paris, port=IMAPS, ssl=True, ssl_context=tls(a.ca), timeout=30)
    c.login(USER, PASSWORD)
    return c


c = session()
caps = set(c.capabilities())
for cap in [b"IDLE", b"UIDPLUS", b"MOVE", b"SPECIAL-USE", b"CONDSTORE", b"ENABLE"]:
    check(cap in caps, f"imapclient sees {cap.decode()} ({sorted(caps)})")

# ---- folders
folders = {name: set(flags) for flags, _, name in c.list_folders()}
for name in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]:
    check(name in folders, f"list_folders shows {name}: {sorted(folders)}")
for role, name in [(imapclient.SENT, "Sent"), (imapclient.DRAFTS, "Drafts"), (imapclient.TRASH, "Trash"),
                   (imapclient.JUNK, "Junk"), (imapclient.ARCHIVE, "Archive")]:
    check(c.find_special_folder(role) == name, f"find_special_folder({role.decode()}) is {name}")
check(c.namespace().personal[0][1] == "/", f"NAMESPACE: personal delimiter /: {c.namespace()}")
c.create_folder("Clients/Été")  # imapclient encodes modified UTF-7 itself
names = [n for _, _, n in c.list_folders()]
check("Clients/Été" in names and "Clients" in names, f"a nested non-ASCII folder round-trips: {names}")
c.subscribe_folder("Clients/Été")
check("Clients/Été" in [n for _, _, n in c.list_sub_folders()], "it is subscribed")
c.rename_folder("Clients/Été", "Clients/Hiver")
check(c.folder_exists("Clients/Hiver") and not c.folder_exists("Clients/Été"), "rename_folder")
c.delete_folder("Clients/Hiver")
c.delete_folder("Clients")
check(not c.folder_exists("Clients"), "delete_folder")

# ---- APPEND (a client saving sent mail and a draft), COPY, MOVE
status = c.folder_status("Sent", [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"])
sent = build("sent by pierre", USER, "jacques@paris.test", utc(2024, 5, 5), "a copy of what I sent\n")
reply = c.append("Sent", raw(sent), flags=[imapclient.SEEN], msg_time=utc(2024, 5, 5))
check(reply.startswith(f"[APPENDUID {status[b'UIDVALIDITY']} ".encode()), f"APPEND to Sent: {reply}")
sent_uid = int(reply.split()[2].rstrip(b"]"))
check(sent_uid >= status[b"UIDNEXT"], f"the new UID is at least the old UIDNEXT: {sent_uid} {status}")
reply = c.append("Drafts", raw(build("unfinished", USER, "x@example.org", utc(2024, 5, 6), "draft\n")),
                 flags=[imapclient.DRAFT])
check(b"APPENDUID" in reply, f"APPEND to Drafts: {reply}")
c.select_folder("Drafts")
check([set(f) - {imapclient.RECENT} for f in c.get_flags(c.search()).values()] == [{imapclient.DRAFT}],
      "the draft keeps \\Draft")

# The nested message: multipart/mixed of (multipart/alternative of text and
# html), an attached message/rfc822, and a PDF with a non-ASCII name.
inner = build("inner subject", "inner@example.org", "x@example.org", utc(2024, 1, 2), "inner body\n")
outer = EmailMessage(policy=policy.SMTP)
outer["From"] = "Zoé <zoe@example.org>"
outer["To"] = USER
outer["Subject"] = "Réunion"
outer["Date"] = "Tue, 02 Jan 2024 10:00:00 +0100"
outer["Message-ID"] = "<nested@imap.test>"
outer.set_content("plain version\n")
outer.add_alternative("<p>html version</p>\n", subtype="html")
outer.add_attachment(inner)
with_attachment(outer)
c.select_folder("INBOX")
reply = c.append("INBOX", raw(outer))
nested_uid = int(reply.split()[2].rstrip(b"]"))
data = c.fetch([nested_uid], ["ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[1.2]", "BODY.PEEK[2.HEADER]"])[nested_uid]
env = data[b"ENVELOPE"]
sent_subject = re.search(rb"^Subject: ([^\r\n]*)", raw(outer), re.M).group(1)
check(env.subject == sent_subject, f"ENVELOPE subject is the header as sent ({sent_subject}): {env.subject}")
check(env.message_id == b"<nested@imap.test>", f"ENVELOPE message-id: {env.message_id}")
check([(x.mailbox, x.host) for x in env.from_] == [(b"zoe", b"example.org")], f"ENVELOPE from: {env.from_}")
check(env.date is not None and env.date.year == 2024 and env.date.hour in (9, 10), f"ENVELOPE date: {env.date}")
bs = data[b"BODYSTRUCTURE"]
check(bs.is_multipart and bs[1].upper() == b"MIXED", f"BODYSTRUCTURE multipart/mixed: {bs}")
parts = bs[0]
check(len(parts) == 3, f"three parts: {parts}")
alt = parts[0]
check(alt.is_multipart and alt[1].upper() == b"ALTERNATIVE", f"part 1 is multipart/alternative: {alt}")
check([(p[0].upper(), p[1].upper()) for p in alt[0]] == [(b"TEXT", b"PLAIN"), (b"TEXT", b"HTML")],
      f"text/plain and text/html inside: {alt[0]}")
msg = parts[1]
check((msg[0].upper(), msg[1].upper()) == (b"MESSAGE", b"RFC822"), f"part 2 is message/rfc822: {msg}")
# message/rfc822 fields: ..., size, ENVELOPE, BODYSTRUCTURE, lines
check(msg[7][1] == b"inner subject", f"the attached message's envelope: {msg[7]}")
check((msg[8][0].upper(), msg[8][1].upper()) == (b"TEXT", b"PLAIN"), f"and its body structure: {msg[8]}")
pdf = parts[2]
check((pdf[0].upper(), pdf[1].upper(), pdf[5].upper()) == (b"APPLICATION", b"PDF", b"BASE64"), f"part 3: {pdf}")
check(b"html version" in data[b"BODY[1.2]"], f"BODY[1.2] is the html: {data[b'BODY[1.2]']!r}")
check(b"Subject: inner subject" in data[b"BODY[2.HEADER]"], "BODY[2.HEADER] is the attached message's header")

# SEARCH with a UTF-8 criterion (imapclient sends it as a literal)
check(c.search(["SUBJECT", "Réunion"], charset="UTF-8") == [nested_uid], "SEARCH CHARSET UTF-8 SUBJECT Réunion")
check(c.search(["FROM", "zoe"]) == [nested_uid], "SEARCH FROM zoe")

# imapclient's UID COPY/MOVE hand back no response text: the COPYUID code is
# in its imaplib connection's response codes.
c._imap.response("COPYUID")
c.copy([nested_uid], "Archive")
code = c._imap.response("COPYUID")[1]
check(len(code) == 1 and code[0].split()[1] == str(nested_uid).encode(), f"COPY answers COPYUID: {code}")
c.move([nested_uid], "Trash")
code = c._imap.response("COPYUID")[1]
check(len(code) == 1 and code[0].split()[1] == str(nested_uid).encode(), f"MOVE answers COPYUID: {code}")
check(c.search() == [], "MOVE took the message out of INBOX")
check(c.folder_status("Trash", [b"MESSAGES"])[b"MESSAGES"] == 1, "MOVE put it in Trash")

# ---- CONDSTORE through imapclient: FETCH ... (CHANGEDSINCE n)
c.append("Archive", raw(build("archived", USER, USER, utc(2024, 5, 7), "kept\n")))
c.unselect_folder()  # ENABLE is for the authenticated state (RFC 5161)
check(c.enable("CONDSTORE") == [b"CONDSTORE"], "ENABLE CONDSTORE")
info = c.select_folder("Archive")
high = info[b"HIGHESTMODSEQ"]
uids = c.search()
c.add_flags(uids[:1], [b"$Seen-by-script"])
changed = c.fetch(uids, ["FLAGS"], modifiers=[f"CHANGEDSINCE {high}"])
check(len(uids) == 2 and list(changed) == uids[:1] and b"$Seen-by-script" in changed[uids[0]][b"FLAGS"],
      f"FETCH CHANGEDSINCE {high} gives the one changed message: {changed}")
check(changed[uids[0]][b"MODSEQ"][0] > high, "with a MODSEQ above the old HIGHESTMODSEQ")
c.logout()

# ---- IDLE: A waits on INBOX; B changes it; A hears each change at once.
idle = session()
exists = idle.select_folder("INBOX")[b"EXISTS"]
idle.idle()
b = session()


def heard(kind, timeout):
    """The untagged responses A gets under IDLE until one is `kind` (bounded)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        for r in idle.idle_check(timeout=max(0.1, deadline - time.monotonic())):
            seen.append(r)
            if len(r) >= 2 and r[1] == kind:
                return r, seen
    check(False, f"under IDLE, a {kind.decode()} within {timeout}s (heard {seen})")


reply = b.append("INBOX", raw(build("idle one", "b@example.org", USER, utc(2024, 9, 1), "appended\n")))
r, _ = heard(b"EXISTS", 10)
check(r[0] == exists + 1, f"APPEND in another session: A hears * {exists + 1} EXISTS ({r})")
b.select_folder("INBOX")
uid = b.search(["SUBJECT", "idle one"])
b.add_flags(uid, [imapclient.FLAGGED])
r, _ = heard(b"FETCH", 10)
check(b"\\Flagged" in dict(zip(r[2][::2], r[2][1::2])).get(b"FLAGS", ()), f"a flag change: A hears FETCH FLAGS ({r})")
b.add_flags(uid, [imapclient.DELETED])
b.uid_expunge(uid)
r, _ = heard(b"EXPUNGE", 10)
check(r[0] == exists + 1, f"an expunge in another session: A hears * {exists + 1} EXPUNGE ({r})")
b.logout()

smtp = smtplib.SMTP(a.paris, 5870, timeout=30)
smtp.starttls(context=tls(a.ca))
smtp.login("jacques@paris.test", PASSWORD)
smtp.sendmail("jacques@paris.test", [USER], raw(build("idle delivery", "jacques@paris.test", USER,
                                                        utc(2024, 9, 2), "delivered under IDLE\n")))
smtp.quit()
r, _ = heard(b"EXISTS", 30)
check(r[0] == exists + 1, f"a message submitted to the MSA: A hears * {exists + 1} EXISTS ({r})")
idle.idle_done()
idle.use_uid = False
got = idle.fetch([r[0]], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
check(b"idle delivery" in got[r[0]][b"BODY[HEADER.FIELDS (SUBJECT)]"], "and it is the submitted message")
idle.logout()
print("imap_client passed")
