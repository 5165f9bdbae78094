"""The DMP's HL7v3 patient transactions: TD0.2 (existence and authorisation test), TD0.5 (patient search
without INS, PDQv3), TD1.3a/b (administrative data read / update) and TD1.4 (closing).

Answers imitate the official example responses: the DMP's device as sender, the request's sender as receiver,
``acknowledgement`` targeting the request's id, a ``registrationEvent`` for the patient; each one valid against
the schema of its message in the DMP's annex v2.01.04: HL7v3 NE2009 for PRPA_IN201308UV02 and the
``PRPA_IN201314UV02_Response`` wrapper (GestionDossierPatientPartage.wsdl), NE2008 for PDQ's PRPA_IN201306UV02
(PDQSupplier.wsdl: there ``acknowledgement/typeCode`` is an element, as in the official TD0.5 answer).

Refusals carry an ``acknowledgement`` ``AE`` with an ``acknowledgementDetail`` holding the DMP's code (the DMP's
complete code list is not public: the codes used are those seen in public material, see ``dmp.md``), in the
message type the WSDL gives for a refusal: PRPA_IN201308UV02 and PRPA_IN201306UV02 with a ``queryAck`` ``AE``,
and, for PRPA_IN201314UV02, PRPA_IN201316UV02 ("registration request refused", not PRPA_IN201315UV02 the
"accepted" one), naming the patient of the refused request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from lxml import etree

from esante.simulators.dataset.identifiers import normalise_name
from esante.simulators.dmp.patient.records import DmpRecord, Records, hl7_time, now
from esante.simulators.dmp.protocol import (
    GDP_NS,
    HL7_NS,
    INS_OIDS,
    OID_ADMIN_OBSERVATION,
    OID_ATTENTION_KEYWORD,
    OID_AUTHORISATION_VALUE,
    OID_CLOSING_REASON,
    OID_DMP,
    OID_DMP_INTERNAL_ID,
    OID_DMP_MESSAGE,
    OID_INTERACTION,
    OID_REASON,
    OID_TREATING_DOCTOR_KEYWORD,
    OID_WEB_ACCOUNT_OBSERVATION,
    REASON_NAMES,
    XSI_NS,
)
from esante.simulators.dmp.transport.call import Call, DmpError, DmpFault, Reply
from esante.simulators.kits.ihe_xds.hl7v2 import parse_dtm
from esante.simulators.kits.xml import text_of

H = f"{{{HL7_NS}}}"
MAX_SEARCH_RESULTS = 10


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, H + tag, {k.rstrip("_"): v for k, v in attrs.items()})
    if text is not None:
        child.text = text
    return child


def _typed(parent: etree._Element, tag: str, xsi_type: str, **attrs: str) -> etree._Element:
    child = _el(parent, tag, **attrs)
    child.set(f"{{{XSI_NS}}}type", xsi_type)
    return child


def find(root: etree._Element, path: str) -> etree._Element | None:
    """An element by a ``/``-separated path of HL7 local names under ``root``."""
    return root.find("/".join(H + step for step in path.split("/")))


# -- reading requests ------------------------------------------------------------------------------------
def reason_code(body: etree._Element) -> str | None:
    reason = find(body, "controlActProcess/reasonCode")
    return reason.get("code") if reason is not None else None


def requested_ins(body: etree._Element) -> str:
    """The INS a request is about (query parameter or registration subject); DmpError when absent or odd."""
    value = find(body, "controlActProcess/queryByParameter/parameterList/patientIdentifier/value")
    if value is None:
        value = find(body, "controlActProcess/subject/registrationRequest/subject1/patient/id")
    if value is None:
        raise DmpError("DMPInvalidRequest", "the request names no patient (patientIdentifier or patient/id)")
    root, extension = value.get("root", ""), value.get("extension", "")
    if root not in INS_OIDS:
        raise DmpError("DMPInvalidRequest", f"patient id root {root!r} is not an INS OID ({', '.join(INS_OIDS)})")
    if len(extension) != 15 or not extension[:13].isalnum() or not extension[13:].isdigit():
        raise DmpError("DMPInvalidRequest", f"INS {extension!r} is not a 15-character NIR and key")
    return extension


# -- writing answers -------------------------------------------------------------------------------------
def _device(parent: etree._Element, role: str, device_id: str, name: str | None) -> None:
    device = _el(_el(parent, role, typeCode="RCV" if role == "receiver" else "SND"), "device",
                 classCode="DEV", determinerCode="INSTANCE")
    _el(device, "id", root=device_id)
    if name:
        _el(device, "softwareName", name)


#: The wrapper element of the answer to PRPA_IN201314UV02 (GestionDossierPatientPartage.wsdl).
REGISTRATION_WRAPPER = "PRPA_IN201314UV02_Response"


def message(interaction: str, request: etree._Element, *,
            wrapper: str | None = None) -> tuple[etree._Element, etree._Element]:
    """An HL7v3 answer to ``request``: returns (the body element to send, the message element to fill)."""
    outer = etree.Element(f"{{{GDP_NS}}}{wrapper}", nsmap={None: HL7_NS, "ns2": GDP_NS}) \
        if wrapper else None
    msg = etree.Element(H + interaction, ITSVersion="XML_1.0", nsmap={None: HL7_NS}) if outer is None \
        else _el(outer, interaction, ITSVersion="XML_1.0")
    _el(msg, "id", root=OID_DMP_MESSAGE, extension=str(uuid.uuid4()))
    _el(msg, "creationTime", value=hl7_time(now()))
    _el(msg, "interactionId", root=OID_INTERACTION, extension=interaction)
    _el(msg, "processingCode", code="P")
    _el(msg, "processingModeCode", code="T")
    _el(msg, "acceptAckCode", code="NE")
    sender = find(request, "sender/device")
    sender_id = sender.find(H + "id") if sender is not None else None
    _device(msg, "receiver", sender_id.get("root", "") if sender_id is not None else "",
            text_of(sender.find(H + "softwareName")) if sender is not None else None)
    _device(msg, "sender", OID_DMP, "DMP")
    return (outer if outer is not None else msg), msg


def acknowledge(msg: etree._Element, request: etree._Element, ack: str = "AA",
                detail: tuple[str, str] | None = None, *, ne2008: bool = False) -> None:
    """The acknowledgement of ``request``: ``typeCode`` an attribute (NE2009), or an element (NE2008, PDQ)."""
    acknowledgement = _el(msg, "acknowledgement", **({} if ne2008 else {"typeCode": ack}))
    if ne2008:
        _el(acknowledgement, "typeCode", code=ack)
    target = find(request, "id")
    _el(_el(acknowledgement, "targetMessage"), "id", root=target.get("root", "") if target is not None else "",
        **({"extension": target.get("extension", "")} if target is not None and target.get("extension") else {}))
    if detail is not None:
        code, text = detail
        item = _el(acknowledgement, "acknowledgementDetail", typeCode="E" if ack != "AA" else "I")
        _el(item, "code", code=code, codeSystem=OID_DMP)
        _el(item, "text", text)


def _person_name(parent: etree._Element, record: DmpRecord) -> None:
    patient = record.patient
    name = _el(parent, "name")
    _el(name, "prefix", "M" if patient.sex == "M" else "Mme")
    for given in patient.first_names:
        _el(name, "given", given)
    _el(name, "family", patient.used_name or patient.birth_name, qualifier="SP")
    if patient.used_name:
        _el(name, "family", patient.birth_name, qualifier="BR")


def _observation(parent: etree._Element, tag: str, code: str, system: str, value: bool) -> None:
    obs = _el(_el(parent, tag, typeCode="SBJ"), "administrativeObservation", classCode="OBS", moodCode="EVN")
    _el(obs, "code", code=code, codeSystem=system)
    _typed(obs, "value", "BL", value=str(value).lower())


def _patient(parent: etree._Element, record: DmpRecord, *, details: bool = True) -> etree._Element:
    patient = _el(parent, "patient", classCode="PAT")
    _el(patient, "id", root=OID_DMP_INTERNAL_ID, extension=record.internal_id)
    _el(patient, "id", root=record.patient.ins.oid, extension=record.ins)
    _el(patient, "statusCode", code="active" if record.is_open else "terminated")
    person = _el(patient, "patientPerson", classCode="PSN", determinerCode="INSTANCE")
    _person_name(person, record)
    if details:
        for use, value in record.telecoms:
            _el(person, "telecom", value=value, **({"use": use} if use else {}))
        _el(person, "administrativeGenderCode", code=record.patient.sex)
        _el(person, "birthTime", value=record.patient.birth_date.replace("-", ""))
        if record.address:
            addr = _el(person, "addr")
            for key in ("streetAddressLine", "postalCode", "city", "country"):
                if key in record.address:
                    _el(addr, key, record.address[key])
    return patient


def _registration(control: etree._Element, record: DmpRecord | None, *, status: str = "completed",
                  details: bool = True) -> etree._Element | None:
    if record is None:
        return None
    event = _el(_el(control, "subject", contextConductionInd="false", typeCode="SUBJ"), "registrationEvent",
                classCode="REG", moodCode="EVN")
    _el(event, "statusCode", code=status)
    patient = _patient(_el(event, "subject1", typeCode="SBJ"), record, details=details)
    _el(_el(_el(event, "custodian", typeCode="CST"), "assignedEntity", classCode="ASSIGNED"), "id", root=OID_DMP)
    return patient


def _control(msg: etree._Element, reason: str) -> etree._Element:
    control = _el(msg, "controlActProcess", classCode="CACT", moodCode="EVN")
    if reason in REASON_NAMES:
        _el(control, "reasonCode", code=reason, codeSystem=OID_REASON, displayName=REASON_NAMES[reason])
    return control


def _query_ack(control: etree._Element, request: etree._Element, code: str) -> etree._Element:
    ack = _el(control, "queryAck")
    query_id = find(request, "controlActProcess/queryByParameter/queryId")
    if query_id is not None:
        _el(ack, "queryId", **{k: v for k, v in query_id.attrib.items() if k in ("root", "extension")})
    _el(ack, "queryResponseCode", code=code)
    return ack


# -- transactions ----------------------------------------------------------------------------------------
def existence_test(call: Call, records: Records, record: DmpRecord | None) -> Reply:
    """TD0.2: is there a DMP for this INS, and may the caller access it? (NF: no DMP)."""
    request = call.body
    body, msg = message("PRPA_IN201308UV02", request)
    actor = call.vihf.national_id
    if record is not None:
        line = _el(msg, "attentionLine")
        _el(line, "keyWordText", code="AUTORISATION", codeSystem=OID_ATTENTION_KEYWORD)
        _typed(line, "value", "CV", code=record.authorisation_of(actor), codeSystem=OID_AUTHORISATION_VALUE)
        line = _el(msg, "attentionLine")
        _el(line, "keyWordText", code="STATUT_MT", codeSystem=OID_TREATING_DOCTOR_KEYWORD)
        _typed(line, "value", "BL", value=str(record.treating_doctor == actor).lower())
    acknowledge(msg, request, detail=None if record is None or record.is_open else ("DMPClosed", "le DMP est fermé"))
    control = _control(msg, "TEST_EXST")
    patient = _registration(control, record, details=True)
    if patient is not None and record is not None:
        _observation(patient, "subjectOf", "COMPTE_INTERNET_OUVERT", OID_WEB_ACCOUNT_OBSERVATION,
                     record.web_login is not None)
        _observation(patient, "subjectOf", "RATTACHEMENT_ENS", OID_ADMIN_OBSERVATION, True)
    _query_ack(control, request, "OK" if record is not None else "NF")
    call.notes.dmp_status = "absent" if record is None else record.status
    return Reply(body)


def read_admin_data(call: Call, records: Records, record: DmpRecord | None) -> Reply:
    """TD1.3a: the DMP's administrative data and the patient's oppositions."""
    record = _open(record)
    record.last_access = now()
    body, msg = message("PRPA_IN201308UV02", call.body)
    acknowledge(msg, call.body)
    control = _control(msg, "CNSLT_DATA")
    patient = _registration(control, record)
    if patient is not None:
        _observation(patient, "subjectOf", "OPPOSITION_BRIS_DE_GLACE", OID_ADMIN_OBSERVATION,
                     record.opposition_bris_de_glace)
        _observation(patient, "subjectOf", "OPPOSITION_ACCES_URGENCE", OID_ADMIN_OBSERVATION, record.opposition_urgence)
    _query_ack(control, call.body, "OK")
    return Reply(body)


def update_admin_data(call: Call, records: Records, record: DmpRecord | None) -> Reply:
    """TD1.3b: contact details, address and oppositions as sent replace the DMP's."""
    record = _open(record)
    person = find(call.body, "controlActProcess/subject/registrationRequest/subject1/patient/patientPerson")
    if person is None:
        raise DmpError("DMPInvalidRequest", "MODIF_DATA without patient/patientPerson")
    record.telecoms = [(t.get("use"), t.get("value", "")) for t in person.findall(H + "telecom")]
    addr = person.find(H + "addr")
    if addr is not None:
        record.address = {etree.QName(c).localname: (c.text or "").strip() for c in addr if isinstance(c.tag, str)}
    patient = find(call.body, "controlActProcess/subject/registrationRequest/subject1/patient")
    for obs in patient.iterfind(f"{H}subjectOf/{H}administrativeObservation") if patient is not None else ():
        code, value = obs.find(H + "code"), obs.find(H + "value")
        flag = value is not None and value.get("value") == "true"
        if code is not None and code.get("code") == "OPPOSITION_BRIS_DE_GLACE":
            record.opposition_bris_de_glace = flag
        elif code is not None and code.get("code") == "OPPOSITION_ACCES_URGENCE":
            record.opposition_urgence = flag
    record.last_update = now()
    return _registration_answer(call, record, "MODIF_DATA")


def close(call: Call, records: Records, record: DmpRecord | None) -> Reply:
    """TD1.4: the DMP is closed (reasonOf/detectedIssueEvent gives the reason); later calls see it closed."""
    record = _open(record)
    reason = find(call.body, "controlActProcess/reasonOf/detectedIssueEvent/code")
    if reason is None or reason.get("codeSystem") != OID_CLOSING_REASON:
        raise DmpError("DMPInvalidRequest", f"FERM without a closing reason (detectedIssueEvent code in "
                                            f"{OID_CLOSING_REASON})")
    record.status, record.closing_reason = "closed", reason.get("code")
    call.notes.dmp_status = "closed"
    return _registration_answer(call, record, "FERM")


def _registration_answer(call: Call, record: DmpRecord, reason: str) -> Reply:
    body, msg = message("PRPA_IN201315UV02", call.body, wrapper=REGISTRATION_WRAPPER)
    acknowledge(msg, call.body)
    _registration(_control(msg, reason), record, details=False)
    return Reply(body)


def _open(record: DmpRecord | None) -> DmpRecord:
    if record is None:
        raise DmpError("DMPNotFound", "no DMP exists for this INS")
    if not record.is_open:
        raise DmpError("DMPClosed", "the DMP of this patient is closed")
    return record


def search_without_ins(call: Call, records: Records) -> Reply:
    """TD0.5 (PDQv3): patients with a DMP matching the name (and birth date, sex when given), at most 10."""
    params = find(call.body, "controlActProcess/queryByParameter/parameterList")
    if params is None:
        raise DmpError("DMPInvalidRequest", "PRPA_IN201305UV02 without queryByParameter/parameterList")
    family = text_of(params.find(f"{H}livingSubjectName/{H}value/{H}family"))
    if not family:
        raise DmpError("DMPInvalidRequest", "the search needs livingSubjectName/value/family")
    given = text_of(params.find(f"{H}livingSubjectName/{H}value/{H}given"))
    birth = _birth_date(params.find(f"{H}livingSubjectBirthTime/{H}value"))
    gender = params.find(f"{H}livingSubjectAdministrativeGender/{H}value")
    found = [r for r in records.by_ins.values()
             if _matches(r, family, given, birth, gender.get("code") if gender is not None else None)]
    body, msg = message("PRPA_IN201306UV02", call.body)
    acknowledge(msg, call.body, ne2008=True)
    control = _pdq_control(msg)
    for record in found[:MAX_SEARCH_RESULTS]:
        patient = _registration(control, record, status="active")
        if patient is not None:  # PDQ's patient carries how well it matched (NE2008: required)
            match = _el(_el(patient, "subjectOf1", typeCode="SBJ"), "queryMatchObservation", classCode="COND",
                        moodCode="EVN")
            _el(match, "code", code="POURCENTAGE")
            _typed(match, "value", "INT", value="100")
    ack = _query_ack(control, call.body, "OK" if found else "NF")
    for tag, count in (("resultTotalQuantity", len(found)), ("resultCurrentQuantity", min(len(found), 10)),
                       ("resultRemainingQuantity", max(0, len(found) - MAX_SEARCH_RESULTS))):
        _el(ack, tag, value=str(count))
    call.notes.patients_found = len(found)
    return Reply(body)


def _pdq_control(msg: etree._Element) -> etree._Element:
    control = _el(msg, "controlActProcess", classCode="CACT", moodCode="EVN")
    _el(control, "code", code="PRPA_TE201306UV02", codeSystem=OID_INTERACTION)
    return control


def _birth_date(value: etree._Element | None) -> str | None:
    """livingSubjectBirthTime as YYYYMMDD; a value naming no day is a Sender fault naming the field."""
    text = value.get("value") if value is not None else None
    if text is None:
        return None
    moment = parse_dtm(text)
    if moment is None or len(text) < 8:
        raise DmpFault("body_invalid", f"livingSubjectBirthTime/value {text!r} is not an HL7 date (YYYYMMDD)")
    return text[:8]


def _matches(record: DmpRecord, family: str, given: str | None, birth: str | None, gender: str | None) -> bool:
    patient = record.patient
    names = {normalise_name(n) for n in (patient.birth_name, patient.used_name) if n}
    if normalise_name(family) not in names:
        return False
    if given and normalise_name(given) not in {normalise_name(g) for g in patient.first_names}:
        return False
    if birth and birth != patient.birth_date.replace("-", ""):
        return False
    return not (gender and gender != patient.sex)


PatientHandler = Callable[[Call, Records, DmpRecord | None], Reply]
BY_TD: dict[str, PatientHandler] = {"TD0.2": existence_test, "TD1.3a": read_admin_data,
                                    "TD1.3b": update_admin_data, "TD1.4": close}


def error_reply(call: Call, error: DmpError) -> Reply:
    """A refused HL7v3 transaction, in the message type its WSDL gives for a refusal (module docstring)."""
    detail = (error.code, error.message)
    if call.td == "TD0.5":
        body, msg = message("PRPA_IN201306UV02", call.body)
        acknowledge(msg, call.body, "AE", detail, ne2008=True)
        _query_ack(_pdq_control(msg), call.body, "AE")
        return Reply(body)
    if call.td in ("TD1.3b", "TD1.4"):
        body, msg = message("PRPA_IN201316UV02", call.body, wrapper=REGISTRATION_WRAPPER)
        acknowledge(msg, call.body, "AE", detail)
        _refused_registration(_control(msg, reason_code(call.body) or ""), call.body)
        return Reply(body)
    body, msg = message("PRPA_IN201308UV02", call.body)
    acknowledge(msg, call.body, "AE", detail)
    _query_ack(_control(msg, reason_code(call.body) or ""), call.body, "AE")
    return Reply(body)


def _refused_registration(control: etree._Element, request: etree._Element) -> None:
    """PRPA_IN201316UV02's subject: the registration request refused, reduced to its patient's ids (its other
    content is the requester's and need not be valid: official requests are not always)."""
    registration = _el(_el(control, "subject", typeCode="SUBJ", contextConductionInd="false"), "registrationRequest",
                       classCode="REG", moodCode="RQO")
    _el(registration, "statusCode", code="active")
    patient = _el(_el(registration, "subject1", typeCode="SBJ"), "patient", classCode="PAT")
    ids = [i for i in request.iterfind(f"{H}controlActProcess/{H}subject/{H}registrationRequest/{H}subject1/"
                                       f"{H}patient/{H}id") if i.get("root")]
    for ident in ids:
        _el(patient, "id", **{k: v for k, v in ident.attrib.items() if k in ("root", "extension")})
    if not ids:
        _el(patient, "id", nullFlavor="NI")
    _el(patient, "statusCode", code="active")
    _el(_el(patient, "patientPerson", classCode="PSN", determinerCode="INSTANCE"), "name", nullFlavor="NI")
    _el(registration, "author", typeCode="AUT").set(f"{{{XSI_NS}}}nil", "true")
