"""One accepted DMPi call performed on the DMP's state, in the order the DMP decides: the misbehaviours the
harness asked for (``faults.yaml``), who may (:mod:`.patient.access`, with the row of the rights matrix the
call is about), then the transaction's handler. A refusal is answered in the transaction's own form: an HL7v3
acknowledgement, a habilitation ``status``, an XDS ``RegistryError``; a value that is no value of its type (a
date naming no day) is a Sender fault naming the field.
"""

from __future__ import annotations

from dataclasses import replace

from esante.simulators.dataset import Dataset
from esante.simulators.dmp.documents import xds
from esante.simulators.dmp.documents.registry import DocumentRegistry
from esante.simulators.dmp.notes import DmpErrorNote
from esante.simulators.dmp.patient import habilitations, hl7v3
from esante.simulators.dmp.patient.access import XDS_TDS, check_access
from esante.simulators.dmp.patient.records import DmpRecord, Records
from esante.simulators.dmp.transport.call import Call, DmpError, DmpFault, Reply
from esante.simulators.kits.ihe_xds.ebrs import MalformedValue, RegistryError

HL7_TDS = frozenset({"TD0.2", "TD0.5", "TD1.3a", "TD1.3b", "TD1.4"})


def perform(call: Call, records: Records, registry: DocumentRegistry, dataset: Dataset,
            behaviours: set[str]) -> Reply:
    """The answer to ``call`` (whose VIHF was accepted), the misbehaviours ``behaviours`` applied."""
    try:
        if "registry_unavailable" in behaviours:
            code = "XDSRegistryNotAvailable" if call.td in XDS_TDS else "DMPServiceUnavailable"
            raise DmpError(code, "the DMP's document registry is unavailable, try again later")
        record = records.get(call.vihf.ins) if call.vihf.ins else None
        if "dmp_closed" in behaviours and record is not None:
            record.status = "closed"
        check_access(call, record, _rights_row(call, registry))
        return _dispatch(call, record, records, registry, dataset)
    except MalformedValue as exc:  # a value of no value of its type: a Sender fault naming the field
        raise DmpFault("body_invalid", exc.message) from None
    except RegistryError as exc:  # an XDS request the registry cannot read or run: refused like any other
        return _refuse(call, DmpError(exc.code, exc.message, location=exc.location))
    except DmpError as exc:
        return _refuse(call, exc)


def _rights_row(call: Call, registry: DocumentRegistry) -> str | None:
    """The row of the rights matrix, for the transactions with several: which TD3.3 an update is (decided
    from the registry before the rights are checked), which kind of search a TD3.1 is."""
    if call.td == "TD3.3":
        td, row = xds.update_td(xds.update_submission(call), registry)
        call.transaction = replace(call.transaction, td=td)
        call.notes.td = td
        return row
    return xds.search_rights_row(call) if call.td == "TD3.1" else None


def _dispatch(call: Call, record: DmpRecord | None, records: Records, registry: DocumentRegistry,
              dataset: Dataset) -> Reply:
    td = call.td
    if td in hl7v3.BY_TD:
        if hl7v3.requested_ins(call.body) != call.vihf.ins:
            raise DmpError("DMPPatientIdDoesNotMatch", "the patient of the request is not the VIHF's resource-id")
        return hl7v3.BY_TD[td](call, records, record)
    if td == "TD0.5":
        return hl7v3.search_without_ins(call, records)
    if td == "TD0.4":
        return habilitations.patient_list(call, records, record)
    assert record is not None  # check_access refused the other transactions without a DMP
    if td in habilitations.BY_TD:
        return habilitations.BY_TD[td](call, records, record)
    handler = {"TD2.1": xds.feed, "TD3.1": xds.search, "TD3.2": xds.retrieve}.get(td, xds.update)
    return handler(call, record, registry, dataset)


def _refuse(call: Call, error: DmpError) -> Reply:
    """The refusal in the transaction's own form."""
    call.notes.error = DmpErrorNote(code=error.code, message=error.message, location=error.location)
    if call.td in HL7_TDS:
        return hl7v3.error_reply(call, error)
    if call.td in XDS_TDS:
        return xds.error_reply(call, error)
    return habilitations.error_reply(call, error)
