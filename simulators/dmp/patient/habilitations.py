"""The DMP's document/literal services: authorisations (``urn:si-dmp-habilitations``: TD0.3, TD1.6) and the
patient-specific services (``urn:si-dmp-patients``: TD0.4, TD1.5a/b/d).

Every answer is ``<opResponse><output>…<status>DMPOk</status><context>…</context></output>``, as in the
official examples and the WSDLs' types (annex v2.01.04; TD1.5a/b/d from the editors' kit WSDL). A refusal keeps
that form with the DMP's code as ``status`` and the reason as ``context`` (the examples show only ``DMPOk``;
the error form is our reading of the WSDL's output type). The enumerations are the WSDLs': TD1.6's ``mode``
TOUTE, ACTIVE or INTERDITE (a professional the patient blocked), TD0.4's ``dateType`` LASTDOC or
LASTAUTORIZATION; a ``startDate`` that names no real moment is a Sender fault naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import yaml
from lxml import etree

from esante.simulators.dmp.patient.records import Authorisation, DmpRecord, Records, hl7_time, now
from esante.simulators.dmp.protocol import HABILITATIONS_NS, OID_DMP_INTERNAL_ID, OID_PS_NATIONAL_ID, PATIENTS_NS
from esante.simulators.dmp.transport.call import Call, DmpError, DmpFault, Reply
from esante.simulators.kits.ihe_xds.hl7v2 import parse_dtm
from esante.simulators.kits.xml import text_of

OTP_TYPES = ("SMS", "EMAIL")
#: TD1.6's modes (the WSDL's modeType): the record keeps a blocked professional as BLOQUE.
LIST_MODES = {"TOUTE": ("ACTIVE", "BLOQUE"), "ACTIVE": ("ACTIVE",), "INTERDITE": ("BLOQUE",)}
ANSWERED_MODE = {"ACTIVE": "ACTIVE", "BLOQUE": "INTERDITE"}
SPECIALTIES_FILE = Path(__file__).parent.parent / "data" / "specialties.yaml"


@cache
def specialty_labels() -> dict[str, str]:
    return yaml.safe_load(SPECIALTIES_FILE.read_text(encoding="utf-8"))


def _namespace(call: Call) -> str:
    return etree.QName(call.body).namespace or ""


def output(call: Call) -> tuple[etree._Element, etree._Element]:
    """``<opResponse><output>`` in the request's namespace; returns (response, output) to fill before status."""
    ns = _namespace(call)
    response = etree.Element(f"{{{ns}}}{etree.QName(call.body).localname}Response", nsmap={"ns1": ns})
    return response, etree.SubElement(response, f"{{{ns}}}output")


def finish(out: etree._Element, status: str = "DMPOk", context: str | None = "") -> None:
    ns = etree.QName(out).namespace
    etree.SubElement(out, f"{{{ns}}}status").text = status
    if context is not None:
        etree.SubElement(out, f"{{{ns}}}context").text = context


def _child(call: Call, name: str) -> str | None:
    return text_of(call.body.find(f"{{{_namespace(call)}}}{name}"))


def _add(parent: etree._Element, name: str, text: str) -> None:
    etree.SubElement(parent, f"{{{etree.QName(parent).namespace}}}{name}").text = text


# -- habilitations ---------------------------------------------------------------------------------------
def set_authorisation(call: Call, records: Records, record: DmpRecord) -> Reply:
    """TD0.3: AJOUT gives the caller an authorisation on the VIHF's patient; SUPPRESSION withdraws it."""
    action = _child(call, "action")
    actor = call.vihf.national_id
    current = record.authorisations.get(actor)
    if action == "AJOUT":
        if current is not None and current.mode == "BLOQUE":
            raise DmpError("DMPAccessDeniedByPatient", "the patient has blocked this professional")
        context = "Autorisation déjà présente aucune action effectuée" if current else "Autorisation ajoutée"
        if current is None:
            record.authorisations[actor] = Authorisation(actor, "ACTIVE")
        else:
            current.last_action = now()
    elif action == "SUPPRESSION":
        if current is None or current.mode != "ACTIVE":
            raise DmpError("DMPAuthorizationNotFound", "no authorisation of this professional to withdraw")
        del record.authorisations[actor]
        context = "Autorisation supprimée"
    else:
        raise DmpError("DMPInvalidRequest", f"action {action!r} is neither AJOUT nor SUPPRESSION")
    call.notes.authorisation = record.authorisation_of(actor)
    response, out = output(call)
    finish(out, context=context)
    return Reply(response)


def list_authorisations(call: Call, records: Records, record: DmpRecord) -> Reply:
    """TD1.6: the professionals authorised (ACTIVE) or blocked (BLOQUE) on the patient's DMP."""
    mode = _child(call, "mode") or "TOUTE"
    if mode not in LIST_MODES:
        raise DmpError("DMPInvalidRequest", f"mode {mode!r} is not {', '.join(LIST_MODES)}")
    response, out = output(call)
    for auth in record.authorisations.values():
        if auth.mode not in LIST_MODES[mode]:
            continue
        item = etree.SubElement(out, f"{{{HABILITATIONS_NS}}}listOfAuthorizationByPatient")
        professional = records.professional(auth.national_id)
        _add(item, "nationalId", auth.national_id)
        _add(item, "nationalIdType", OID_PS_NATIONAL_ID)
        if professional is not None:
            _add(item, "firstName", professional.given_name)
            _add(item, "lastName", professional.family_name)
            if professional.specialty_code:
                _add(item, "codeSpeciality", f"G15_{professional.profession_code}/{professional.specialty_code}")
                label = specialty_labels().get(professional.specialty_code)
                if label:
                    _add(item, "libSpeciality", f"{professional.profession_label} - {label}")
        _add(item, "startOfAuthorization", hl7_time(auth.start))
        _add(item, "lastActionDate", hl7_time(auth.last_action))
        _add(item, "mode", ANSWERED_MODE[auth.mode])
    finish(out)
    return Reply(response)


# -- patient-specific services ---------------------------------------------------------------------------
def patient_list(call: Call, records: Records, record: DmpRecord | None) -> Reply:
    """TD0.4: the DMPs the caller is authorised on whose last document (LASTDOC) or the caller's authorisation
    (LASTAUTORIZATION) is after startDate."""
    start = _child(call, "startDate") or ""
    date_type = _child(call, "dateType") or "LASTDOC"
    since = parse_dtm(start)
    if since is None or len(start) < 8:
        raise DmpFault("body_invalid", f"patientList/startDate {start!r} is not an HL7 date (YYYYMMDD[hhmmss])")
    if date_type not in ("LASTDOC", "LASTAUTORIZATION"):
        raise DmpError("DMPInvalidRequest", f"dateType {date_type!r} is neither LASTDOC nor LASTAUTORIZATION")
    response, out = output(call)
    actor = call.vihf.national_id
    for found in records.authorised_for(actor):
        authorisation = found.authorisations.get(actor)
        moment = found.last_add if date_type == "LASTDOC" else authorisation.last_action if authorisation else None
        if moment is None or moment < since:
            continue
        _patient_entry(out, found, actor)
    finish(out, context=None)
    return Reply(response)


def _patient_entry(out: etree._Element, record: DmpRecord, actor: str) -> None:
    item = etree.SubElement(out, f"{{{PATIENTS_NS}}}patientlistData")
    for national_id, kind in ((record.internal_id, OID_DMP_INTERNAL_ID), (record.ins, record.patient.ins.oid)):
        ident = etree.SubElement(item, f"{{{PATIENTS_NS}}}patientIdentifier")
        _add(ident, "nationalId", national_id)
        _add(ident, "nationalIdType", kind)
    _add(item, "lastName", record.patient.used_name or record.patient.birth_name)
    _add(item, "firstName", record.patient.first_names[0])
    _add(item, "dateOfBirth", record.patient.birth_date.replace("-", ""))
    _add(item, "MT", str(record.treating_doctor == actor).lower())
    _add(item, "message", "false")
    _add(item, "lastAccessDate", hl7_time(record.last_access))
    _add(item, "lastUpdateDate", hl7_time(record.last_update))
    if record.last_add is not None:
        _add(item, "lastAddDate", hl7_time(record.last_add))


def create_patient_access(call: Call, records: Records, record: DmpRecord) -> Reply:
    """TD1.5a: a web account for the patient, its first OTP channel; answers the login and a one-time password."""
    otp_type, channel = _child(call, "type"), _child(call, "canal")
    if otp_type not in OTP_TYPES or not channel:
        raise DmpError("DMPInvalidRequest", f"type must be one of {', '.join(OTP_TYPES)} with a canal")
    if record.web_login is not None:
        raise DmpError("DMPPatientAccessAlreadyExists", "the patient already has a web account")
    login, password = record.new_web_access()
    record.otp_channels.append((otp_type, channel))
    return _access_answer(call, login, password)


def update_patient_access(call: Call, records: Records, record: DmpRecord) -> Reply:
    """TD1.5d: new credentials for an existing web account."""
    if record.web_login is None:
        raise DmpError("DMPPatientAccessNotFound", "the patient has no web account")
    return _access_answer(call, *record.new_web_access())


def _access_answer(call: Call, login: str, password: str) -> Reply:
    response, out = output(call)
    _add(out, "login", login)
    _add(out, "password", password)
    finish(out)
    return Reply(response)


def update_otp(call: Call, records: Records, record: DmpRecord) -> Reply:
    """TD1.5b: add (AJOUT) or remove (SUPPRESSION) an OTP channel of the patient's web account."""
    otp_type, channel, action = _child(call, "type"), _child(call, "canal"), _child(call, "action")
    if otp_type not in OTP_TYPES or not channel or action not in ("AJOUT", "SUPPRESSION"):
        raise DmpError("DMPInvalidRequest", "patientOTPUpdate needs type (SMS|EMAIL), canal and action")
    entry = (otp_type, channel)
    if action == "AJOUT" and entry not in record.otp_channels:
        record.otp_channels.append(entry)
    elif action == "SUPPRESSION":
        if entry not in record.otp_channels:
            raise DmpError("DMPInvalidRequest", f"no OTP channel {otp_type} {channel} to remove")
        record.otp_channels.remove(entry)
    response, out = output(call)
    finish(out, context="OTP mis à jour")
    return Reply(response)


def error_reply(call: Call, error: DmpError) -> Reply:
    response, out = output(call)
    finish(out, status=error.code, context=error.message)
    return Reply(response)


ServiceHandler = Callable[[Call, Records, DmpRecord], Reply]
#: TD → handler; every one but TD0.4 works on the DMP of the VIHF's patient, which must exist and be open.
BY_TD: dict[str, ServiceHandler] = {
    "TD0.3": set_authorisation, "TD1.6": list_authorisations, "TD1.5a": create_patient_access,
    "TD1.5b": update_otp, "TD1.5d": update_patient_access,
}
