"""ebRS 3.0 as IHE XDS.b answers with it: the namespaces of the transactions' bodies, the availability statuses
(IHE's and the CI-SIS's own), the stored queries, and ``RegistryResponse`` with its ``RegistryErrorList``.

A refusal is a :class:`RegistryError`: the XDS error code a registry or repository answers (IHE ITI TF-3
Table 4.2.4.1-2), a sentence and where; :func:`registry_response` writes it for the candidate to read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from lxml import etree

RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"

#: ITI-18 stored query ids.
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
GET_DOCUMENTS = "urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4"

#: DocumentEntry availability statuses: ebRIM's, and the CI-SIS's archived and deleted documents.
STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
STATUS_ARCHIVED = "urn:asip:ci-sis:2010:StatusType:Archived"
STATUS_DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
STATUSES = (STATUS_APPROVED, STATUS_ARCHIVED, STATUS_DELETED, STATUS_DEPRECATED)

RESPONSE_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
RESPONSE_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
RESPONSE_PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
ERROR_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
WARNING_SEVERITY = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"

#: One ``RegistryError``: (errorCode, codeContext, location, error | warning).
ErrorEntry = tuple[str, str, str, Literal["error", "warning"]]


class RegistryError(Exception):
    """A request the registry or repository refuses: ``code`` is the XDS error code (``XDSRegistryError``,
    ``XDSUnknownStoredQuery``...), ``location`` the object or parameter at fault."""

    def __init__(self, code: str, message: str, location: str = "") -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.location = code, message, location

    def entry(self) -> ErrorEntry:
        return self.code, self.message, self.location, "error"


class MalformedValue(RegistryError):
    """A request value that is no value of its type (a time that names no moment): ``location`` is the field.
    A service may answer it as a registry error or, as the DMP does, as a fault naming the field."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__("XDSRegistryError", f"{location}: {message}", location)


def registry_response(errors: Iterable[ErrorEntry] = (), *, status: str | None = None,
                      tag: str = "RegistryResponse", ns: str = RS) -> etree._Element:
    """A ``RegistryResponse`` (or an ``AdhocQueryResponse``: ``tag`` and ``ns``); its status is Failure when an
    entry is an error, unless ``status`` says otherwise (PartialSuccess of a retrieval)."""
    errors = list(errors)
    failed = any(severity == "error" for *_, severity in errors)
    response = etree.Element(f"{{{ns}}}{tag}", status=status or (RESPONSE_FAILURE if failed else RESPONSE_SUCCESS),
                             nsmap={"rs": RS} if ns == RS else {None: ns, "rs": RS})
    if errors:
        error_list = etree.SubElement(response, f"{{{RS}}}RegistryErrorList",
                                      highestSeverity=ERROR_SEVERITY if failed else WARNING_SEVERITY)
        for code, context, location, severity in errors:
            etree.SubElement(error_list, f"{{{RS}}}RegistryError", errorCode=code, codeContext=context,
                             location=location, severity=ERROR_SEVERITY if severity == "error" else WARNING_SEVERITY)
    return response
