"""One DMPi call as the transaction handlers see it, what they answer, and how the DMP refuses.

A message the DMP cannot process at all is a :class:`DmpFault` (a SOAP fault, ``faults.yaml``); a request it
processes and refuses is a :class:`DmpError`, answered in the transaction's own form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from esante.simulators.dmp.notes import DmpNotes
from esante.simulators.dmp.protocol import Transaction
from esante.simulators.dmp.transport.vihf import Vihf
from esante.simulators.kits.mtom import Related
from esante.simulators.kits.soap import SoapFault, SoapMessage


class DmpFault(Exception):
    """A message the DMP cannot process: answered with the SOAP 1.2 fault ``key`` of ``faults.yaml``;
    ``subcode`` overrides the catalogue's (the VIHF rule broken); ``standard`` is the fault the SOAP or
    WS-Addressing specification defines for it, answered as it says; ``relates_to`` the request's MessageID
    when it was read before the message was refused."""

    def __init__(self, key: str, detail: str, *, subcode: str | None = None, standard: SoapFault | None = None,
                 relates_to: str | None = None) -> None:
        super().__init__(detail)
        self.key, self.detail, self.subcode, self.standard = key, detail, subcode, standard
        self.relates_to = relates_to


class DmpError(Exception):
    """A refusal the DMP answers in the transaction's own form (HL7v3 acknowledgement, ``status`` of the
    habilitation and patient services, XDS ``RegistryError``).

    ``code`` is the DMP's code (``DMPAccessDeniedByRightsService``, ``DMPClosed``, ``XDSUnknownPatientId``...).
    """

    def __init__(self, code: str, message: str, *, location: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.location = location


@dataclass(slots=True)
class Call:
    """A parsed request: the transaction, its SOAP message and body, the notes for the judge, and, once
    accepted, the caller's VIHF."""

    transaction: Transaction
    message: SoapMessage
    body: etree._Element
    notes: DmpNotes
    related: Related | None = None
    vihf: Vihf = field(init=False)
    parsed: Any = None  # the body once read (an ITI-57 Submission, an ITI-18 query), so it is read once

    @property
    def td(self) -> str:
        return self.transaction.td


@dataclass(slots=True)
class Reply:
    """The body of the answer, and the documents to send with it as MTOM parts (ITI-43)."""

    body: etree._Element
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
