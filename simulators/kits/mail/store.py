"""The message store the SMTP and IMAP servers share: each address's folders on pymap's in-memory backend.

pymap keeps, per mailbox, the modification sequence every selected session reads its own view from (untagged
``EXISTS``, ``EXPUNGE`` and ``FETCH`` as RFC 3501 §5.2 and §7.4.1 want, IDLE woken by new mail). What is added
here: the special-use folders (RFC 6154) every address has, seeded INBOX messages after each reset, a quota,
messages kept as their bytes (:class:`~.structure.RfcMessage`: parsed off the event loop when read), and
:func:`~.bounds.check_structure` before anything is stored, so that no message stalls the other sessions.

Everything runs on the mail servers' event loop; :meth:`MailStore.reset` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pymap.backend.dict.mailbox import MailboxData, MailboxSet, Message
from pymap.exceptions import AppendFailure
from pymap.parsing.message import AppendMessage
from pymap.parsing.response import ResponseCode
from pymap.parsing.specials import ObjectId

from esante.simulators.kits.mail.bounds import StructureRefused, check_structure
from esante.simulators.kits.mail.structure import RfcMessage

#: The folders every address has after a reset, with their RFC 6154 attribute: a client saves sent mail in
#: ``Sent``, drafts in ``Drafts``, and moves what it deletes to ``Trash``.
SPECIAL_USE: Final = {"Sent": b"Sent", "Drafts": b"Drafts", "Trash": b"Trash", "Archive": b"Archive"}


class MailboxFull(Exception):
    """The address's INBOX holds its quota of messages."""


class QuotaExceeded(AppendFailure):
    """IMAP's form of :class:`MailboxFull` (``NO [OVERQUOTA]``, RFC 5530)."""


class StoreMailbox(MailboxData):
    """pymap's in-memory mailbox, keeping messages as bytes and refusing one beyond the bounds."""

    quota: int = 100_000

    async def append(self, append_msg: AppendMessage, *, recent: bool = False) -> Message:
        """IMAP APPEND: within the MIME bounds, or ``NO [LIMIT]``."""
        try:
            await asyncio.to_thread(check_structure, append_msg.literal)  # linear, but 20 MB take a while
        except StructureRefused as refused:
            raise AppendFailure(None, f"Message refused: {refused}.".encode(), ResponseCode.of(b"LIMIT")) from None
        return await self.add(append_msg, recent=recent)

    async def add(self, append_msg: AppendMessage, *, recent: bool = False) -> Message:
        """Store a message already within the MIME bounds; ``NO [OVERQUOTA]`` past the quota."""
        raw = append_msg.literal
        if len(self._messages) >= self.quota:  # pymap's own dict of this mailbox's messages
            raise QuotaExceeded(None, b"Mailbox full.", ResponseCode.of(b"OVERQUOTA"))
        async with self.messages_lock.write_lock():  # as pymap's append, keeping the bytes only (RfcMessage)
            self._max_uid = uid = self._max_uid + 1
            message = RfcMessage(uid, append_msg.when or datetime.now(UTC), append_msg.flag_set,
                                 email_id=ObjectId.random_email_id(), thread_id=ObjectId.random_thread_id(),
                                 recent=recent, content=raw)  # type: ignore[arg-type]
            self._messages[uid] = message
            self._mod_sequences.update([uid])
            self._updated.set()
            return message

    # pymap's copy, move and expunged views make plain messages: they answer FETCH as RfcMessage does
    async def copy(self, uid: int, destination: MailboxData, *, recent: bool = False) -> int | None:
        return _retyped(destination, await super().copy(uid, destination, recent=recent))

    async def move(self, uid: int, destination: MailboxData, *, recent: bool = False) -> int | None:
        return _retyped(destination, await super().move(uid, destination, recent=recent))

    async def get(self, uid: int, cached_msg: Any) -> Message:
        return RfcMessage.of(await super().get(uid, cached_msg))


def _retyped(mailbox: MailboxData, uid: int | None) -> int | None:
    if uid is not None:  # right after pymap put it there, nothing awaited since
        mailbox._messages[uid] = RfcMessage.of(mailbox._messages[uid])
    return uid


class StoreFolders(MailboxSet):
    """One address's folders: pymap's set, with :class:`StoreMailbox` mailboxes."""

    def __init__(self) -> None:
        super().__init__()
        self._inbox = self._new()

    def _new(self) -> StoreMailbox:
        return StoreMailbox(self._content_cache, self._thread_cache)

    async def add_mailbox(self, name: str) -> object:
        async with self._set_lock.write_lock():
            if name in self._set:
                raise ValueError(name)
            self._set[name] = mailbox = self._new()
            return mailbox.mailbox_id

    async def rename_mailbox(self, before: str, after: str) -> None:
        await super().rename_mailbox(before, after)
        if not isinstance(self._inbox, StoreMailbox):  # renaming INBOX leaves a new, empty one (RFC 3501 §6.3.5)
            self._inbox = self._new()


class MailStore:
    """Every address's folders, created when first used: INBOX with the seeded messages, and the special-use
    folders (subscribed)."""

    def __init__(self) -> None:
        self._folders: dict[str, asyncio.Task[StoreFolders]] = {}
        self._seed: Mapping[str, list[bytes]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None  # the mail servers' loop, once they run

    def reset(self, seed: Mapping[str, list[bytes]]) -> None:
        """Forget every mailbox; ``seed`` gives what each address's INBOX holds next (raw messages, in order)."""
        self._on_loop(lambda: self._replace(seed))

    def _replace(self, seed: Mapping[str, list[bytes]]) -> None:
        self._folders, self._seed = {}, {k.lower(): list(v) for k, v in seed.items()}

    def _on_loop(self, work: Callable[[], None]) -> None:
        loop = self.loop
        if loop is None or not loop.is_running() or _running_loop() is loop:
            work()
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                work()
                done.set_result(None)
            except BaseException as exc:  # handed to the waiting thread
                done.set_exception(exc)
        loop.call_soon_threadsafe(run)
        done.result(timeout=10)

    async def folders(self, address: str) -> StoreFolders:
        """The address's folders (created and seeded on first use)."""
        key = address.lower()
        task = self._folders.get(key)
        if task is None:
            task = self._folders[key] = asyncio.ensure_future(self._create(key))
        return await task

    async def _create(self, key: str) -> StoreFolders:
        folders = StoreFolders()
        for name in SPECIAL_USE:
            await folders.add_mailbox(name)
            await folders.set_subscribed(name, True)
        await folders.set_subscribed("INBOX", True)
        inbox = await folders.get_mailbox("INBOX")
        for raw in self._seed.get(key, []):
            await inbox.append(AppendMessage(raw, None, frozenset()), recent=True)
        return folders

    async def deliver(self, address: str, raw: bytes, when: datetime | None = None) -> int:
        """Put a message the caller checked (:func:`~.bounds.check_structure`) in the address's INBOX
        (``\\Recent``); its UID. :class:`MailboxFull` past the quota."""
        inbox = await (await self.folders(address)).get_mailbox("INBOX")
        try:
            message = await inbox.add(AppendMessage(raw, when, frozenset()), recent=True)
        except QuotaExceeded:
            raise MailboxFull(address) from None
        return message.uid


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
