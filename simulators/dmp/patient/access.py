"""Who may do what on a patient's DMP, in the order the DMP decides it: the rights matrix (PDT-INF-526, what
the actor's role may do in its access mode), then the DMP itself (it exists and is open), then the patient's
own choices (who is authorised, who is blocked, whether the emergency modes are opposed).

Feeding (TD2.1) needs no authorisation from the patient: any professional may add a document, a blocked one
may not (our reading of the rights matrix, whose TD2.1 row has no authorisation note).
"""

from __future__ import annotations

from esante.simulators.dmp.patient.records import DmpRecord
from esante.simulators.dmp.patient.rights import decide
from esante.simulators.dmp.transport.call import Call, DmpError

#: Transactions about no one patient: the VIHF has no resource-id, no DMP is looked at.
NO_PATIENT_TDS = frozenset({"TD0.4", "TD0.5"})
#: Transactions the DMP answers in the XDS form (a missing DMP is then XDSUnknownPatientId).
XDS_TDS = frozenset({"TD2.1", "TD3.1", "TD3.2", "TD3.3", "TD3.3a", "TD3.3b", "TD3.3c", "TD3.3d"})
#: Transactions that need the patient's authorisation in the normal access mode.
NEED_AUTHORISATION = frozenset({"TD1.3a", "TD1.3b", "TD1.4", "TD1.5a", "TD1.5b", "TD1.5d", "TD1.6", "TD3.1",
                                "TD3.2", "TD3.3a", "TD3.3b", "TD3.3c", "TD3.3d"})


def check_access(call: Call, record: DmpRecord | None, row: str | None = None) -> None:
    """Refuse (:class:`DmpError`) unless the VIHF's actor may perform the call's transaction (its ``row`` of
    the matrix when it has several) on ``record``, the DMP of the VIHF's patient."""
    vihf = call.vihf
    decision = decide(call.td, vihf, action=row, is_treating_doctor=record is not None and
                      record.treating_doctor == vihf.national_id)
    call.notes.rights = decision.reason
    if not decision.allowed:
        raise DmpError("DMPAccessDeniedByRightsService", decision.reason)
    if call.td in NO_PATIENT_TDS or call.td == "TD0.2":
        return
    if record is None:
        raise DmpError("XDSUnknownPatientId" if call.td in XDS_TDS else "DMPNotFound",
                       f"no DMP exists for INS {vihf.ins}")
    if not record.is_open:
        raise DmpError("DMPClosed", f"the DMP of INS {vihf.ins} is closed")
    _check_patient_choice(call, record)


def _check_patient_choice(call: Call, record: DmpRecord) -> None:
    """The patient's authorisation, blocking and oppositions (the rights matrix says what the role may do;
    the patient says who may)."""
    authorisation = record.authorisation_of(call.vihf.national_id)
    purpose = call.vihf.purpose.code
    call.notes.authorisation = authorisation
    if authorisation == "INTERDITE" and call.td != "TD0.3":
        raise DmpError("DMPAccessDeniedByPatient", "the patient has blocked this professional")
    if call.td not in NEED_AUTHORISATION or authorisation == "VALIDE":
        return
    # The emergency modes need no authorisation, unless the patient opposed them.
    opposed = {"bris_de_glace": record.opposition_bris_de_glace, "centre_15": record.opposition_urgence}
    if purpose in opposed:
        if opposed[purpose]:
            raise DmpError("DMPAccessDeniedByPatient", f"the patient opposes access in {purpose} mode")
        return
    raise DmpError("DMPAccessNotAuthorized", "the professional is not authorised on this DMP (TD0.3 first)")
