"""The DMP driver actions: what a professional does with the shared medical record from their software.

Every action names the patient (``patient: P001``) and the professional (``professional: PS002``) and may
say, in ``with``, the access mode (``mode: normal | centre_15 | bris_de_glace``) and the authentication
(``auth``): ``INDIRECTE_RENFORCEE`` (the default: the structure's certificate, the professional authenticated
individually, e.g. with Pro Santé Connect), ``INDIRECTE`` (the structure's certificate alone: the rights
matrix then allows testing, authorising and feeding, not consulting) or ``DIRECTE`` (the professional's CPS).

* ``dmp.test_existence`` — TD0.2: does the patient have a DMP, may I access it? The report's ``record``.
* ``dmp.authorise`` — TD0.3: the professional declares themself authorised (the patient agreed).
* ``dmp.read_admin`` — TD1.3a: the DMP's administrative data.
* ``dmp.feed`` — TD2.1: send a document: ``kind: N3`` (structured CDA, the default) or ``N1`` (a PDF in an
  unstructured CDA), ``title``, ``confidentiality`` (``[MASQUE_PS]``, ``[INVISIBLE_PATIENT]``), ``replaces:
  last`` (a new version of the last document fed). The report lists the document fed.
* ``dmp.search`` — TD3.1: the patient's documents, ``statuses: [approved, archived]`` (default approved).
* ``dmp.retrieve`` — TD3.2: open a document (``document: last``, the last one fed, else the last found).
* ``dmp.update`` — TD3.3: ``operation: mask | unmask | hide_from_patient | show_to_patient | archive |
  unarchive | delete`` on ``document: last``.
* ``dmp.search_patient`` — TD0.5: find a patient's DMP without the INS (régulation), by ``family_name``,
  ``given_name``, ``birth_date`` (from the step's patient unless given).

A patient's identity carries its status: a provisional identity (``with: {identity_status: PROV}``) has no
INS, and a software must then send nothing to the DMP.
"""

from __future__ import annotations

from typing import Any

from esante.harness.suite import Step, action
from esante.simulators.dataset import Dataset

MODES = ("normal", "centre_15", "bris_de_glace")
AUTHS = ("INDIRECTE_RENFORCEE", "INDIRECTE", "DIRECTE")
OPERATIONS = ("mask", "unmask", "hide_from_patient", "show_to_patient", "archive", "unarchive", "delete")
STATUSES = ("approved", "archived", "deprecated")


def _patient(step: Step, dataset: Dataset) -> dict[str, Any]:
    if step.patient is None:
        raise ValueError(f"step {step.action} needs a 'patient'")
    p = dataset.patient(step.patient)
    status = step.with_.get("identity_status", "QUAL")
    if status not in ("QUAL", "VALI", "RECUP", "PROV"):
        raise ValueError(f"identity_status {status!r} is not QUAL, VALI, RECUP or PROV")
    ins = None if status == "PROV" else {"nir": p.ins.nir, "key": p.ins.key, "oid": p.ins.oid}
    return {"id": p.id, "identity_status": status, "ins": ins, "birth_name": p.birth_name,
            "used_name": p.used_name, "first_names": list(p.first_names), "sex": p.sex, "birth_date": p.birth_date,
            "birth_place": p.birth_place}


def _professional(step: Step, dataset: Dataset) -> dict[str, Any]:
    if step.professional is None:
        raise ValueError(f"step {step.action} needs a 'professional'")
    p = dataset.professional(step.professional)
    structure = dataset.structure(step.with_.get("structure") or (p.structure_ids[0] if p.structure_ids else "S001"))
    return {"id": p.id, "national_id": p.national_id, "family_name": p.family_name, "given_name": p.given_name,
            "profession_code": p.profession_code, "profession_label": p.profession_label,
            "specialty_code": p.specialty_code,
            "structure": {"id": structure.id, "finess": structure.finess, "name": structure.name,
                          "sector": structure.sector_code}}


def _common(step: Step, dataset: Dataset) -> dict[str, Any]:
    mode, auth = step.with_.get("mode", "normal"), step.with_.get("auth", "INDIRECTE_RENFORCEE")
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if auth not in AUTHS:
        raise ValueError(f"auth {auth!r} is not one of {', '.join(AUTHS)}")
    return {"patient": _patient(step, dataset), "professional": _professional(step, dataset), "mode": mode,
            "auth": auth}


_WHO = "As {professional[given_name]} {professional[family_name]}, for patient {patient[birth_name]} " \
       "{patient[first_names][0]} ({patient[birth_date]}): "


@action("dmp.test_existence", title="Check the patient's DMP", instruction=_WHO + "open the patient's DMP "
        "panel (existence and authorisation test) and note what the software shows.")
def test_existence(step: Step, dataset: Dataset) -> dict[str, Any]:
    return _common(step, dataset)


@action("dmp.authorise", title="Declare the professional authorised",
        instruction=_WHO + "declare that the patient authorised you to access their DMP.")
def authorise(step: Step, dataset: Dataset) -> dict[str, Any]:
    return _common(step, dataset)


@action("dmp.read_admin", title="Read the DMP's administrative data",
        instruction=_WHO + "open the DMP's administrative data.")
def read_admin(step: Step, dataset: Dataset) -> dict[str, Any]:
    return _common(step, dataset)


@action("dmp.feed", title="Send a document to the DMP",
        instruction=_WHO + "send a {kind} document titled \"{title}\" to the DMP.")
def feed(step: Step, dataset: Dataset) -> dict[str, Any]:
    kind = step.with_.get("kind", "N3")
    if kind not in ("N1", "N3"):
        raise ValueError(f"kind {kind!r} is not N1 (PDF) or N3 (structured CDA)")
    confidentiality = list(step.with_.get("confidentiality", []))
    if set(confidentiality) - {"MASQUE_PS", "INVISIBLE_PATIENT"}:
        raise ValueError(f"confidentiality {confidentiality} may hold MASQUE_PS and INVISIBLE_PATIENT only")
    replaces = step.with_.get("replaces")
    if replaces not in (None, "last"):
        raise ValueError("replaces may only be 'last'")
    title = step.with_.get("title", "Compte rendu de consultation" if kind == "N3" else "Compte rendu (PDF)")
    return {**_common(step, dataset), "kind": kind, "title": title, "confidentiality": confidentiality,
            "replaces": replaces}


@action("dmp.search", title="List the patient's documents in the DMP",
        instruction=_WHO + "list the DMP's documents with status {statuses}.")
def search(step: Step, dataset: Dataset) -> dict[str, Any]:
    statuses = list(step.with_.get("statuses", ["approved"]))
    if not statuses or set(statuses) - set(STATUSES):
        raise ValueError(f"statuses {statuses} must be among {', '.join(STATUSES)}")
    return {**_common(step, dataset), "statuses": statuses}


@action("dmp.retrieve", title="Open a document of the DMP",
        instruction=_WHO + "open the {document} document of the DMP.")
def retrieve(step: Step, dataset: Dataset) -> dict[str, Any]:
    return {**_common(step, dataset), "document": _document(step)}


@action("dmp.update", title="Change a document's visibility or status",
        instruction=_WHO + "{operation} the {document} document.")
def update(step: Step, dataset: Dataset) -> dict[str, Any]:
    operation = step.with_.get("operation")
    if operation not in OPERATIONS:
        raise ValueError(f"operation {operation!r} is not one of {', '.join(OPERATIONS)}")
    return {**_common(step, dataset), "document": _document(step), "operation": operation}


@action("dmp.search_patient", title="Find a patient's DMP without the INS",
        instruction=_WHO + "search the DMP for the patient by name and birth date (no INS).")
def search_patient(step: Step, dataset: Dataset) -> dict[str, Any]:
    common = _common(step, dataset)
    patient = common["patient"]
    return {**common, "family_name": step.with_.get("family_name", patient["birth_name"]),
            "given_name": step.with_.get("given_name"), "birth_date": step.with_.get("birth_date")}


def _document(step: Step) -> str:
    document = step.with_.get("document", "last")
    if document != "last":
        raise ValueError("document may only be 'last' (the last document fed, else the last found)")
    return document
