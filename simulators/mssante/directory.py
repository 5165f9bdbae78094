"""The Annuaire Santé FHIR API subset a messaging client needs to find a recipient (v2: Practitioner,
PractitionerRole, Organization), served from the shared data set through the FHIR kit: resources built once per
data set, validated with fhir.resources and kept in the kit's store (``meta.versionId``, ``meta.lastUpdated``);
searches run by the kit's search engine (R4 semantics: OR with commas, AND by repetition, ``_count`` capped with
a ``next`` link, unknown parameters and malformed values refused with an OperationOutcome): ``identifier``
(token), ``name`` (string: starts with, ``:contains``, ``:exact``), ``mailbox-mss`` (string, the same
modifiers), ``mailbox-mss-type`` (token: PER, ORG, APP, CAB), ``_id``, ``_lastUpdated``, ``_count``, ``_offset``.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole

from esante.simulators.dataset import Dataset
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.fhir.search import COMMON, SearchParam, parse_search, searchset
from esante.simulators.kits.fhir.store import ResourceStore
from esante.simulators.mssante.protocol import MAILBOX_TYPES, MAX_PAGE_SIZE, PAGE_SIZE

SYSTEM_IDNAT = "urn:oid:1.2.250.1.71.4.2.1"  # idNatPS (8 + RPPS)
SYSTEM_RPPS = "https://rpps.esante.gouv.fr"
SYSTEM_FINESS = "urn:oid:1.2.250.1.71.4.2.2"
EXT_EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
EXT_MAILBOX = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata"
SYSTEM_EMAIL_TYPE = "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"


def mailbox_telecom(address: str, kind: str, description: str) -> dict[str, Any]:
    return {"system": "email", "value": address, "extension": [
        {"url": EXT_EMAIL_TYPE, "valueCoding": {"system": SYSTEM_EMAIL_TYPE, "code": "MSSANTE"}},
        {"url": EXT_MAILBOX, "extension": [
            {"url": "type", "valueCodeableConcept": {"coding": [{"code": kind}]}},
            {"url": "description", "valueString": description},
            {"url": "listeRouge", "valueBoolean": False},
            {"url": "digitization", "valueBoolean": False}]}]}


def _mailboxes(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(address, type) of the resource's MSSanté mailboxes."""
    found = []
    for telecom in resource.get("telecom", []):
        meta = next((e for e in telecom.get("extension", []) if e["url"] == EXT_MAILBOX), None)
        kind = next((x["valueCodeableConcept"]["coding"][0]["code"] for x in (meta or {}).get("extension", [])
                     if x["url"] == "type"), "")
        found.append((telecom["value"], kind))
    return found


def _names(resource: dict[str, Any]) -> list[Any]:
    if resource["resourceType"] == "PractitionerRole":
        return resource["practitioner"].get("display", "").split()
    return [resource.get("name", "")]


PARAMS = {p.name: p for p in (
    SearchParam("identifier", "token", ("identifier",)),
    SearchParam("name", "string", extract=_names),
    SearchParam("mailbox-mss", "string", extract=lambda r: [a for a, _ in _mailboxes(r)]),
    SearchParam("mailbox-mss-type", "token", extract=lambda r: [k for _, k in _mailboxes(r)], codes=MAILBOX_TYPES),
    *COMMON)}


class FhirDirectory:
    """The resources of one data set, kept for search."""

    def __init__(self, dataset: Dataset) -> None:
        self.store = ResourceStore()
        for pro in dataset.professionals:
            telecom = [mailbox_telecom(pro.mssante, "PER", f"{pro.given_name} {pro.family_name}")] \
                if pro.mssante else []
            ids = [{"system": SYSTEM_IDNAT, "value": pro.national_id}, {"system": SYSTEM_RPPS, "value": pro.rpps}]
            self._add(Practitioner, {"resourceType": "Practitioner", "id": f"pr-{pro.rpps}", "identifier": ids,
                                     "active": True, "name": [{"family": pro.family_name, "given": [pro.given_name]}],
                                     "telecom": telecom})
            for sid in pro.structure_ids or [None]:
                role: dict[str, Any] = {
                    "resourceType": "PractitionerRole", "id": f"prr-{pro.rpps}-{sid or 'none'}", "active": True,
                    "identifier": ids, "practitioner": {"reference": f"Practitioner/pr-{pro.rpps}",
                                                        "display": f"{pro.given_name} {pro.family_name}"},
                    "code": [{"coding": [{"code": pro.profession_code, "display": pro.profession_label}]}],
                    "telecom": telecom}
                if sid:
                    role["organization"] = {"reference": f"Organization/org-{dataset.structure(sid).finess}"}
                self._add(PractitionerRole, role)
        for structure in dataset.structures:
            boxes = [mailbox_telecom(b.address, b.type, b.description) for b in dataset.mailboxes
                     if b.structure_id == structure.id]
            self._add(Organization, {"resourceType": "Organization", "id": f"org-{structure.finess}", "active": True,
                                     "identifier": [{"system": SYSTEM_FINESS, "value": structure.finess}],
                                     "name": structure.name, "telecom": boxes})

    def _add(self, model: Any, resource: dict[str, Any]) -> None:
        if not resource.get("telecom"):
            resource.pop("telecom", None)
        model.model_validate(resource)  # a data set the FHIR model refuses fails at load, not in a test
        self.store.create(resource, resource["id"])

    def read(self, kind: str, resource_id: str) -> dict[str, Any]:
        self._served(kind)
        return self.store.read(kind, resource_id)

    def _served(self, kind: str) -> None:
        if kind not in ("Practitioner", "PractitionerRole", "Organization"):
            raise FhirError(404, "not-supported", f"resource type {kind} is not served by this directory")

    def search(self, kind: str, params: list[tuple[str, str]], base: str) -> dict[str, Any]:
        """A ``searchset`` page (strict handling: an unknown parameter is refused)."""
        self._served(kind)
        search = parse_search(params, PARAMS, page_size=PAGE_SIZE, max_page=MAX_PAGE_SIZE)
        return searchset(f"{base}/{kind}", search, search.run(self.store.current(kind)))
