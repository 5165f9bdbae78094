"""The DMP's VIHF checks (simulators/dmp/transport/vihf.py) against the official examples, one broken field at a time,
signatures made by the reference candidate's independent signer, and hostile XML."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier
from signxml.exceptions import InvalidDigest

from esante.harness.kits import defects
from esante.harness.reference.dmp.parties import Parties, lab_parties
from esante.harness.reference.dmp.vihf import professional_from_psc, sign_vihf, signed_vihf
from esante.simulators.core.pki import TestCA
from esante.simulators.dataset import Dataset, load_dataset
from esante.simulators.dataset.identifiers import nir_key
from esante.simulators.dmp.transport.vihf import (
    DS,
    HL7,
    SAML,
    TrustStore,
    Vihf,
    VihfError,
    assertion_digest,
    check_against_dataset,
    check_freshness,
    check_signer,
    find_assertion,
    load_example_vectors,
    parse_vihf,
    parse_vihf_bytes,
    validate_vihf,
    verify_signature,
)
from esante.simulators.psc.claims import userinfo_claims
from tests.dmp_examples import TD_REQUESTS, VIHF_SAMPLES, example, example_bytes

SIGNERS = Path(__file__).parent.parent / "simulators" / "dmp" / "data" / "example_signers"
UNSIGNED = "VIHF_DIRECTE_non signe.xml"
LPS = {"id": "ESANTE-REF", "name": "esante-reference-candidate", "version": "1.0.0", "homologation": "ESANTE-REF-0001"}
#: What each reference defect must be refused with (exactly this code).
DEFECT_CODES = {
    "vihf_unsigned": "VIHF_UNSIGNED",
    "vihf_missing_role": "VIHF_ROLE_MISSING",
    "vihf_missing_savoir_faire": "VIHF_SAVOIR_FAIRE_MISSING",
    "vihf_wrong_ins": "VIHF_RESOURCE_ID_INVALID",
    "vihf_wrong_mode": "VIHF_SIGNER_MISMATCH",
    "vihf_bad_signature": "VIHF_SIGNATURE_INVALID",
    "vihf_no_lps_homologation": "VIHF_LPS_MISSING",
    "vihf_purpose_not_declared": "VIHF_PURPOSE_MISSING",
    "vihf_stale": "VIHF_EXPIRED",
}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return load_dataset()


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create()


@pytest.fixture(scope="module")
def parties(ca: TestCA, dataset: Dataset) -> Parties:
    """A doctor of the data set with a CPS, their structure's certificate, and a patient."""
    return lab_parties(ca, dataset)


def _reparsed(element: etree._Element) -> etree._Element:
    """What the simulator sees: the serialised message parsed again."""
    return etree.fromstring(etree.tostring(element))


def _validate(element: etree._Element, trust: TrustStore, dataset: Dataset, now: datetime | None = None) -> Vihf:
    return validate_vihf(_reparsed(element), trust=trust, dataset=dataset, now=now or datetime.now(UTC))


# ------------------------------------------------------------------------------ the official examples


@pytest.mark.parametrize("name", VIHF_SAMPLES + TD_REQUESTS)
def test_official_vihf_parses(name: str) -> None:
    vihf = parse_vihf(example(name))
    assert vihf.national_id == "899900063480"
    assert (vihf.profession.code, vihf.savoir_faire and vihf.savoir_faire.code) == ("10", "SM26")
    assert vihf.ins in {"207058575627097", "153078987658513"} and vihf.ins_oid == "1.2.250.1.213.1.4.10"
    assert (vihf.version, vihf.resource_urn, vihf.sector, vihf.purpose.code) == ("3.0", "urn:dmp", "SA07", "normal")
    assert (vihf.lps_id, vihf.lps_name, vihf.lps_version, vihf.lps_homologation) == (
        "01.01.01.01", "LPS GIE-SV", "1", "NumAutorisation")
    assert vihf.signed == name.endswith("_signe.xml")
    assert vihf.auth_mode == {"VIHF_INDIRECTE_signe.xml": "INDIRECTE",
                              "VIHF_INDIRECTE_RENFORCEE_signe.xml": "INDIRECTE_RENFORCEE"}.get(name, "DIRECTE")


@pytest.mark.parametrize("name", VIHF_SAMPLES + TD_REQUESTS)
def test_official_examples_are_accepted_as_known_vectors(name: str, ca: TestCA, dataset: Dataset) -> None:
    root = example(name)
    issued = parse_vihf(root).issue_instant
    trust = TrustStore.from_pem(ca.ca_pem, accept_example_vectors=True)
    vihf = validate_vihf(root, trust=trust, dataset=dataset, now=issued + timedelta(minutes=1))
    assert vihf.signer is not None and vihf.signer.example_vector
    # the same replay without the pinned clock is stale: the clock is what makes a 2019 example pass
    with pytest.raises(VihfError) as error:
        validate_vihf(root, trust=trust, dataset=dataset, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert error.value.code == "VIHF_EXPIRED"


@pytest.mark.parametrize("name", TD_REQUESTS)
def test_official_requests_are_unsigned_and_refused_without_the_vector_option(name: str, ca: TestCA) -> None:
    with pytest.raises(VihfError) as error:
        verify_signature(example(name), TrustStore.from_pem(ca.ca_pem), now=datetime.now(UTC))
    assert error.value.code == "VIHF_UNSIGNED"


def test_an_edited_example_is_no_longer_a_known_vector(ca: TestCA) -> None:
    root = example(TD_REQUESTS[0])
    find_assertion(root).find(f".//{{{SAML}}}NameID").text = "810999900011"
    with pytest.raises(VihfError) as error:
        verify_signature(root, TrustStore.from_pem(ca.ca_pem, accept_example_vectors=True), now=datetime.now(UTC))
    assert error.value.code == "VIHF_UNSIGNED"


def test_a_vector_waiving_an_unknown_code_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "vectors.yaml"
    bad.write_text('vectors: [{name: x, source: y, assertion_id: z, sha256: "0", waives: [VIHF_UNSGINED]}]')
    with pytest.raises(ValueError, match="VIHF_UNSGINED"):
        load_example_vectors(bad)


def test_every_example_vector_matches_an_example() -> None:
    digests = {assertion_digest(find_assertion(example(name))) for name in VIHF_SAMPLES + TD_REQUESTS}
    assert {vector.sha256 for vector in load_example_vectors()} == digests


@pytest.mark.parametrize(("name", "pem", "moment"), [
    ("VIHF_INDIRECTE_signe.xml", "indirecte_gie_sesam_vitale.pem", datetime(2019, 6, 26, tzinfo=UTC)),
    ("VIHF_INDIRECTE_RENFORCEE_signe.xml", "indirecte_renforcee_centre_de_sante.pem", datetime(2020, 8, 4, tzinfo=UTC)),
])
def test_official_signed_samples_were_edited_after_signing(name: str, pem: str, moment: datetime) -> None:
    """Why the samples are vectors: with their own certificate, at their own date, the digest fails."""
    certificate = x509.load_pem_x509_certificate((SIGNERS / pem).read_bytes())
    config = SignatureConfiguration(require_x509=True, location="./", verification_time=moment,
                                    signature_methods=frozenset(SignatureMethod),
                                    digest_algorithms=frozenset(DigestAlgorithm))
    with pytest.raises(InvalidDigest):
        XMLVerifier().verify(example(name), x509_cert=certificate, expect_config=config)


@pytest.mark.parametrize("name", [name for name in VIHF_SAMPLES if name.endswith("_signe.xml")])
def test_example_signer_files_are_the_samples_certificates(name: str) -> None:
    text = example(name).find(f".//{{{DS}}}X509Certificate").text
    der = base64.b64decode("".join(text.split()))
    pems = {path.read_text().split("-----")[2].replace("\n", "") for path in SIGNERS.glob("*.pem")}
    assert base64.b64encode(der).decode() in pems


def test_the_examples_placeholder_homologation_is_refused_outside_the_vectors(dataset: Dataset) -> None:
    vihf = parse_vihf(example("TD0.5 - Recherche d'un patient sans INS_requete.xml"))
    with pytest.raises(VihfError) as error:
        check_against_dataset(vihf, dataset)
    assert error.value.code == "VIHF_LPS_NOT_AUTHORISED"  # "NumAutorisation", as INSi refuses it
    assert vihf.ins == "153078987658513"
    check_against_dataset(replace(vihf, lps_homologation="ESANTE-REF-0001"), dataset)  # patient DMPEX02


# ------------------------------------------------------------------------------ one broken field each


def _attr(root: etree._Element, name: str) -> etree._Element:
    return root.find(f".//{{{SAML}}}Attribute[@Name='{name}']")


def _remove(element: etree._Element | None) -> None:
    assert element is not None
    element.getparent().remove(element)


def _set_value(name: str, value: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        _attr(root, name).find(f"{{{SAML}}}AttributeValue").text = value
    return mutate


def _set_hl7(name: str, tag: str, **attributes: str) -> Callable[[etree._Element], None]:
    def mutate(root: etree._Element) -> None:
        element = _attr(root, name).find(f".//{{{HL7}}}{tag}")
        for key, value in attributes.items():
            element.set(key, value)
    return mutate


def _remove_savoir_faire(root: etree._Element) -> None:
    _remove(_attr(root, "urn:oasis:names:tc:xacml:2.0:subject:role")[1])


def _duplicate_version(root: etree._Element) -> None:
    version = _attr(root, "VIHF_Version")
    version.addnext(etree.fromstring(etree.tostring(version)))


def _renforcee_without_decl(root: etree._Element) -> None:
    _set_value("Authentification_mode", "INDIRECTE_RENFORCEE")(root)
    statement = root.find(f"{{{SAML}}}AttributeStatement")
    name = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
    subject_id = etree.SubElement(statement, f"{{{SAML}}}Attribute", Name=name)
    etree.SubElement(subject_id, f"{{{SAML}}}AttributeValue").text = "MAX LIBRE"


BROKEN_FIELDS: dict[str, tuple[Callable[[etree._Element], None], str]] = {
    "role missing": (lambda r: _remove(_attr(r, "urn:oasis:names:tc:xacml:2.0:subject:role")), "VIHF_ROLE_MISSING"),
    "savoir-faire missing": (_remove_savoir_faire, "VIHF_SAVOIR_FAIRE_MISSING"),
    "role without code": (_set_hl7("urn:oasis:names:tc:xacml:2.0:subject:role", "Role", code=""),
                          "VIHF_ATTRIBUTE_INVALID"),
    "unknown auth mode": (_set_value("Authentification_mode", "MIXTE"), "VIHF_AUTH_MODE_INVALID"),
    "auth mode missing": (lambda r: _remove(_attr(r, "Authentification_mode")), "VIHF_ATTRIBUTE_MISSING"),
    "renforcee without AuthnContextDecl": (_renforcee_without_decl, "VIHF_AUTHN_DECL_MISSING"),
    "indirecte without subject-id": (_set_value("Authentification_mode", "INDIRECTE"), "VIHF_ATTRIBUTE_MISSING"),
    "resource-id not a CX": (_set_value("urn:oasis:names:tc:xacml:2.0:resource:resource-id", "207058575627097"),
                             "VIHF_RESOURCE_ID_INVALID"),
    "resource-id wrong key": (_set_value("urn:oasis:names:tc:xacml:2.0:resource:resource-id",
                                         "207058575627096^^^&1.2.250.1.213.1.4.10&ISO^NH"), "VIHF_RESOURCE_ID_INVALID"),
    "resource-id not an INS OID": (_set_value("urn:oasis:names:tc:xacml:2.0:resource:resource-id",
                                              "207058575627097^^^&1.2.3&ISO^NH"), "VIHF_RESOURCE_ID_INVALID"),
    "resource-id missing": (lambda r: _remove(_attr(r, "urn:oasis:names:tc:xacml:2.0:resource:resource-id")),
                            "VIHF_ATTRIBUTE_MISSING"),
    "version 2.0": (_set_value("VIHF_Version", "2.0"), "VIHF_VERSION_UNSUPPORTED"),
    "version repeated": (_duplicate_version, "VIHF_MALFORMED"),
    "purpose missing": (lambda r: _remove(_attr(r, "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse")),
                        "VIHF_PURPOSE_MISSING"),
    "purpose unknown": (_set_hl7("urn:oasis:names:tc:xspa:1.0:subject:purposeofuse", "PurposeOfUse", code="urgence"),
                        "VIHF_PURPOSE_INVALID"),
    "purpose wrong system": (_set_hl7("urn:oasis:names:tc:xspa:1.0:subject:purposeofuse", "PurposeOfUse",
                                      codeSystem="1.2.3"), "VIHF_PURPOSE_INVALID"),
    "LPS_ID missing": (lambda r: _remove(_attr(r, "LPS_ID")), "VIHF_LPS_MISSING"),
    "LPS_Nom missing": (lambda r: _remove(_attr(r, "LPS_Nom")), "VIHF_LPS_MISSING"),
    "LPS_Version empty": (_set_value("LPS_Version", " "), "VIHF_LPS_MISSING"),
    "homologation missing": (lambda r: _remove(_attr(r, "LPS_ID_HOMOLOGATION_DMP")), "VIHF_LPS_MISSING"),
    "structure missing": (lambda r: _remove(_attr(r, "Identifiant_Structure")), "VIHF_ATTRIBUTE_MISSING"),
    "sector without system": (_set_value("Secteur_Activite", "SA07"), "VIHF_ATTRIBUTE_INVALID"),
    "Ressource_URN other": (_set_value("Ressource_URN", "urn:dmp2"), "VIHF_ATTRIBUTE_INVALID"),
    "NameID missing": (lambda r: _remove(r.find(f"{{{SAML}}}Subject")), "VIHF_MALFORMED"),
    "Issuer missing": (lambda r: _remove(r.find(f"{{{SAML}}}Issuer")), "VIHF_MALFORMED"),
    "AuthnStatement missing": (lambda r: _remove(r.find(f"{{{SAML}}}AuthnStatement")), "VIHF_MALFORMED"),
    "SAML version 1.1": (lambda r: r.set("Version", "1.1"), "VIHF_MALFORMED"),
    "IssueInstant garbage": (lambda r: r.set("IssueInstant", "yesterday"), "VIHF_MALFORMED"),
    "IssueInstant without zone": (lambda r: r.set("IssueInstant", "2019-06-26T08:08:55"), "VIHF_MALFORMED"),
    "ID not an xs:ID": (lambda r: r.set("ID", "1 2"), "VIHF_MALFORMED"),
}


@pytest.mark.parametrize("broken", list(BROKEN_FIELDS))
def test_a_broken_field_is_refused_with_its_code(broken: str) -> None:
    mutate, code = BROKEN_FIELDS[broken]
    root = example(UNSIGNED)
    mutate(root)
    with pytest.raises(VihfError) as error:
        parse_vihf(root)
    assert error.value.code == code, error.value
    assert error.value.location.startswith(("Assertion", "Security"))


def test_no_assertion_is_not_found() -> None:
    header = etree.fromstring(b'<Security xmlns="http://docs.oasis-open.org/wss/2004/01/'
                              b'oasis-200401-wss-wssecurity-secext-1.0.xsd"/>')
    with pytest.raises(VihfError) as error:
        parse_vihf(header)
    assert error.value.code == "VIHF_NOT_FOUND"


def test_resource_id_may_be_optional_for_patientless_transactions() -> None:
    root = example(UNSIGNED)
    _remove(_attr(root, "urn:oasis:names:tc:xacml:2.0:resource:resource-id"))
    assert parse_vihf(root, require_resource=False).ins is None


# ------------------------------------------------------------------------------ freshness and data set


def test_freshness_uses_the_pinned_clock() -> None:
    vihf = parse_vihf(example(UNSIGNED))
    check_freshness(vihf, vihf.issue_instant + timedelta(minutes=30))
    for now, code in [(vihf.issue_instant + timedelta(hours=2), "VIHF_EXPIRED"),
                      (vihf.issue_instant - timedelta(hours=1), "VIHF_NOT_YET_VALID")]:
        with pytest.raises(VihfError) as error:
            check_freshness(vihf, now)
        assert error.value.code == code


def test_conditions_not_on_or_after_is_honoured() -> None:
    root = example(UNSIGNED)
    conditions = etree.Element(f"{{{SAML}}}Conditions", NotBefore="2019-06-26T08:08:00Z",
                               NotOnOrAfter="2019-06-26T08:10:00Z")
    root.find(f"{{{SAML}}}Subject").addnext(conditions)
    vihf = parse_vihf(root)
    check_freshness(vihf, datetime(2019, 6, 26, 8, 9, tzinfo=UTC))
    with pytest.raises(VihfError) as error:
        check_freshness(vihf, datetime(2019, 6, 26, 8, 20, tzinfo=UTC))
    assert (error.value.code, error.value.location) == ("VIHF_EXPIRED", "Assertion/Conditions/@NotOnOrAfter")


def _unknown_ins() -> str:
    nir = "2850469383999"
    return f"{nir}{nir_key(nir)}^^^&1.2.250.1.213.1.4.10&ISO^NH"


DATASET_BREAKS: dict[str, tuple[Callable[[etree._Element], None], str]] = {
    "unknown professional": (lambda r: setattr(r.find(f".//{{{SAML}}}NameID"), "text", "810999999999"),
                             "VIHF_UNKNOWN_PROFESSIONAL"),
    "profession not the professional's": (_set_hl7("urn:oasis:names:tc:xacml:2.0:subject:role", "Role", code="21"),
                                          "VIHF_ROLE_MISMATCH"),
    "unknown structure": (_set_value("Identifiant_Structure", "1999999999"), "VIHF_UNKNOWN_STRUCTURE"),
    "unknown patient": (_set_value("urn:oasis:names:tc:xacml:2.0:resource:resource-id", _unknown_ins()),
                        "VIHF_UNKNOWN_PATIENT"),
    "unknown software": (_set_value("LPS_ID_HOMOLOGATION_DMP", "NOT-HOMOLOGATED"), "VIHF_LPS_NOT_AUTHORISED"),
    "withdrawn software": (_set_value("LPS_ID_HOMOLOGATION_DMP", "ESANTE-REVOKED-0099"), "VIHF_LPS_NOT_AUTHORISED"),
}


@pytest.mark.parametrize("broken", list(DATASET_BREAKS))
def test_data_set_checks(broken: str, dataset: Dataset) -> None:
    mutate, code = DATASET_BREAKS[broken]
    root = example(UNSIGNED)
    _set_value("LPS_ID_HOMOLOGATION_DMP", "ESANTE-REF-0001")(root)  # not the examples' placeholder
    check_against_dataset(parse_vihf(root), dataset)
    mutate(root)
    with pytest.raises(VihfError) as error:
        check_against_dataset(parse_vihf(root), dataset)
    assert error.value.code == code, error.value


# ------------------------------------------------------------------------------ signatures (reference signer)


@pytest.mark.parametrize("mode", ["DIRECTE", "INDIRECTE", "INDIRECTE_RENFORCEE"])
def test_the_reference_vihf_is_accepted(mode: str, parties: Parties, ca: TestCA, dataset: Dataset) -> None:
    assertion = signed_vihf(parties.professional, parties.ins, mode=mode, lps=LPS, cps=parties.cps_signer,
                            structure=parties.structure_signer)
    vihf = _validate(assertion, TrustStore.from_pem(ca.ca_pem), dataset)
    assert vihf.signer is not None and vihf.signer.example_vector is None
    assert vihf.signer.subject == (parties.cps if mode == "DIRECTE" else parties.structure_certificate).subject


VIHF_DEFECTS = sorted(name for name, defect in defects().items() if defect.rule == "dmp.vihf_accepted")


def test_every_vihf_defect_of_the_catalogue_has_its_code() -> None:
    assert set(DEFECT_CODES) == set(VIHF_DEFECTS)


@pytest.mark.parametrize("defect", VIHF_DEFECTS)
def test_each_reference_defect_is_refused_with_exactly_its_code(defect: str, parties: Parties, ca: TestCA,
                                                                dataset: Dataset) -> None:
    assertion = signed_vihf(parties.professional, parties.ins, mode="DIRECTE", lps=LPS, cps=parties.cps_signer,
                            structure=parties.structure_signer, defects=frozenset({defect}))
    with pytest.raises(VihfError) as error:
        _validate(assertion, TrustStore.from_pem(ca.ca_pem), dataset)
    assert error.value.code == DEFECT_CODES[defect], error.value


def test_the_trust_store_reads_the_shared_pki_folder(tmp_path: Path, parties: Parties, ca: TestCA,
                                                     dataset: Dataset) -> None:
    ca.save(tmp_path)
    assertion = signed_vihf(parties.professional, parties.ins, mode="INDIRECTE", lps=LPS, cps=None,
                            structure=parties.structure_signer)
    assert _validate(assertion, TrustStore.from_pki_dir(tmp_path), dataset).auth_mode == "INDIRECTE"


def test_a_signer_from_another_ca_is_untrusted(parties: Parties, dataset: Dataset) -> None:
    assertion = signed_vihf(parties.professional, parties.ins, mode="DIRECTE", lps=LPS, cps=parties.cps_signer,
                            structure=parties.structure_signer)
    with pytest.raises(VihfError) as error:
        _validate(assertion, TrustStore.from_pem(TestCA.create().ca_pem), dataset)
    assert error.value.code == "VIHF_SIGNER_UNTRUSTED"


def test_an_expired_signer_is_untrusted(parties: Parties, ca: TestCA, dataset: Dataset) -> None:
    later = parties.cps.certificate.not_valid_after_utc + timedelta(days=1)
    assertion = signed_vihf(parties.professional, parties.ins, mode="DIRECTE", lps=LPS, cps=parties.cps_signer,
                            structure=parties.structure_signer, issue_instant=later)
    with pytest.raises(VihfError) as error:
        _validate(assertion, TrustStore.from_pem(ca.ca_pem), dataset, now=later)
    assert error.value.code == "VIHF_SIGNER_UNTRUSTED"


def test_indirect_mode_signed_with_a_cps_is_a_mismatch(parties: Parties, ca: TestCA, dataset: Dataset) -> None:
    assertion = signed_vihf(parties.professional, parties.ins, mode="INDIRECTE", lps=LPS, cps=parties.cps_signer,
                            structure=parties.cps_signer)
    with pytest.raises(VihfError) as error:
        _validate(assertion, TrustStore.from_pem(ca.ca_pem), dataset)
    assert error.value.code == "VIHF_SIGNER_MISMATCH"


def test_a_signature_over_another_element_is_refused(parties: Parties, ca: TestCA) -> None:
    """A signature whose reference is not the assertion's ID (signature wrapping) is refused."""
    assertion = signed_vihf(parties.professional, parties.ins, mode="DIRECTE", lps=LPS, cps=parties.cps_signer,
                            structure=parties.structure_signer)
    assertion.set("ID", "_another")
    with pytest.raises(VihfError) as error:
        verify_signature(_reparsed(assertion), TrustStore.from_pem(ca.ca_pem), now=datetime.now(UTC))
    assert error.value.code == "VIHF_SIGNATURE_INVALID"


def test_a_resigned_example_verifies_and_needs_no_vector(parties: Parties, ca: TestCA, dataset: Dataset) -> None:
    """The official unsigned sample signed by a CPS of the test PKI passes the full signature path."""
    ps = dataset.professional("DMPEX-PS01")
    cps = ca.issue_professional(ps.rpps, ps.family_name, ps.given_name, ps.profession_label)
    root = sign_vihf(example(UNSIGNED), cps.cert_pem, cps.key_pem)
    signer = verify_signature(_reparsed(root), TrustStore.from_pem(ca.ca_pem), now=datetime.now(UTC))
    vihf = check_signer(parse_vihf(root), signer)
    assert vihf.signer is not None and vihf.signer.common_name == "899900063480"


def test_a_pro_sante_connect_identity_makes_an_accepted_vihf(parties: Parties, ca: TestCA, dataset: Dataset) -> None:
    professional = dataset.professional("PS002")
    structure = dataset.structure(professional.structure_ids[0])
    certificate = ca.issue_structure(structure.finess, structure.name)
    who = professional_from_psc(userinfo_claims(dataset, professional), structure_id=f"1{structure.finess}",
                                sector=structure.sector_code)
    assertion = signed_vihf(who, parties.ins, mode="INDIRECTE", lps=LPS, cps=None,
                            structure=(certificate.cert_pem, certificate.key_pem, certificate.subject))
    vihf = _validate(assertion, TrustStore.from_pem(ca.ca_pem), dataset)
    assert (vihf.national_id, vihf.auth_mode, vihf.savoir_faire.code) == (professional.national_id, "INDIRECTE", "SM04")


# ------------------------------------------------------------------------------ hostile XML


@pytest.mark.parametrize("payload", [
    b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>',
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>',
    b"<saml2:Assertion xmlns:saml2='urn:oasis:names:tc:SAML:2.0:assertion'>" + b"<x>" * 10 + b"unclosed",
    b"<a>" + b"x" * 300_000 + b"</a>",
    b"",
])
def test_hostile_xml_is_refused_cleanly(payload: bytes) -> None:
    with pytest.raises(VihfError) as error:
        parse_vihf_bytes(payload)
    assert error.value.code == "VIHF_MALFORMED"


def test_bytes_entry_point_reads_a_real_request() -> None:
    assert parse_vihf_bytes(example_bytes(TD_REQUESTS[0]), max_bytes=1_000_000).ins == "207058575627097"


def test_an_rsa_cps_signs_with_rsa_sha256(parties: Parties, ca: TestCA, dataset: Dataset) -> None:
    """Real CPS keys are RSA: the reference signs RSA-SHA256 with them, the simulator verifies it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, parties.professional["national_id"])])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(ca.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
                   .sign(ca.key, hashes.SHA256()))
    cps = (certificate.public_bytes(serialization.Encoding.PEM),
           key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()), f"CN={parties.professional['national_id']}")
    assertion = signed_vihf(parties.professional, parties.ins, mode="DIRECTE", lps=LPS, cps=cps,
                            structure=parties.structure_signer)
    method = assertion.find(f"{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod").get("Algorithm")
    assert method == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    assert _validate(assertion, TrustStore.from_pem(ca.ca_pem), dataset).signer.common_name == cps[2][3:]
