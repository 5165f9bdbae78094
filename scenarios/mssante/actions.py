"""The MSSanté driver actions: what a professional does in a mail-capable health software (an LPS).

* ``mss.login`` — the user signs in with Pro Santé Connect to open their MSSanté mailbox; a browser flow (the
  harness fills PSC's login page). Params ``{professional}``.
* ``mss.lookup_recipient`` — the user looks a professional up in the directory (Annuaire Santé) to write to
  them. Params ``{recipient: {rpps, family_name, given_name}}``.
* ``mss.send`` — the user sends a letter: to a professional known by RPPS (the software finds the address in
  the directory), to a patient (``<INS>@patient.mssante.fr``) or to a typed address (``with: {address}``);
  with a structured document about ``patient`` (CDA R2 in IHE_XDM.ZIP), a read receipt when ``with:
  {receipt: true}``; from the application mailbox (``with: {from: application}``, certificate) or an
  organisational one (``with: {from: ORG address}``).
* ``mss.integrate`` — the software reads the signed-in professional's INBOX, integrates the structured
  documents and answers the read receipts asked for (an error receipt 902 for an unknown patient). No params.
"""

from __future__ import annotations

from typing import Any

from esante.harness.suite import Step, action
from esante.simulators.dataset import Dataset
from esante.simulators.mssante.mailboxes import patient_address


def _professional(dataset: Dataset, professional_id: str) -> dict[str, Any]:
    p = dataset.professional(professional_id)
    return {"id": p.id, "national_id": p.national_id, "family_name": p.family_name, "given_name": p.given_name}


def _patient(dataset: Dataset, patient_id: str) -> dict[str, Any]:
    p = dataset.patient(patient_id)
    return {"id": p.id, "ins": p.ins.nir + p.ins.key, "oid": p.ins.oid, "family_name": p.birth_name,
            "given_name": p.first_names[0], "birth_date": p.birth_date, "sex": p.sex}


def _recipient(dataset: Dataset, professional_id: str) -> dict[str, Any]:
    p = dataset.professional(professional_id)
    return {"kind": "professional", "rpps": p.rpps, "family_name": p.family_name, "given_name": p.given_name}


@action("mss.login", title="Open the MSSanté mailbox (sign in with Pro Santé Connect)",
        instruction="Open the secure messaging and sign in with Pro Santé Connect as {professional[national_id]} "
                    "({professional[given_name]} {professional[family_name]}).",
        browser_form=lambda params: {"national_id": params["professional"]["national_id"], "channel": "MOBILE"})
def login(step: Step, dataset: Dataset) -> dict[str, Any]:
    if step.professional is None:
        raise ValueError("mss.login needs a 'professional'")
    return {"professional": _professional(dataset, step.professional)}


@action("mss.lookup_recipient", title="Find a recipient in the directory",
        instruction="Search the MSSanté directory for {recipient[given_name]} {recipient[family_name]} "
                    "(RPPS {recipient[rpps]}) and show their secure mailbox.")
def lookup_recipient(step: Step, dataset: Dataset) -> dict[str, Any]:
    if "to" not in step.with_:
        raise ValueError("mss.lookup_recipient needs with: {to: <professional id>}")
    return {"recipient": _recipient(dataset, step.with_["to"])}


@action("mss.send", title="Send a secure message",
        instruction="Write to {recipient} and send it (with the structured document about the patient when "
                    "one is given; ask for a read receipt when asked).")
def send(step: Step, dataset: Dataset) -> dict[str, Any]:
    w = step.with_
    if "to" in w:
        recipient = _recipient(dataset, w["to"])
    elif "address" in w:
        recipient = {"kind": "address", "address": w["address"]}
    elif w.get("to_patient") and step.patient:
        p = dataset.patient(step.patient)
        recipient = {"kind": "patient", "address": patient_address(p.ins.nir, p.ins.key)}
    else:
        raise ValueError("mss.send needs with: {to: <professional id>}, {address} or {to_patient: true} + patient")
    params: dict[str, Any] = {"recipient": recipient, "receipt": bool(w.get("receipt", False))}
    if step.patient and w.get("document", True):
        params["document"] = {"patient": _patient(dataset, step.patient), "title": w.get("title", "Lettre de liaison"),
                              "code": w.get("code", "34133-9")}
    sender = w.get("from")
    if sender == "application":
        box = next(b for b in dataset.mailboxes if b.type == "APP")
        params["sender"] = {"kind": "application", "address": box.address, "certificate_cn": box.certificate_cn}
    elif sender:
        params["sender"] = {"kind": "organisation", "address": sender}
    return params


@action("mss.integrate", title="Read the INBOX and integrate the documents",
        instruction="Open the INBOX, integrate the structured documents received and let the software answer "
                    "the read receipts asked for.")
def integrate(step: Step, dataset: Dataset) -> dict[str, Any]:
    return {}
