"""The reference candidate's DMP part: the driver's ``dmp.*`` actions, as a DMP-compatible software does them.

What a correct software does, and the campaign judges:

* a provisional identity (no INS) is never sent to the DMP: the action is refused, nothing is sent;
* the existence test (TD0.2) comes before the first document transaction on a patient in a case; a closed or
  absent DMP is not fed (nor searched): refused, nothing more is sent;
* the VIHF is signed with the structure's certificate (INDIRECTE) or the professional's CPS (DIRECTE), and
  declares the access mode the user chose (normal, centre_15, bris_de_glace);
* a feed that the DMP refuses is reported as the DMP's error, never as a success; a replacement carries the
  RPLC association; metadata updates (ITI-57) start from the entry's current metadata (GetDocuments);
* errors: a SOAP fault → ``error`` with its subcode, a business refusal → ``error`` with the DMP's code, no
  answer → ``unavailable`` (after at most two retries, see :mod:`.client`).

Per-case state (reset on ``/reset``): the existence test results and the last document fed / found, per INS.
Named defects (``scenarios/dmp/defects.yaml`` says what each breaks): the software's own here, the wire ones
in :mod:`.client`, and the VIHF and document ones of :mod:`.vihf` and :mod:`.documents`, which flow through.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lxml import etree

from esante.harness.driver import ActionOutcome
from esante.harness.reference.dmp import client as wire
from esante.harness.reference.dmp import messages as msg
from esante.harness.reference.dmp.client import DmpConnection, DmpFault, DmpUnavailable
from esante.harness.reference.dmp.documents import build_feed
from esante.harness.reference.dmp.messages import DmpRefusal, Entry, Existence, Submitter
from esante.harness.reference.dmp.models import (
    CommonParams,
    DmpProfessional,
    DmpReport,
    DmpStructure,
    DocumentParams,
    DocumentSummary,
    FeedParams,
    RecordSummary,
    SearchParams,
    SearchPatientParams,
    UpdateParams,
    report,
)
from esante.harness.reference.dmp.vihf import SAML, build_vihf, sign_vihf
from esante.harness.reference.parts import InsParams, NotConfigured, Part, ReferenceContext, validated
from esante.simulators.core.pki import IssuedCert, TestCA
from esante.simulators.dataset import load_dataset

TLS_CERT_CN = "ESANTE-REFERENCE-DMP"
STATUS_AFTER = {"archive": "archived", "unarchive": "approved", "delete": "deleted"}
CONFIDENTIALITY_CHANGE = {"mask": ("MASQUE_PS", True), "unmask": ("MASQUE_PS", False),
                          "hide_from_patient": ("INVISIBLE_PATIENT", True),
                          "show_to_patient": ("INVISIBLE_PATIENT", False)}
RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
WRONG_REPOSITORY = msg.OID_DMP  # the DMP's own system OID, not its repository's


# -- state ---------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Known:
    """A document the software keeps a reference to."""

    unique_id: str
    title: str | None
    entry_uuid: str | None = None
    set_id: str | None = None
    version: int = 1
    repository: str | None = None
    status: str = "approved"
    confidentiality: list[str] = field(default_factory=list)

    def summary(self, **extra: Any) -> DocumentSummary:
        return DocumentSummary(unique_id=self.unique_id, title=self.title, status=self.status,
                               confidentiality=list(self.confidentiality), **extra)


@dataclass(slots=True)
class CaseState:
    records: dict[str, Existence] = field(default_factory=dict)  # INS → existence test result
    last_fed: dict[str, Known] = field(default_factory=dict)
    last_found: dict[str, Known] = field(default_factory=dict)


class Refused(Exception):
    """The software itself refuses the action (nothing more is sent)."""


# -- certificates --------------------------------------------------------------------------------------------
_certificates: dict[tuple[Path, bytes, str, str], IssuedCert] = {}
_certificates_lock = threading.Lock()


def _issued(pki_dir: Path, kind: str, ident: str, issue: Callable[[TestCA], IssuedCert]) -> IssuedCert:
    """A certificate issued once per process and CA (issuing costs a key generation)."""
    ca = TestCA.load_or_create(pki_dir)
    key = (pki_dir.resolve(), ca.ca_pem, kind, ident)
    with _certificates_lock:
        if key not in _certificates:
            _certificates[key] = issue(ca)
        return _certificates[key]


class DmpPart(Part):
    actions = ("dmp.test_existence", "dmp.authorise", "dmp.read_admin", "dmp.feed", "dmp.search", "dmp.retrieve",
               "dmp.update", "dmp.search_patient")

    def __init__(self, context: ReferenceContext) -> None:
        super().__init__(context)
        self.connection: DmpConnection | None = None
        self.state = CaseState()
        self.lps = {"id": context.idam, "name": context.name, "version": context.version,
                    "homologation": context.idam}

    # -- lifecycle -------------------------------------------------------------------------------------------
    def reset(self, endpoints: dict[str, str]) -> None:
        self.state = CaseState()
        base = endpoints.get("dmp")
        if self.connection is not None and base and self.connection.base_url == base.rstrip("/"):
            return
        self.close()
        if base:
            ca_pem = self.context.ca_pem_for(base)
            cert = self.context.certificate(TLS_CERT_CN) if ca_pem is not None else None
            self.connection = DmpConnection(base, ca_pem=ca_pem, defects=self.defects, timeout=wire.TIMEOUT_S,
                                            client_cert=(cert.cert_path, cert.key_path) if cert else None)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def act(self, action: str, params: dict[str, Any], own_url: str) -> DmpReport:
        model, handler = {
            "dmp.test_existence": (CommonParams, self.test_existence), "dmp.authorise": (CommonParams, self.authorise),
            "dmp.read_admin": (CommonParams, self.read_admin), "dmp.feed": (FeedParams, self.feed),
            "dmp.search": (SearchParams, self.search), "dmp.retrieve": (DocumentParams, self.retrieve),
            "dmp.update": (UpdateParams, self.update), "dmp.search_patient": (SearchPatientParams, self.search_patient),
        }[action]
        p = validated(model, params)
        if self.connection is None:
            raise NotConfigured("no DMP endpoint: /reset with endpoints['dmp'] first")
        try:
            return handler(p)
        except Refused as exc:
            return report(ActionOutcome.REFUSED, str(exc))
        except DmpUnavailable as exc:
            return report(ActionOutcome.UNAVAILABLE, str(exc))
        except DmpFault as exc:
            return report(ActionOutcome.ERROR, str(exc), error_code=exc.subcode or exc.code)
        except DmpRefusal as exc:
            return report(ActionOutcome.ERROR, f"the DMP refused: {exc}", error_code=exc.code)

    # -- identity, VIHF, calls -------------------------------------------------------------------------------
    def _ins(self, p: CommonParams, *, provisional_ok: bool = False) -> InsParams:
        """The patient's INS; a provisional identity has none and must not reach the DMP."""
        if p.patient.ins is not None and p.patient.identity_status != "PROV":
            return p.patient.ins
        if provisional_ok and "dmp_feeds_provisional_identity" in self.defects:
            # the defect: the software uses a NIR it read elsewhere (the Vitale card), never qualified
            ins = load_dataset().patient(p.patient.id).ins
            return InsParams(nir=ins.nir, key=ins.key, oid=ins.oid)
        raise Refused(f"patient {p.patient.id}'s identity is {p.patient.identity_status} (no qualified INS): "
                      "nothing is sent to the DMP")

    def _structure_cert(self, structure: DmpStructure) -> IssuedCert:
        return _issued(self.context.pki_dir, "structure", structure.finess,
                       lambda ca: ca.issue_structure(structure.finess, structure.name))

    def _cps(self, professional: DmpProfessional) -> IssuedCert:
        rpps = professional.national_id[1:]
        return _issued(self.context.pki_dir, "cps", rpps, lambda ca: ca.issue_professional(
            rpps, professional.family_name, professional.given_name, professional.profession_label or
            professional.profession_code))

    def _signer(self, p: CommonParams) -> IssuedCert:
        """DIRECTE signs with the professional's CPS, INDIRECTE(_RENFORCEE) with the structure's certificate."""
        if p.auth == "DIRECTE" and "vihf_wrong_mode" not in self.defects:
            return self._cps(p.professional)
        return self._structure_cert(p.professional.structure)

    def _vihf(self, p: CommonParams, ins: InsParams | None) -> etree._Element:
        pro, structure = p.professional, p.professional.structure
        signer = self._signer(p)
        who = {"national_id": pro.national_id, "family_name": pro.family_name, "given_name": pro.given_name,
               "profession_code": pro.profession_code, "profession_display": pro.profession_label,
               "savoir_faire_code": pro.specialty_code, "structure_id": f"1{structure.finess}",
               "sector": structure.sector, "issuer": signer.subject}
        purpose = "normal" if "dmp_normal_mode_in_emergency" in self.defects else p.mode
        defects = frozenset(self.defects)
        assertion = build_vihf(who, ins.value if ins else "000000000000000", mode=p.auth, lps=self.lps,
                               purpose=purpose, ins_oid=ins.oid if ins else msg.OID_DMP, defects=defects)
        if ins is None:  # a transaction about no one patient (TD0.5): no resource-id
            statement = assertion.find(f"{{{SAML}}}AttributeStatement")
            statement.remove(statement.find(f"{{{SAML}}}Attribute[@Name='{RESOURCE_ID}']"))
        return sign_vihf(assertion, signer.cert_pem, signer.key_pem, defects)

    def _call(self, p: CommonParams, ins: InsParams | None, path: str, action: str, body: etree._Element,
              attachments: dict[str, tuple[str, bytes]] | None = None) -> wire.Answer:
        assert self.connection is not None
        return self.connection.call(path, action, body, self._vihf(p, ins), attachments)

    def _query(self, p: CommonParams, ins: InsParams, body: etree._Element) -> list[Entry]:
        action = wire.ACTION_ITI41 if "dmp_wrong_action" in self.defects else wire.ACTION_ITI18
        answer = self._call(p, ins, wire.REGISTRY, action, body).body
        return msg.read_entries(answer, status="dmp_ignores_query_status" not in self.defects)

    # -- TD0.2 -----------------------------------------------------------------------------------------------
    def _existence(self, p: CommonParams, ins: InsParams) -> Existence:
        body = msg.patient_query("TEST_EXST", ins.value, ins.oid, self.context.name)
        existence = msg.read_existence(self._call(p, ins, wire.PATIENT, wire.ACTION_PATIENT_QUERY, body).body)
        self.state.records[ins.value] = existence
        return existence

    def _record(self, p: CommonParams, ins: InsParams, *, feeding: bool = False) -> None:
        """The existence test, once per patient and case, before the first document transaction; refuses a
        closed or absent DMP."""
        key = ins.value
        existence = self.state.records.get(key)
        if existence is None:
            if "dmp_no_existence_test" in self.defects:
                return
            existence = self._existence(p, ins)
        if existence.status == "open" or (feeding and existence.status == "closed"
                                          and "dmp_ignores_closed" in self.defects):
            return
        raise Refused(f"the DMP of patient {p.patient.id} is {existence.status}: nothing is sent")

    def test_existence(self, p: CommonParams) -> DmpReport:
        existence = self._existence(p, self._ins(p))
        record = RecordSummary(status=existence.status, authorisation=existence.authorisation,
                               treating_doctor=existence.treating_doctor)
        if existence.status == "absent":
            return report(ActionOutcome.NOT_FOUND, f"patient {p.patient.id} has no DMP", record=record)
        return report(ActionOutcome.FOUND, f"patient {p.patient.id}'s DMP is {existence.status} (authorisation "
                                            f"{existence.authorisation})", record=record)

    # -- TD0.3, TD1.3a, TD0.5 --------------------------------------------------------------------------------
    def authorise(self, p: CommonParams) -> DmpReport:
        ins = self._ins(p)
        answer = self._call(p, ins, wire.HABILITATION, wire.ACTION_SET_AUTHORIZATION, msg.set_authorization("AJOUT"))
        context = msg.read_status(answer.body)
        key = ins.value
        existence = replace(self.state.records.get(key) or Existence("open"), authorisation="VALIDE")
        self.state.records[key] = existence
        return report(ActionOutcome.COMPLETED, context or "authorisation recorded",
                       record=RecordSummary(status=existence.status, authorisation="VALIDE",
                                            treating_doctor=existence.treating_doctor))

    def read_admin(self, p: CommonParams) -> DmpReport:
        ins = self._ins(p)
        body = msg.patient_query("CNSLT_DATA", ins.value, ins.oid, self.context.name)
        observations = msg.read_admin(self._call(p, ins, wire.PATIENT, wire.ACTION_PATIENT_QUERY, body).body)
        text = ", ".join(f"{code}={'oui' if value else 'non'}" for code, value in observations.items())
        return report(ActionOutcome.COMPLETED, text or "no administrative observation",
                       record=RecordSummary(status="open"))

    def search_patient(self, p: CommonParams) -> DmpReport:
        assert isinstance(p, SearchPatientParams)
        body = msg.patient_search(p.family_name, p.given_name, p.birth_date, self.context.name)
        found = msg.read_patients(self._call(p, None, wire.PATIENT, wire.ACTION_PATIENT_SEARCH, body).body)
        if not found:
            return report(ActionOutcome.NOT_FOUND, f"no DMP patient named {p.family_name}")
        lines = [f"{f.family_name} {' '.join(f.given_names)} born {f.birth_date} INS {f.ins}" for f in found]
        return report(ActionOutcome.FOUND, "; ".join(lines))

    # -- TD2.1 -----------------------------------------------------------------------------------------------
    def feed(self, p: CommonParams) -> DmpReport:
        assert isinstance(p, FeedParams)
        ins = self._ins(p, provisional_ok=True)
        key = ins.value
        replaced = None
        if p.replaces == "last":
            replaced = self.state.last_fed.get(key) or self.state.last_found.get(key)
            if replaced is None or replaced.entry_uuid is None:
                raise Refused("there is no document of this patient to replace")
        self._record(p, ins, feeding=True)
        signer = self._signer(p)
        patient = {**p.patient.model_dump(), "ins": ins.model_dump()}
        structure = {"finess": p.professional.structure.finess, "name": p.professional.structure.name,
                     "sector_code": p.professional.structure.sector}
        replaces = None if replaced is None or "dmp_no_rplc" in self.defects else {
            "entry_uuid": replaced.entry_uuid, "unique_id": replaced.unique_id,
            "set_id": replaced.set_id or replaced.unique_id, "version": replaced.version}
        feed = build_feed(patient, p.professional.model_dump(exclude={"structure"}), structure, kind=p.kind,
                          title=p.title, confidentiality=tuple(p.confidentiality), replaces=replaces,
                          defects=frozenset(self.defects), certificate=(signer.cert_pem, signer.key_pem))
        ids = _uuid_ids(feed.metadata_element, list(feed.documents))
        cids = {ids[entry_id]: f"{uuid.uuid4().hex}@esante-reference" for entry_id in feed.documents}
        attachments = {cids[ids[entry_id]]: ("text/xml", data) for entry_id, data in feed.documents.items()}
        body = msg.provide_and_register(feed.metadata_element, cids)
        fed = Known(feed.unique_id, p.title, ids[feed.document_entry_id],
                    replaces["set_id"] if replaces else feed.unique_id, (replaced.version + 1) if replaces else 1,
                    confidentiality=["N", *p.confidentiality])
        try:
            msg.read_registry(self._call(p, ins, wire.REPOSITORY, wire.ACTION_ITI41, body, attachments).body)
        except DmpRefusal as exc:
            if exc.code == "DMPClosed":
                self.state.records[key] = Existence("closed")
            if "dmp_claims_success_on_error" not in self.defects:
                raise
        self.state.last_fed[key] = fed
        if replaced is not None and replaces is not None:
            replaced.status = "deprecated"
        return report(ActionOutcome.COMPLETED, f"document {fed.unique_id} sent to the DMP",
                       documents=[fed.summary()])

    # -- TD3.1, TD3.2 ----------------------------------------------------------------------------------------
    def search(self, p: CommonParams) -> DmpReport:
        assert isinstance(p, SearchParams)
        ins = self._ins(p)
        self._record(p, ins)
        found = self._find(p, ins, p.statuses)
        summaries = [DocumentSummary(unique_id=e.unique_id, title=e.title, status=e.status,
                                     confidentiality=e.confidentiality) for e in found]
        if "dmp_lists_cached_documents" in self.defects:  # what it fed earlier, whatever the DMP says now
            shown = {s.unique_id for s in summaries}
            fed = self.state.last_fed.get(ins.value)
            if fed is not None and fed.unique_id not in shown:
                summaries.append(fed.summary())
        if not summaries:
            return report(ActionOutcome.NOT_FOUND, "no document", documents=[])
        return report(ActionOutcome.FOUND, f"{len(summaries)} document(s)", documents=summaries)

    def _find(self, p: CommonParams, ins: InsParams, statuses: list[str]) -> list[Entry]:
        wanted = None if "dmp_search_without_status" in self.defects else statuses
        found = [e for e in self._query(p, ins, msg.find_documents(msg.patient_cx(ins.nir, ins.key, ins.oid), wanted))
                 if not e.is_signature]
        if found:
            last = found[-1]
            self.state.last_found[ins.value] = Known(last.unique_id, last.title, last.entry_uuid,
                                                             version=int(last.version or 1),
                                                             repository=last.repository, status=last.status,
                                                             confidentiality=last.confidentiality)
        return found

    def _target(self, p: CommonParams, ins: InsParams) -> Known:
        """``document: last``: the last fed in this case, else the last found (searching when none is known)."""
        key = ins.value
        known = self.state.last_fed.get(key) or self.state.last_found.get(key)
        if known is None:
            self._find(p, ins, ["approved"])
            known = self.state.last_found.get(key)
        if known is None:
            raise Refused(f"patient {p.patient.id} has no document in the DMP to act on")
        return known

    def retrieve(self, p: CommonParams) -> DmpReport:
        ins = self._ins(p)
        self._record(p, ins)
        target = self._target(p, ins)
        repository = WRONG_REPOSITORY if "dmp_retrieve_wrong_repository" in self.defects else (
            target.repository or msg.DMP_REPOSITORY)
        answer = self._call(p, ins, wire.REPOSITORY, wire.ACTION_ITI43,
                            msg.retrieve_request(repository, target.unique_id))
        msg.read_registry(answer.body)
        for response in (c for c in answer.body if etree.QName(c).localname == "DocumentResponse"):
            unique = response.findtext(f"{{{msg.XDSB}}}DocumentUniqueId") or ""
            document = response.find(f"{{{msg.XDSB}}}Document")
            if unique.strip() != target.unique_id or document is None:
                continue
            data = answer.include(document)
            if data is None:
                data = _base64(document)
            return report(ActionOutcome.COMPLETED, f"document {target.unique_id} opened ({len(data)} bytes)",
                           documents=[target.summary(sha1=hashlib.sha1(data).hexdigest())])
        raise DmpRefusal("XDSDocumentUniqueIdError", f"the answer carries no document {target.unique_id}")

    # -- TD3.3 -----------------------------------------------------------------------------------------------
    def update(self, p: CommonParams) -> DmpReport:
        assert isinstance(p, UpdateParams)
        ins = self._ins(p)
        self._record(p, ins)
        target = self._target(p, ins)
        current = next((e for e in self._query(p, ins, msg.get_documents(target.unique_id))
                        if e.status != "deprecated"), None)
        if current is None:
            raise Refused(f"document {target.unique_id} is no longer in the DMP")
        who = _submitter(p, ins)
        if p.operation in STATUS_AFTER:
            body = msg.status_update(current, STATUS_AFTER[p.operation], who)
            target.status, target.entry_uuid = STATUS_AFTER[p.operation], current.entry_uuid
        else:
            code, present = CONFIDENTIALITY_CHANGE[p.operation]
            codes = [c for c in current.confidentiality if c in msg.CONFIDENTIALITY_NAMES and c != code]
            codes += [code] if present else []
            previous = str(int(current.version) + 1) if "dmp_update_wrong_version" in self.defects else current.version
            body, new_id = msg.new_version(current, codes, who, previous_version=previous)
            target.entry_uuid, target.status = new_id, current.status
            target.confidentiality = [c for c in current.confidentiality if c not in msg.CONFIDENTIALITY_NAMES] + codes
        msg.read_registry(self._call(p, ins, wire.REGISTRY, wire.ACTION_ITI57, body).body)
        return report(ActionOutcome.COMPLETED, f"{p.operation} of document {target.unique_id} done",
                       documents=[target.summary()])


def _submitter(p: CommonParams, ins: InsParams) -> Submitter:
    pro, structure = p.professional, p.professional.structure
    return Submitter(f"{pro.national_id}^{pro.family_name}^{pro.given_name}^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
                     f"{structure.name}^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1{structure.finess}",
                     msg.patient_cx(ins.nir, ins.key, ins.oid))


def _uuid_ids(metadata: etree._Element, entry_ids: list[str]) -> dict[str, str]:
    """Give the feed's entries urn:uuid ids (ITI-41 allows them), so the software knows each entryUUID the
    registry keeps without asking it; every reference to the symbolic id follows."""
    ids = {entry_id: f"urn:uuid:{uuid.uuid4()}" for entry_id in entry_ids}
    for element in metadata.iter():
        for attribute in ("id", "classifiedObject", "registryObject", "sourceObject", "targetObject"):
            value = element.get(attribute)
            if value in ids:
                element.set(attribute, ids[value])
    return ids


def _base64(element: etree._Element) -> bytes:
    return base64.b64decode("".join(element.itertext()))
