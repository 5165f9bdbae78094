"""The reference candidate's DMP feeds pass the simulator's document checks, and each named document defect
fails exactly its own rule. (This test may import both sides; the reference modules themselves may not.)"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from esante.harness.kits import defects
from esante.harness.reference.dmp import cda, documents, xades
from esante.harness.reference.dmp.documents import Feed, build_feed, build_metadata_update
from esante.simulators.core.findings import Finding, errors
from esante.simulators.core.pki import TestCA
from esante.simulators.dataset import load_dataset
from esante.simulators.dmp.documents.value_sets import dmp_value_sets
from esante.simulators.kits.ihe_xds.cda import Ii, parse_cda, read_header
from esante.simulators.kits.ihe_xds.cda_rules import check_header
from esante.simulators.kits.ihe_xds.ebrim import parse_submission
from esante.simulators.kits.ihe_xds.metadata_rules import check_metadata
from esante.simulators.kits.ihe_xds.rules import AGREEMENT, CDA_HEADER, SIGNATURE, XDS_METADATA
from esante.simulators.kits.ihe_xds.submission import check_submission
from esante.simulators.kits.xmldsig import SignatureRejected, verify
from tests.dmp_official import dataset_with_official_patient, td21

DATASET = load_dataset()
DS = "http://www.w3.org/2000/09/xmldsig#"
#: The document checks' rule behind each check of the DMP kit that judges documents.
CHECK_RULES = {"dmp.cda_header": CDA_HEADER, "dmp.xds_metadata": XDS_METADATA, "dmp.metadata_agreement": AGREEMENT,
               "dmp.signature_document": SIGNATURE}
#: The catalogue's document defects, with the rule of the document checks each breaks.
DOCUMENT_DEFECTS = {name: CHECK_RULES[defect.rule] for name, defect in defects().items() if defect.rule in CHECK_RULES}


CA = TestCA.create()


@pytest.fixture(scope="module")
def actors() -> dict[str, Any]:
    professional = DATASET.professionals[0]
    structure = next(s for s in DATASET.structures if s.id == professional.structure_ids[0])
    cert = CA.issue_professional(professional.rpps, professional.family_name,
                                              professional.given_name, professional.profession_label)
    return {"patient": DATASET.patients[0].model_dump(mode="json"),
            "professional": professional.model_dump(mode="json") | {"national_id": professional.national_id},
            "structure": structure.model_dump(mode="json"), "certificate": (cert.cert_pem, cert.key_pem)}


def _feed(actors: dict[str, Any], **options: Any) -> Feed:
    options.setdefault("kind", "N3")
    options.setdefault("certificate", actors["certificate"])
    return build_feed(actors["patient"], actors["professional"], actors["structure"], title="CR de consultation",
                      **options)


def _check(feed: Feed, *, now: datetime | None = None) -> list[Finding]:
    return check_submission(parse_submission(feed.metadata_element), feed.documents, DATASET,
                            value_sets=dmp_value_sets(), cas=[CA.cert], now=now or datetime.now(UTC))


REPLACED = {"entry_uuid": "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e", "unique_id": "2.25.1", "set_id": "2.25.1",
            "version": 1}


@pytest.mark.parametrize("kind", ["N1", "N3"])
@pytest.mark.parametrize("variant", [{}, {"confidentiality": ("MASQUE_PS",)},
                                     {"replaces": REPLACED, "confidentiality": ("MASQUE_PS", "INVISIBLE_PATIENT")}])
def test_correct_feed_has_no_finding(actors: dict[str, Any], kind: str, variant: dict[str, Any]) -> None:
    feed = _feed(actors, kind=kind, **variant)
    assert _check(feed) == []
    submission = parse_submission(feed.metadata_element)
    document = submission.document(feed.document_entry_id)
    assert document is not None and document.unique_id == feed.unique_id
    codes = [c.code for c in document.confidentiality_codes]
    assert codes == ["N", *variant.get("confidentiality", ())]
    replacements = [a for a in submission.associations if a.type.endswith(":RPLC")]
    assert [(a.source, a.target) for a in replacements] == (
        [(feed.document_entry_id, REPLACED["entry_uuid"])] if "replaces" in variant else [])


def test_replacement_cda_points_at_its_parent(actors: dict[str, Any]) -> None:
    header = read_header(parse_cda(_feed(actors, replaces=REPLACED).documents["Document01"]))
    assert header.related_documents == (("RPLC", Ii("2.25.1")),)
    assert header.set_id == Ii("2.25.1") and header.version_number == "2"


def test_cda_carries_the_patient_traits(actors: dict[str, Any]) -> None:
    header = read_header(parse_cda(_feed(actors, kind="N1").documents["Document01"]))
    patient = actors["patient"]
    assert header.patient_ids[0] == Ii(patient["ins"]["oid"], patient["ins"]["nir"] + patient["ins"]["key"])
    assert ("BR", patient["birth_name"]) in header.family_names
    assert header.birthplace_cog == patient["birth_place"] and header.media_type == "application/pdf"


@pytest.mark.parametrize("defect", DOCUMENT_DEFECTS)
def test_each_document_defect_fails_exactly_its_rule(actors: dict[str, Any], defect: str) -> None:
    found = _check(_feed(actors, kind="N1", defects=frozenset({defect})))
    assert found and {f.rule for f in found} == {DOCUMENT_DEFECTS[defect]}, found
    assert errors(found) == found


def _self_signed(common_name: str) -> tuple[bytes, bytes]:
    """A certificate no CA issued (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_a_signature_by_a_certificate_no_ca_issued_fails_the_signature_rule(actors: dict[str, Any]) -> None:
    feed = _feed(actors, kind="N1", certificate=_self_signed("SIGNATAIRE INCONNU"))
    assert [(f.rule, f.requirement) for f in _check(feed)] == [(SIGNATURE, "DMP-SIG-VALUE")]


@pytest.mark.parametrize(("path", "requirement"), [("patient/administrativeGenderCode", "CISIS-HDR-PATIENT-GENDER"),
                                                   ("patient/birthTime", "CISIS-HDR-PATIENT-BIRTHTIME")])
def test_recent_document_without_a_trait(actors: dict[str, Any], path: str, requirement: str) -> None:
    root = parse_cda(_feed(actors).documents["Document01"])
    element = root.find("{urn:hl7-org:v3}recordTarget/{urn:hl7-org:v3}patientRole/"
                        + "/".join(f"{{urn:hl7-org:v3}}{step}" for step in path.split("/")))
    element.getparent().remove(element)
    assert [f.requirement for f in check_header(read_header(root), "Document01")] == [requirement]


def test_malformed_ins_value(actors: dict[str, Any]) -> None:
    root = parse_cda(_feed(actors).documents["Document01"])
    root.find(".//{urn:hl7-org:v3}patientRole/{urn:hl7-org:v3}id").set("extension", "28504693832")
    assert [f.requirement for f in check_header(read_header(root), "Document01")] == ["CISIS-HDR-INS-VALUE"]


def test_signature_is_a_real_xmldsig(actors: dict[str, Any]) -> None:
    feed = _feed(actors)
    signature = etree.fromstring(feed.documents["Signature01"])
    signed_info = signature.find(f"{{{DS}}}SignedInfo")
    for reference in signed_info.iterfind(f"{{{DS}}}Reference"):
        target = signature.find(f".//*[@Id='{reference.get('URI')[1:]}']")
        digest = hashlib.sha256(etree.tostring(target, method="c14n", exclusive=True)).digest()
        assert base64.b64encode(digest).decode() == reference.findtext(f"{{{DS}}}DigestValue")
    raw = base64.b64decode(signature.findtext(f"{{{DS}}}SignatureValue"))
    der = encode_dss_signature(int.from_bytes(raw[:len(raw) // 2]), int.from_bytes(raw[len(raw) // 2:]))
    cert = x509.load_der_x509_certificate(base64.b64decode(signature.findtext(f".//{{{DS}}}X509Certificate")))
    assert cert.public_bytes(serialization.Encoding.PEM) == actors["certificate"][0]
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, etree.tostring(signed_info, method="c14n", exclusive=True), ec.ECDSA(hashes.SHA256()))


def test_feed_needs_a_known_kind_and_a_certificate(actors: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="kind"):
        _feed(actors, kind="N2")
    with pytest.raises(ValueError, match="certificate"):
        build_feed(actors["patient"], actors["professional"], actors["structure"], kind="N1", title="x")


def test_reference_modules_do_not_import_the_checks() -> None:
    for module in (cda, documents, xades):
        assert "simulators.dmp" not in Path(module.__file__).read_text(encoding="utf-8")


def _tampered(actors: dict[str, Any], tamper: str) -> etree._Element:
    signature = etree.fromstring(_feed(actors).documents["Signature01"])
    if tamper == "signed info":
        signature.find(f".//{{{DS}}}SignedInfo/{{{DS}}}Reference").set("Type", "x")
    elif tamper == "signed properties":
        signature.find(".//{http://uri.etsi.org/01903/v1.3.2#}SigningTime").text = "2000-01-01T00:00:00Z"
    elif tamper == "certificate":
        signature.find(f".//{{{DS}}}X509Certificate").text = "AAAA"
    return signature


def _verify(signature: etree._Element, ca: TestCA = CA, now: datetime | None = None) -> str | None:
    try:
        verify(signature, [ca.cert], now=now or datetime.now(UTC))
    except SignatureRejected as exc:
        return f"{exc.kind}: {exc.reason}"
    return None


@pytest.mark.parametrize(("tamper", "reason"), [("none", None),
                                                ("signed info", "invalid: SignatureValue does not verify"),
                                                ("signed properties", "invalid: a SignedInfo reference's digest "
                                                                      "does not match"),
                                                ("certificate", "invalid: X509Certificate is not a DER certificate")])
def test_signature_verification(actors: dict[str, Any], tamper: str, reason: str | None) -> None:
    found = _verify(_tampered(actors, tamper))
    assert found == reason if reason is None else (found or "").startswith(reason)


def test_signature_from_another_ca_is_refused(actors: dict[str, Any]) -> None:
    assert "does not chain to a trusted CA" in (_verify(_tampered(actors, "none"), TestCA.create()) or "")


def test_signature_is_judged_at_the_callers_clock(actors: dict[str, Any]) -> None:
    """The signer's certificate is checked at the clock the caller gives, never the system's."""
    signature = _tampered(actors, "none")
    issued = x509.load_pem_x509_certificate(actors["certificate"][0])
    assert _verify(signature, now=issued.not_valid_after_utc - timedelta(seconds=1)) is None
    for moment in (issued.not_valid_before_utc - timedelta(days=1), issued.not_valid_after_utc + timedelta(days=1)):
        assert (_verify(signature, now=moment) or "").startswith("untrusted: certificate")
    later = issued.not_valid_after_utc + timedelta(days=1)
    assert [f.requirement for f in _check(_feed(actors), now=later)] == ["DMP-SIG-VALUE"]


def test_official_signature_does_not_chain_to_the_test_ca() -> None:
    feed = td21()
    found = check_submission(parse_submission(feed.request), feed.documents, dataset_with_official_patient(),
                             value_sets=dmp_value_sets(), cas=[CA.cert], now=datetime.now(UTC))
    assert [f.requirement for f in errors(found)] == ["DMP-SIG-VALUE"]


@pytest.mark.parametrize("confidentiality", [("MASQUE_PS",), ()])
def test_metadata_update_keeps_the_lid(actors: dict[str, Any], confidentiality: tuple[str, ...]) -> None:
    feed = _feed(actors, confidentiality=("INVISIBLE_PATIENT",))
    uuid = "urn:uuid:7953af1a-ba1c-11eb-816f-0050569e422e"
    update = build_metadata_update(feed, entry_uuid=uuid, version="1", confidentiality=confidentiality,
                                   patient=actors["patient"], professional=actors["professional"],
                                   structure=actors["structure"])
    submission = parse_submission(update)
    (entry,) = submission.documents
    original = parse_submission(feed.metadata_element).document(feed.document_entry_id)
    assert original is not None
    assert (entry.lid, entry.previous_version, entry.unique_id) == (uuid, "1", original.unique_id)
    assert [c.code for c in entry.confidentiality_codes] == ["N", *confidentiality]
    (member,) = submission.associations
    assert member.target == entry.id and member.slot("PreviousVersion") == "1"
    found = check_metadata(submission, {entry.id: feed.documents["Document01"]}, dmp_value_sets())
    assert [f.requirement for f in found] == []


def test_every_data_set_patient_and_professional_feeds_cleanly() -> None:
    """Accents, apostrophes, Corsican and foreign birth places, unknown birth days, every structure kind."""
    issued = CA.issue_professional("10999900011", "VASSEUR", "CLAIRE", "Médecin")
    pem = (issued.cert_pem, issued.key_pem)
    professionals = [p for p in DATASET.professionals if p.structure_ids]
    for number, patient in enumerate(DATASET.patients):
        professional = professionals[number % len(professionals)]
        structure = next(s for s in DATASET.structures if s.id == professional.structure_ids[0])
        feed = build_feed(patient.model_dump(mode="json"),
                          professional.model_dump(mode="json") | {"national_id": professional.national_id},
                          structure.model_dump(mode="json"), kind=("N1", "N3")[number % 2], title="CR",
                          certificate=pem)
        assert _check(feed) == [], patient.id


def test_structured_document_declares_its_volet_template(actors: dict[str, Any]) -> None:
    root = parse_cda(_feed(actors, kind="N3").documents["Document01"])
    root.remove(root.findall("{urn:hl7-org:v3}templateId")[2])
    found = check_header(read_header(root), "Document01")
    assert [(f.requirement, f.location) for f in found] == [
        ("CISIS-HDR-TEMPLATE", "CDA Document01 /ClinicalDocument/templateId")]
