"""IMAP4rev1 (RFC 3501) with STARTTLS, the subset a mail client needs to read an MSSanté INBOX.

Why not pymap: its SASL layer (pysasl) has no OAUTHBEARER and no EXTERNAL bound to the TLS client certificate,
and its transport hides the session transcript the evidence needs; MSSanté's INBOX-only use needs a small
command set over the store the SMTP side delivers to. Commands: CAPABILITY, NOOP, LOGOUT, STARTTLS,
AUTHENTICATE (XOAUTH2, OAUTHBEARER, EXTERNAL; SASL-IR), LOGIN (refused: LOGINDISABLED), LIST, SELECT, EXAMINE,
STATUS, FETCH, STORE, SEARCH (ALL, SEEN, UNSEEN, DELETED), EXPUNGE, CLOSE, and their UID forms.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from esante.simulators.core.faults import FaultKind
from esante.simulators.mssante.mailboxes import StoredMessage
from esante.simulators.mssante.notes import AuthAttempt
from esante.simulators.mssante.protocol import SASL_MECHANISMS
from esante.simulators.mssante.sessions import MailContext, authenticate, busy, open_session, session_notes

MAX_LINE = 64 * 1024
IDLE_TIMEOUT = 120.0
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(\()|(\))|([^\s()"]+(?:\[[^\]]*\])?(?:<[\d.]+>)?)')
_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")


class ImapError(Exception):
    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind, self.text = kind, text


def tokens(text: str) -> list[Any]:
    """Split arguments into atoms, quoted strings and parenthesised lists (nested as Python lists)."""
    stack: list[list[Any]] = [[]]
    for quoted, opening, closing, atom in _TOKEN.findall(text):
        if opening:
            stack.append([])
        elif closing:
            if len(stack) == 1:
                raise ImapError("BAD", "unbalanced parentheses")
            inner = stack.pop()
            stack[-1].append(inner)
        elif atom:
            stack[-1].append(atom)
        else:
            stack[-1].append(quoted.replace('\\"', '"').replace("\\\\", "\\"))
    if len(stack) != 1:
        raise ImapError("BAD", "unbalanced parentheses")
    return stack[0]


def sequence(spec: str, messages: list[StoredMessage], *, uid: bool) -> list[int]:
    """Indexes (0-based) of the messages a sequence set names (RFC 3501 §9 sequence-set)."""
    if not messages:
        return []
    keys = [m.uid for m in messages] if uid else list(range(1, len(messages) + 1))
    top = keys[-1]
    chosen: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition(":")
        try:
            a = top if low == "*" else int(low)
            b = a if not high else (top if high == "*" else int(high))
        except ValueError:
            raise ImapError("BAD", f"bad sequence set {spec!r}") from None
        a, b = min(a, b), max(a, b)
        chosen.update(i for i, k in enumerate(keys) if a <= k <= b)
    return sorted(chosen)


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def _headers(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
        return raw if end < 0 else raw[: end + 2]
    return raw[: end + 4]


class ImapConnection:
    def __init__(self, context: MailContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.context, self.reader, self.writer = context, reader, writer
        self.record = open_session(context, "IMAP", writer.get_extra_info("peername"))
        self.notes = session_notes(self.record)
        self.mailbox: str | None = None  # authenticated address
        self.selected = False
        self.readonly = False
        self.commands = 0

    # -- transport ----------------------------------------------------------------------------------------
    async def send(self, data: bytes | str) -> None:
        chunk = (data.encode() if isinstance(data, str) else data) + b"\r\n"
        self.record.said(chunk)
        self.writer.write(chunk)
        await self.writer.drain()

    async def readline(self) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), IDLE_TIMEOUT)
        self.record.heard(line)
        if len(line) > MAX_LINE:
            raise ImapError("BAD", "line too long")
        return line

    async def run(self) -> None:
        try:
            await self.record.latency()
            if busy(self.record):
                await self.send("* BYE [UNAVAILABLE] Server busy, try again later")
                return
            await self.send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] esante MSSante IMAP ready")
            while True:
                line = await self.readline()
                if not line:
                    return
                if not await self.dispatch(line.decode("utf-8", "replace").rstrip("\r\n")):
                    return
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            self.record.outcome = "dropped"
        except ValueError:  # a line beyond the stream's limit
            await self.send("* BYE line too long")
        finally:
            self.record.close()
            self.writer.close()

    async def dispatch(self, line: str) -> bool:
        tag, _, rest = line.partition(" ")
        command, _, args = rest.partition(" ")
        command = command.upper()
        if not tag or not command:
            await self.send("* BAD empty command")
            return True
        self.commands += 1
        self.notes.commands.append(f"UID {args.split()[0]}" if command == "UID" and args else command)
        uid = command == "UID"
        if uid:
            command, _, args = args.partition(" ")
            command = command.upper()
        try:
            if self.mailbox and "token_expires_mid_session" in self.record.behaviours and self.commands > 3:
                self.notes.token_expired_mid_session = True
                await self.send("* BYE [ALERT] Access token expired: authenticate again")
                return False
            handler = getattr(self, f"cmd_{command.lower()}", None)
            if handler is None or (uid and command not in ("FETCH", "STORE", "SEARCH")):
                raise ImapError("BAD", f"unknown command {command}")
            result = await handler(tag, args, uid) if command in ("FETCH", "STORE", "SEARCH") \
                else await handler(tag, args)
            return result is not False
        except ImapError as error:
            await self.send(f"{tag} {error.kind} {error.text}")
            return True

    # -- any state ----------------------------------------------------------------------------------------
    def capabilities(self) -> str:
        if not self.notes.tls:
            return "IMAP4rev1 STARTTLS LOGINDISABLED"
        return "IMAP4rev1 SASL-IR UIDPLUS LOGINDISABLED " + " ".join(f"AUTH={m}" for m in SASL_MECHANISMS)

    async def cmd_capability(self, tag: str, args: str) -> None:
        await self.send(f"* CAPABILITY {self.capabilities()}")
        await self.send(f"{tag} OK CAPABILITY completed")

    async def cmd_noop(self, tag: str, args: str) -> None:
        await self.send(f"{tag} OK NOOP completed")

    async def cmd_logout(self, tag: str, args: str) -> bool:
        await self.send("* BYE esante MSSante IMAP logging out")
        await self.send(f"{tag} OK LOGOUT completed")
        return False

    async def cmd_starttls(self, tag: str, args: str) -> None:
        if self.notes.tls:
            raise ImapError("BAD", "TLS already active")
        if "starttls_unavailable" in self.record.behaviours:
            raise ImapError("NO", "[UNAVAILABLE] TLS not available, try again later")
        await self.send(f"{tag} OK Begin TLS negotiation now")
        await self.writer.start_tls(self.context.tls)
        self.notes.tls = True

    async def cmd_login(self, tag: str, args: str) -> None:
        self.notes.auth.append(AuthAttempt(mechanism="LOGIN", outcome="refused"))
        raise ImapError("NO", "[PRIVACYREQUIRED] LOGIN is disabled: authenticate with a PSC token or a certificate")

    async def cmd_authenticate(self, tag: str, args: str) -> None:
        if not self.notes.tls:
            raise ImapError("NO", "[PRIVACYREQUIRED] STARTTLS first")
        if self.mailbox:
            raise ImapError("BAD", "already authenticated")
        parts = args.split()
        mechanism = parts[0].upper() if parts else ""
        if mechanism not in SASL_MECHANISMS:
            raise ImapError("NO", f"[CANNOT] unsupported mechanism {mechanism or '(none)'}")
        if len(parts) > 1:
            response = parts[1]
        else:
            await self.send("+ ")
            response = (await self.readline()).decode("ascii", "replace").strip()
            if response == "*":
                raise ImapError("BAD", "authentication cancelled")
        ssl_object = self.writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        mailbox = await authenticate(self.context, self.record, mechanism, response, der)
        if mailbox is None:
            raise ImapError("NO", "[AUTHENTICATIONFAILED] Authentication failed")
        self.mailbox = mailbox
        if self.record.fired(FaultKind.DROP):
            self.notes.dropped_after_auth = True
            self.record.outcome = "dropped"
            self.writer.transport.abort()
            raise ConnectionResetError("dropped by a fault rule")
        await self.send(f"{tag} OK [CAPABILITY {self.capabilities()}] Authenticated")

    # -- authenticated --------------------------------------------------------------------------------------
    def _authenticated(self) -> str:
        if not self.mailbox:
            raise ImapError("NO", "authenticate first")
        return self.mailbox

    def _messages(self) -> list[StoredMessage]:
        if not self.selected:
            raise ImapError("BAD", "no mailbox selected")
        return self.context.post.store.box(self._authenticated()).messages

    def _folder(self, args: str) -> str:
        names = tokens(args)
        if not names or str(names[0]).upper() != "INBOX":
            raise ImapError("NO", "[NONEXISTENT] only INBOX exists")
        return "INBOX"

    async def cmd_list(self, tag: str, args: str) -> None:
        self._authenticated()
        parts = tokens(args)
        if len(parts) == 2 and parts[1] == "":
            await self.send('* LIST (\\Noselect) "/" ""')
        else:
            await self.send('* LIST (\\HasNoChildren) "/" INBOX')
        await self.send(f"{tag} OK LIST completed")

    cmd_lsub = cmd_list

    async def _select(self, tag: str, args: str, readonly: bool) -> None:
        box_address = self._authenticated()
        self._folder(args)
        box = self.context.post.store.box(box_address)
        self.selected, self.readonly = True, readonly
        unseen = next((i + 1 for i, m in enumerate(box.messages) if "\\Seen" not in m.flags), None)
        await self.send(f"* {len(box.messages)} EXISTS")
        await self.send("* 0 RECENT")
        await self.send(f"* FLAGS ({' '.join(_FLAGS)})")
        if unseen:
            await self.send(f"* OK [UNSEEN {unseen}] first unseen")
        await self.send(f"* OK [UIDVALIDITY {box.uidvalidity}] UIDs valid")
        await self.send(f"* OK [UIDNEXT {box.next_uid}] predicted next UID")
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        await self.send(f"{tag} OK [{mode}] {'EXAMINE' if readonly else 'SELECT'} completed")

    async def cmd_select(self, tag: str, args: str) -> None:
        await self._select(tag, args, False)

    async def cmd_examine(self, tag: str, args: str) -> None:
        await self._select(tag, args, True)

    async def cmd_status(self, tag: str, args: str) -> None:
        box = self.context.post.store.box(self._authenticated())
        self._folder(args)
        unseen = sum("\\Seen" not in m.flags for m in box.messages)
        await self.send(f"* STATUS INBOX (MESSAGES {len(box.messages)} UIDNEXT {box.next_uid} "
                        f"UIDVALIDITY {box.uidvalidity} UNSEEN {unseen})")
        await self.send(f"{tag} OK STATUS completed")

    async def cmd_fetch(self, tag: str, args: str, uid: bool) -> None:
        messages = self._messages()
        spec, _, items_text = args.partition(" ")
        items = tokens(items_text)
        wanted = [str(i).upper() for i in (items[0] if items and isinstance(items[0], list) else items)]
        wanted = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"], "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
                  }.get(wanted[0], wanted) if wanted else []
        if uid and "UID" not in wanted:
            wanted.insert(0, "UID")
        for index in sequence(spec, messages, uid=uid):
            await self.send(self._fetch_item(index + 1, messages[index], wanted))
        await self.send(f"{tag} OK FETCH completed")

    def _fetch_item(self, number: int, message: StoredMessage, wanted: list[str]) -> bytes:
        parts: list[bytes] = []
        for item in wanted:
            if item == "UID":
                parts.append(b"UID %d" % message.uid)
            elif item == "FLAGS":
                parts.append(f"FLAGS ({' '.join(sorted(message.flags))})".encode())
            elif item == "RFC822.SIZE":
                parts.append(b"RFC822.SIZE %d" % len(message.raw))
            elif item == "INTERNALDATE":
                stamp = time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(message.received))
                parts.append(f'INTERNALDATE "{stamp}"'.encode())
            elif item in ("RFC822", "BODY[]", "BODY.PEEK[]"):
                name = "RFC822" if item == "RFC822" else "BODY[]"
                parts.append(name.encode() + b" " + _literal(message.raw))
                if item != "BODY.PEEK[]" and not self.readonly:
                    message.flags.add("\\Seen")
            elif item in ("RFC822.HEADER", "BODY[HEADER]", "BODY.PEEK[HEADER]"):
                name = "RFC822.HEADER" if item == "RFC822.HEADER" else "BODY[HEADER]"
                parts.append(name.encode() + b" " + _literal(_headers(message.raw)))
            else:
                raise ImapError("BAD", f"unsupported FETCH item {item}")
        return b"* %d FETCH (" % number + b" ".join(parts) + b")"

    async def cmd_store(self, tag: str, args: str, uid: bool) -> None:
        messages = self._messages()
        parts = tokens(args)
        if len(parts) < 3:
            raise ImapError("BAD", "STORE needs a sequence set, an action and flags")
        spec, action = str(parts[0]), str(parts[1]).upper()
        flags = {str(f) for f in (parts[2] if isinstance(parts[2], list) else parts[2:])}
        if self.readonly:
            raise ImapError("NO", "mailbox is read-only")
        for index in sequence(spec, messages, uid=uid):
            message = messages[index]
            if action.startswith("+FLAGS"):
                message.flags |= flags
            elif action.startswith("-FLAGS"):
                message.flags -= flags
            elif action.startswith("FLAGS"):
                message.flags = set(flags)
            else:
                raise ImapError("BAD", f"unknown STORE action {action}")
            if not action.endswith(".SILENT"):
                uid_part = f"UID {message.uid} " if uid else ""
                await self.send(f"* {index + 1} FETCH ({uid_part}FLAGS ({' '.join(sorted(message.flags))}))")
        await self.send(f"{tag} OK STORE completed")

    async def cmd_search(self, tag: str, args: str, uid: bool) -> None:
        messages = self._messages()
        criteria = [str(c).upper() for c in tokens(args)]
        if criteria[:1] == ["CHARSET"]:
            criteria = criteria[2:]
        tests = {"ALL": lambda m: True, "SEEN": lambda m: "\\Seen" in m.flags,
                 "UNSEEN": lambda m: "\\Seen" not in m.flags, "DELETED": lambda m: "\\Deleted" in m.flags}
        unknown = [c for c in criteria if c not in tests]
        if unknown:
            raise ImapError("BAD", f"unsupported SEARCH criterion {unknown[0]}")
        found = [(i + 1, m.uid) for i, m in enumerate(messages) if all(tests[c](m) for c in criteria)]
        await self.send("* SEARCH" + "".join(f" {u if uid else n}" for n, u in found))
        await self.send(f"{tag} OK SEARCH completed")

    async def cmd_expunge(self, tag: str, args: str) -> None:
        self._messages()
        for number in self.context.post.store.expunge(self._authenticated()):
            await self.send(f"* {number} EXPUNGE")
        await self.send(f"{tag} OK EXPUNGE completed")

    async def cmd_close(self, tag: str, args: str) -> None:
        self._messages()
        if not self.readonly:
            self.context.post.store.expunge(self._authenticated())
        self.selected = False
        await self.send(f"{tag} OK CLOSE completed")


async def serve_imap(context: MailContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await ImapConnection(context, reader, writer).run()
