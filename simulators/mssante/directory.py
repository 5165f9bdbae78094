"""The Annuaire Santé FHIR API subset a messaging client needs to find a recipient (v2: Practitioner,
PractitionerRole, Organization), served from the shared data set. Resources are built once per data set and
validated with fhir.resources
(FHIR R4B: the Annuaire Santé API is R4); searches: ``identifier`` (``system|value`` or value), ``name`` (contains,
case-insensitive), ``mailbox-mss`` (starts with; ``:contains``, ``:exact``), ``mailbox-mss-type`` (PER, ORG,
APP, CAB), ``_count`` and ``_offset`` for paging; unknown parameters and bad values answer an OperationOutcome
(the FHIR kit's :class:`~esante.simulators.kits.fhir.errors.FhirError`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole

from esante.simulators.dataset import Dataset
from esante.simulators.kits.fhir.errors import FhirError
from esante.simulators.kits.fhir.search import searchset
from esante.simulators.mssante.protocol import MAILBOX_TYPES, MAX_PAGE_SIZE, PAGE_SIZE

SYSTEM_IDNAT = "urn:oid:1.2.250.1.71.4.2.1"  # idNatPS (8 + RPPS)
SYSTEM_RPPS = "https://rpps.esante.gouv.fr"
SYSTEM_FINESS = "urn:oid:1.2.250.1.71.4.2.2"
EXT_EMAIL_TYPE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-contact-point-email-type"
EXT_MAILBOX = "https://interop.esante.gouv.fr/ig/fhir/annuaire/StructureDefinition/as-ext-mailbox-mss-metadata"
SYSTEM_EMAIL_TYPE = "https://mos.esante.gouv.fr/NOS/TRE_R256-TypeMessagerie/FHIR/TRE-R256-TypeMessagerie"
COMMON_PARAMS = {"_count", "_offset", "identifier", "name", "mailbox-mss", "mailbox-mss-type", "_id"}


def mailbox_telecom(address: str, kind: str, description: str) -> dict[str, Any]:
    return {"system": "email", "value": address, "extension": [
        {"url": EXT_EMAIL_TYPE, "valueCoding": {"system": SYSTEM_EMAIL_TYPE, "code": "MSSANTE"}},
        {"url": EXT_MAILBOX, "extension": [
            {"url": "type", "valueCodeableConcept": {"coding": [{"code": kind}]}},
            {"url": "description", "valueString": description},
            {"url": "listeRouge", "valueBoolean": False},
            {"url": "digitization", "valueBoolean": False}]}]}


class FhirDirectory:
    """The resources of one data set, indexed for search."""

    def __init__(self, dataset: Dataset) -> None:
        self.resources: dict[str, list[dict[str, Any]]] = {"Practitioner": [], "PractitionerRole": [],
                                                           "Organization": []}
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
        self.resources[resource["resourceType"]].append(resource)

    def read(self, kind: str, resource_id: str) -> dict[str, Any]:
        for resource in self._of(kind):
            if resource["id"] == resource_id:
                return resource
        raise FhirError(404, "not-found", f"{kind}/{resource_id} is not known")

    def _of(self, kind: str) -> list[dict[str, Any]]:
        if kind not in self.resources:
            raise FhirError(404, "not-supported", f"resource type {kind} is not served by this directory")
        return self.resources[kind]

    def search(self, kind: str, params: list[tuple[str, str]], base: str) -> dict[str, Any]:
        resources = self._of(kind)
        count, offset = PAGE_SIZE, 0
        tests: list[Callable[[dict[str, Any]], bool]] = []
        for key, value in params:
            name, _, modifier = key.partition(":")
            if name not in COMMON_PARAMS:
                raise FhirError(400, "not-supported", f"unknown search parameter {key}")
            if name in ("_count", "_offset"):
                number = _integer(key, value)
                count, offset = (min(number, MAX_PAGE_SIZE), offset) if name == "_count" else (count, number)
                continue
            tests.append(_test(name, modifier, value))
        matches = [r for r in resources if all(t(r) for t in tests)]
        query = [(k, v) for k, v in params if k not in ("_count", "_offset")]
        return searchset(f"{base}/{kind}", matches, offset, count, query)


def _integer(key: str, value: str) -> int:
    if not value.isdigit():
        raise FhirError(400, "invalid", f"{key} must be a non-negative integer (got {value!r})")
    return int(value)


def _mailboxes(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(address, type) of the resource's MSSanté mailboxes."""
    found = []
    for telecom in resource.get("telecom", []):
        meta = next((e for e in telecom.get("extension", []) if e["url"] == EXT_MAILBOX), None)
        kind = next((x["valueCodeableConcept"]["coding"][0]["code"] for x in (meta or {}).get("extension", [])
                     if x["url"] == "type"), "")
        found.append((telecom["value"].lower(), kind))
    return found


def _names(resource: dict[str, Any]) -> list[str]:
    if resource["resourceType"] == "Organization":
        return [resource.get("name", "")]
    if resource["resourceType"] == "PractitionerRole":
        return [resource["practitioner"].get("display", "")]
    return [" ".join([*n.get("given", []), n.get("family", "")]) for n in resource.get("name", [])]


def _test(name: str, modifier: str, value: str) -> Callable[[dict[str, Any]], bool]:
    if not value:
        raise FhirError(400, "invalid", f"search parameter {name} has no value")
    values = [v.strip() for v in value.split(",")]  # a comma is OR in FHIR search
    if name == "_id":
        return lambda r: r["id"] in values
    if name == "identifier":
        pairs = [v.split("|", 1) if "|" in v else [None, v] for v in values]
        return lambda r: any((s is None or i.get("system") == s) and i.get("value") == v
                             for s, v in pairs for i in r.get("identifier", []))
    if name == "name":
        wanted = [v.lower() for v in values]
        return lambda r: any(w in n.lower() for w in wanted for n in _names(r))
    if name == "mailbox-mss-type":
        unknown = [v for v in values if v not in MAILBOX_TYPES]
        if unknown:
            raise FhirError(400, "invalid", f"mailbox-mss-type {unknown[0]!r} is not one of {', '.join(MAILBOX_TYPES)}")
        return lambda r: any(k in values for _, k in _mailboxes(r))
    if modifier not in ("", "contains", "exact"):
        raise FhirError(400, "not-supported", f"modifier :{modifier} is not supported on mailbox-mss")
    wanted = [v.lower() for v in values]
    match: Callable[[str, str], bool] = {"": str.startswith, "contains": lambda a, w: w in a,
                                         "exact": str.__eq__}[modifier]
    return lambda r: any(match(a, w) for w in wanted for a, _ in _mailboxes(r))
