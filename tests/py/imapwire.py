"""What the IMAP scripts share: the messages they APPEND (built with the email
package), a parser for the parenthesised data imaplib hands back unparsed
(FETCH items, ENVELOPE, BODYSTRUCTURE, response codes), sequence-set helpers,
and an imaplib session over IMAPS that trusts the dev CA."""
import email.utils
import imaplib
import re
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage

from common import PASSWORD, check, tls

IMAPS = 9930

# The attachment of the multipart message: every byte value, NULs included, so
# BINARY must come back as a literal8 with exactly these bytes.
ATTACHMENT = bytes(range(256)) * 12
ATTACHMENT_NAME = "résumé.pdf"


def connect(host, ca, user="jacques@paris.test"):
    imap = imaplib.IMAP4_SSL(host, IMAPS, ssl_context=tls(ca), timeout=30)
    typ, _ = imap.login(user, PASSWORD)
    check(typ == "OK", f"LOGIN {user} over IMAPS")
    return imap


def build(subject, sender, to, date, body, cc=None, bcc=None, extra=None):
    """A text/plain message, CRLF line ends."""
    m = EmailMessage(policy=policy.SMTP)
    m["From"] = sender
    m["To"] = to
    if cc:
        m["Cc"] = cc
    if bcc:
        m["Bcc"] = bcc
    m["Subject"] = subject
    m["Date"] = email.utils.format_datetime(date)
    m["Message-ID"] = email.utils.make_msgid(domain="imap.test")
    for k, v in (extra or {}).items():
        m[k] = v
    m.set_content(body)
    return m


def with_attachment(m, data=ATTACHMENT, name=ATTACHMENT_NAME):
    m.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return m


def raw(m):
    return m.as_bytes(policy=policy.SMTP)


def utc(y, mo, d, h=12):
    return datetime(y, mo, d, h, 0, 0, tzinfo=timezone.utc)


def internal(dt):
    """An APPEND date-time argument for imaplib."""
    return imaplib.Time2Internaldate(dt)


# ---- a parser for IMAP data (RFC 9051 §4): atoms, numbers, NIL, quoted
# strings, literals and literal8, parenthesised lists; `[...]` and `<n>` stay
# part of the atom they belong to (BODY[HEADER.FIELDS (SUBJECT)] is one item).


class Parser:
    def __init__(self, data):
        self.s = data
        self.i = 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i : self.i + 1] in (b" ", b"\r", b"\n"):
            self.i += 1

    def value(self):
        self.ws()
        c = self.s[self.i : self.i + 1]
        if c == b"(":
            self.i += 1
            out = []
            while True:
                self.ws()
                if self.s[self.i : self.i + 1] == b")":
                    self.i += 1
                    return out
                if self.i >= len(self.s):
                    raise ValueError(f"unclosed list in {self.s!r}")
                out.append(self.value())
        if c == b'"':
            self.i += 1
            out = bytearray()
            while True:
                ch = self.s[self.i : self.i + 1]
                if ch == b"\\":
                    out += self.s[self.i + 1 : self.i + 2]
                    self.i += 2
                elif ch == b'"':
                    self.i += 1
                    return bytes(out)
                elif not ch:
                    raise ValueError(f"unclosed quoted string in {self.s!r}")
                else:
                    out += ch
                    self.i += 1
        m = re.compile(rb"~?\{(\d+)\+?\}\r\n").match(self.s, self.i)
        if m:
            n = int(m.group(1))
            start = m.end()
            self.i = start + n
            return self.s[start : start + n]
        # an atom: up to a space or a closing paren outside brackets
        start = self.i
        depth = 0
        while self.i < len(self.s):
            ch = self.s[self.i : self.i + 1]
            if ch == b"[":
                depth += 1
            elif ch == b"]":
                depth -= 1
            elif depth == 0 and ch in (b" ", b")", b"(", b"\r", b"\n"):
                break
            self.i += 1
        atom = self.s[start : self.i]
        if atom.upper() == b"NIL":
            return None
        return atom


def parse(data):
    return Parser(data).value()


def joined(data):
    """imaplib's FETCH data (bytes and (prefix, literal) pairs) as one byte string
    with the literals back in place, one response per element."""
    out = []
    cur = b""
    for item in data:
        if isinstance(item, tuple):
            cur += item[0] + b"\r\n" + item[1]
        elif item is None:
            continue
        else:
            cur += item
            out.append(cur)
            cur = b""
    if cur:
        out.append(cur)
    return out


def fetch_items(data):
    """{seq: {ITEM-NAME: value}} from imaplib's FETCH data."""
    result = {}
    for line in joined(data):
        m = re.match(rb"(\d+) \(", line)
        if not m:
            continue
        items = parse(line[len(m.group(1)) + 1 :])
        d = {}
        for k in range(0, len(items) - 1, 2):
            d[items[k].upper().decode()] = items[k + 1]
        result.setdefault(int(m.group(1)), {}).update(d)
    return result


def fetch(imap, what, items, uid=False):
    typ, data = imap.uid("FETCH", what, items) if uid else imap.fetch(what, items)
    if typ != "OK":
        check(False, f"{'UID ' if uid else ''}FETCH {what} {items}: {typ} {data}")
    return fetch_items(data)


def seqset(text):
    """The numbers of a sequence set without `*` (`1:3,7`)."""
    out = set()
    for part in text.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out.update(range(min(a, b), max(a, b) + 1))
        elif part:
            out.add(int(part))
    return out


def pop(imap, name):
    """Take (and clear) the untagged responses or response codes named `name`."""
    _, data = imap.response(name)
    return [d for d in data if d is not None]


def simple(imap, *args):
    """Run a command imaplib has no method for; (typ, data) of the tagged reply."""
    return imap._simple_command(*args)


def capabilities(imap):
    typ, data = imap.capability()
    check(typ == "OK", "CAPABILITY")
    return set(data[0].decode().upper().split())
