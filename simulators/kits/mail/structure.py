"""FETCH ENVELOPE and BODYSTRUCTURE as RFC 3501 §7.4.2 and §9 write them, where pymap does not.

pymap writes the envelope's date re-formatted as an INTERNALDATE (``"03-Dec-2026 17:59:32 +0000"``) where the
RFC wants the Date header's own text, an absent personal name as ``""`` where it is NIL, a part's size and lines
counting its header too where they are its body's (``body-fld-octets``), and a part's ``Content-Disposition`` as
the header's text in one string (``"attachment; filename=\\"A.ZIP\\""``) where the grammar (``body-fld-dsp``)
wants ``("attachment" ("filename" "A.ZIP"))``: a client reading attachments from BODYSTRUCTURE (Thunderbird,
imap-tools) would not see them. :class:`RfcMessage` is pymap's in-memory message
answering both as the RFC says; the rest is pymap's.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
from typing import Any

from pymap.backend.dict.mailbox import LoadedMessage, Message
from pymap.bytes import Writeable, WriteStream
from pymap.mime import MessageContent
from pymap.parsing.primitives import List, Nil, String
from pymap.parsing.response.fetch import (
    BodyStructure,
    EnvelopeStructure,
    MessageBodyStructure,
    MultipartBodyStructure,
    TextBodyStructure,
)
from pymap.parsing.specials import FetchRequirement

_ENVELOPE_FIELDS = ("date", "subject", "from_", "sender", "reply_to", "to", "cc", "bcc", "in_reply_to",
                    "message_id")


class RfcEnvelope(EnvelopeStructure):
    date_text: str | None = None  # the Date header's own text

    @property
    def _value(self) -> Writeable:
        return List([String.build(self.date_text), String.build(self.subject),
                     _addresses(self.from_), _addresses(self.sender or self.from_),
                     _addresses(self.reply_to or self.from_), _addresses(self.to), _addresses(self.cc),
                     _addresses(self.bcc), String.build(self.in_reply_to), String.build(self.message_id)])


def _addresses(headers: Sequence[Any] | None) -> Writeable:
    found = [a for h in headers or () for a in (h.addresses if hasattr(h, "addresses") else (h.address,))]
    if not found:
        return Nil()
    return _Joined([List([String.build(a.display_name or None), Nil(), String.build(a.username),
                          String.build(a.domain)]) for a in found], parenthesised=True)


class _Joined(Writeable):
    """Items one after the other, as ``1*address`` and ``1*body`` list them (no separator)."""

    def __init__(self, parts: Sequence[Writeable], *, parenthesised: bool = False) -> None:
        self.parts, self.parenthesised = parts, parenthesised

    def write(self, writer: WriteStream) -> None:
        writer.write(bytes(self))

    def __bytes__(self) -> bytes:
        joined = b"".join(bytes(part) for part in self.parts)
        return b"(" + joined + b")" if self.parenthesised else joined


def _disposition(header: Any) -> Writeable:
    if header is None:
        return Nil()
    params = [String.build(item) for pair in dict(header.params).items() for item in pair]
    return List([String.build(header.content_disposition), List(params) if params else Nil()])


def rfc_extended(structure: BodyStructure) -> List:
    """pymap's BODYSTRUCTURE list, with each part's disposition (and the nested ones) in the RFC's form."""
    items: list[Any] = list(structure.extended.value)
    if isinstance(structure, MultipartBodyStructure):
        items[0], where = _Joined([rfc_extended(part) for part in structure.parts]), 3
    elif isinstance(structure, MessageBodyStructure):
        items[8], where = rfc_extended(structure.body_structure), 11
    else:
        where = 9 if isinstance(structure, TextBodyStructure) else 8
    items[where] = _disposition(structure.content_disposition)
    return List(items)


class _RfcBody(Writeable):
    """pymap's body structure: ``BODY`` as pymap writes it (no disposition there), ``BODYSTRUCTURE`` fixed."""

    def __init__(self, inner: BodyStructure) -> None:
        self.inner = inner

    @property
    def extended(self) -> List:
        return rfc_extended(self.inner)

    def write(self, writer: WriteStream) -> None:
        self.inner.write(writer)

    def __bytes__(self) -> bytes:
        return bytes(self.inner)


def _header_text(content: MessageContent, name: bytes) -> str | None:
    for found, field in content.header.folded:
        if found == name:
            text = bytes(field).split(b":", 1)[1]
            return re.sub(rb"\r?\n[ \t]", b" ", text).strip().decode("utf-8", "replace")
    return None


class RfcLoadedMessage(LoadedMessage):
    """pymap builds both structures with these class methods, for the message and each nested part."""

    @classmethod
    def _get_envelope_structure(cls, msg: MessageContent) -> EnvelopeStructure:
        base = super()._get_envelope_structure(msg)
        envelope = RfcEnvelope(*(getattr(base, name) for name in _ENVELOPE_FIELDS))
        envelope.date_text = _header_text(msg, b"date")
        return envelope

    @classmethod
    def _get_body_structure(cls, msg: MessageContent) -> BodyStructure:
        structure = super()._get_body_structure(msg)
        if hasattr(structure, "size"):
            structure.size = len(msg.body)
        if hasattr(structure, "lines"):
            structure.lines = msg.body.lines
        return structure

    def get_body_structure(self) -> Any:
        return _RfcBody(super().get_body_structure())


@functools.lru_cache(maxsize=32)
def parsed(raw: bytes) -> MessageContent:
    """pymap's MIME reading of a message, for the few being fetched or searched now: kept parsed, a message
    costs 20 times its size (every header parsed, every line indexed); kept as bytes, nothing."""
    return MessageContent.parse(raw)


class RfcMessage(Message):
    """pymap's in-memory message keeping only its bytes (in pymap's content slot, so that pymap's copies carry
    them), read when a FETCH or SEARCH needs more than flags, off the event loop, as
    :class:`RfcLoadedMessage`."""

    __slots__ = ()

    async def load_content(self, requirement: FetchRequirement) -> LoadedMessage:
        raw: Any = self._content
        content = await asyncio.to_thread(parsed, raw) if requirement & FetchRequirement.CONTENT else None
        return RfcLoadedMessage(self, requirement, content)

    @classmethod
    def of(cls, message: Message) -> RfcMessage:
        """The same message (pymap's copy/move/expunged views make plain ones)."""
        return message if isinstance(message, RfcMessage) else cls.copy(message, expunged=message.expunged,
                                                                            recent=message.recent)
