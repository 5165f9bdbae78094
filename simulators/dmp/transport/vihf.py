"""The VIHF: the SAML 2 assertion every DMPi request carries in ``wsse:Security`` (who acts, for which
patient, from which software, in which access mode), its XML signature, and its coherence with the shared
data set.

Four steps, each a function the DMP simulator calls in this order (``validate_vihf`` chains them):

1. :func:`parse_vihf` reads the assertion into a :class:`Vihf`, refusing any missing or malformed field;
2. :func:`verify_signature` checks the enveloped XML-DSig signature (exclusive c14n, one reference to the
   assertion) and that the signer certificate chains to a trusted CA (the run's test PKI) at the caller's
   clock, with :mod:`esante.simulators.kits.xmldsig`; :func:`check_signer` checks that the
   signer fits the authentication mode (DIRECTE: the professional's CPS, CN = NameID; INDIRECTE and
   INDIRECTE_RENFORCEE: a structure certificate, OU = the structure identifier);
3. :func:`check_freshness` compares IssueInstant / Conditions with a clock the caller pins (``now``), so a
   replay of the 2019 official examples can run in 2019;
4. :func:`check_against_dataset` checks that the professional, role, structure, patient and software are
   the data set's.

Every refusal is a :class:`VihfError` carrying a stable ``code``, a sentence and the ``location`` of the
faulty field. No public catalogue of the DMP's VIHF error codes was found (the DMP's documented vocabulary
has ``DMPAccessDeniedByRightsService`` for rights, used by :mod:`..patient.rights`); the codes below are
ours, one per rule, so a report says exactly which rule a request broke. The simulator answers them as the
subcode of its ``vihf`` SOAP fault.

=============================  =====================================================================
code                           meaning
=============================  =====================================================================
VIHF_NOT_FOUND                 no ``saml2:Assertion`` in the security header
VIHF_MALFORMED                 not a SAML 2.0 assertion: ID, IssueInstant, Version 2.0, Issuer, NameID,
                               AuthnStatement missing or malformed; an attribute repeated
VIHF_ATTRIBUTE_MISSING         a mandatory attribute is absent (location names it)
VIHF_ATTRIBUTE_INVALID         an attribute has a value outside its vocabulary (sector, Ressource_URN)
VIHF_ROLE_MISSING              no usable ``subject:role`` (profession) value
VIHF_SAVOIR_FAIRE_MISSING      a doctor (10) or pharmacist (21) without a savoir-faire role
VIHF_AUTH_MODE_INVALID         ``Authentification_mode`` not DIRECTE / INDIRECTE / INDIRECTE_RENFORCEE
VIHF_AUTHN_DECL_MISSING        INDIRECTE_RENFORCEE without ``AuthnContextDecl``
VIHF_RESOURCE_ID_INVALID       ``resource-id`` is not an INS CX ``<15 digits>^^^&<INS OID>&ISO^NH`` with
                               a valid key
VIHF_VERSION_UNSUPPORTED       ``VIHF_Version`` is not one this DMP speaks (3.0)
VIHF_PURPOSE_MISSING           no ``purposeofuse`` (the access mode: normal / centre_15 / bris_de_glace)
VIHF_PURPOSE_INVALID           a purpose of use outside TRE_R248 (codeSystem 1.2.250.1.213.1.1.4.248)
VIHF_LPS_MISSING               LPS_ID, LPS_Nom, LPS_Version or LPS_ID_HOMOLOGATION_DMP absent
VIHF_UNSIGNED                  no enveloped ``ds:Signature``
VIHF_SIGNATURE_INVALID         signature or digest does not verify, wrong reference / c14n / algorithm,
                               no signer certificate in KeyInfo
VIHF_SIGNER_UNTRUSTED          the signer certificate does not chain to a trusted CA, or is not valid now
VIHF_SIGNER_MISMATCH           the signer does not fit the mode (DIRECTE: CN = NameID; INDIRECTE*: OU =
                               structure identifier)
VIHF_NOT_YET_VALID             IssueInstant / NotBefore in the future (beyond the allowed skew)
VIHF_EXPIRED                   NotOnOrAfter passed, or IssueInstant older than the allowed age
VIHF_UNKNOWN_PROFESSIONAL      NameID is no professional of the data set
VIHF_ROLE_MISMATCH             the profession / savoir-faire is not the professional's
VIHF_UNKNOWN_STRUCTURE         Identifiant_Structure names no structure of the data set
VIHF_UNKNOWN_PATIENT           the resource-id INS is no patient's active INS
VIHF_LPS_NOT_AUTHORISED        LPS_ID_HOMOLOGATION_DMP is unknown or withdrawn
=============================  =====================================================================

Official examples. The official example messages (``dmp-examples/``) must be accepted, yet none of them
verifies: every TD request carries an unsigned DIRECTE VIHF, and the three signed samples were edited after
signing (digest mismatch; one certificate is not even DER). They are accepted only as *known test vectors*
(``data/example_vectors.yaml``): an assertion whose exclusive-c14n SHA-256 equals a listed one is excused
exactly the listed codes, and only when the trust store was built with ``accept_example_vectors=True``; the
returned :class:`Signer` names the vector so the journal shows it. Anything else is checked in full.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

from esante.simulators.core.pki import CA_CERT_FILE, subject_of_der
from esante.simulators.dataset import Dataset
from esante.simulators.dataset.identifiers import is_valid_nir
from esante.simulators.dmp.protocol import AUTH_MODES, HL7_NS, INS_OIDS, PURPOSES
from esante.simulators.kits import xmldsig
from esante.simulators.kits.xml import XmlRejected, parse_xml
from esante.simulators.kits.xmldsig import DS, EXCLUSIVE_C14N, SignatureRejected

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
HL7 = HL7_NS

ATTR_STRUCTURE = "Identifiant_Structure"
ATTR_SECTOR = "Secteur_Activite"
ATTR_SUBJECT_ID = "urn:oasis:names:tc:xspa:1.0:subject:subject-id"
ATTR_ROLE = "urn:oasis:names:tc:xacml:2.0:subject:role"
ATTR_VERSION = "VIHF_Version"
ATTR_AUTH_MODE = "Authentification_mode"
ATTR_RESOURCE_ID = "urn:oasis:names:tc:xacml:2.0:resource:resource-id"
ATTR_RESOURCE_URN = "Ressource_URN"
ATTR_PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ATTR_CONFIDENTIALITY = "urn:oasis:names:tc:xspa:1.0:resource:patient:hl7:confidentiality-code"
LPS_ATTRIBUTES = ("LPS_ID", "LPS_Nom", "LPS_Version", "LPS_ID_HOMOLOGATION_DMP")

PROFESSION_SYSTEM = "1.2.250.1.71.1.2.7"  # TRE_G15 profession
SAVOIR_FAIRE_SYSTEM = "1.2.250.1.71.4.2.5"  # TRE_R38 savoir-faire (spécialité ordinale)
SECTOR_SYSTEM = "1.2.250.1.71.4.2.4"  # TRE_R02 secteur d'activité
PURPOSE_SYSTEM = "1.2.250.1.213.1.1.4.248"  # TRE_R248 mode d'accès
SUPPORTED_VERSIONS = ("3.0",)
RESOURCE_URN = "urn:dmp"
#: Professions whose VIHF must carry a savoir-faire role (médecin, pharmacien).
SAVOIR_FAIRE_REQUIRED = ("10", "21")

#: Every code a VihfError can carry (the module docstring says what each means).
ERROR_CODES = frozenset({
    "VIHF_NOT_FOUND", "VIHF_MALFORMED", "VIHF_ATTRIBUTE_MISSING", "VIHF_ATTRIBUTE_INVALID", "VIHF_ROLE_MISSING",
    "VIHF_SAVOIR_FAIRE_MISSING", "VIHF_AUTH_MODE_INVALID", "VIHF_AUTHN_DECL_MISSING", "VIHF_RESOURCE_ID_INVALID",
    "VIHF_VERSION_UNSUPPORTED", "VIHF_PURPOSE_MISSING", "VIHF_PURPOSE_INVALID", "VIHF_LPS_MISSING", "VIHF_UNSIGNED",
    "VIHF_SIGNATURE_INVALID", "VIHF_SIGNER_UNTRUSTED", "VIHF_SIGNER_MISMATCH", "VIHF_NOT_YET_VALID", "VIHF_EXPIRED",
    "VIHF_UNKNOWN_PROFESSIONAL", "VIHF_ROLE_MISMATCH", "VIHF_UNKNOWN_STRUCTURE", "VIHF_UNKNOWN_PATIENT",
    "VIHF_LPS_NOT_AUTHORISED",
})

_CX_INS = re.compile(r"^(\d{13})(\d{2})\^\^\^&([0-9.]+)&ISO\^NH$")
_SECTOR = re.compile(rf"^(SA\d{{2}})\^{re.escape(SECTOR_SYSTEM)}$")
_DATA = Path(__file__).parent.parent / "data"
_ASSERTION = f"{{{SAML}}}Assertion"
_ATTRIBUTE_LOCATION = "Assertion/AttributeStatement/Attribute[@Name='{}']"


class VihfError(ValueError):
    """A VIHF refused: ``code`` (see the module table), a sentence, and where in the assertion."""

    def __init__(self, code: str, message: str, location: str = "Assertion") -> None:
        assert code in ERROR_CODES, code
        super().__init__(f"{code}: {message} (at {location})")
        self.code = code
        self.message = message
        self.location = location


@dataclass(frozen=True)
class Code:
    """An HL7 CE value (Role, PurposeOfUse, confidentiality code)."""

    code: str
    system: str
    display: str | None = None


@dataclass(frozen=True)
class Signer:
    """Who signed a VIHF: the certificate (None when it could not be read, only for a known example vector),
    its subject, and the official example vector it was accepted as, with the codes that vector excuses."""

    certificate: x509.Certificate | None
    subject: str
    example_vector: str | None = None
    waived: frozenset[str] = frozenset()

    @property
    def common_name(self) -> str | None:
        return _attribute(self.certificate, NameOID.COMMON_NAME)

    @property
    def organisational_units(self) -> tuple[str, ...]:
        if self.certificate is None:
            return ()
        units = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        return tuple(str(unit.value) for unit in units)


@dataclass(frozen=True)
class Vihf:
    """The fields of a parsed VIHF. ``ins`` is the 15-character INS (NIR + key) of the resource-id."""

    assertion_id: str
    issue_instant: datetime
    issuer: str
    national_id: str
    subject_name: str | None
    authn_context: str
    authn_context_decl: str | None
    profession: Code
    savoir_faire: Code | None
    structure_id: str
    sector: str
    auth_mode: str
    purpose: Code
    ins: str | None
    ins_oid: str | None
    resource_urn: str
    version: str
    confidentiality: tuple[Code, ...]
    lps_id: str
    lps_name: str
    lps_version: str
    lps_homologation: str
    signed: bool
    not_before: datetime | None = None
    not_on_or_after: datetime | None = None
    signer: Signer | None = field(default=None, compare=False)

    @property
    def is_direct(self) -> bool:
        return self.auth_mode == "DIRECTE"


# ---------------------------------------------------------------------------------------------- parsing


def _attribute(certificate: x509.Certificate | None, oid: x509.ObjectIdentifier) -> str | None:
    if certificate is None:
        return None
    values = certificate.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


def _instant(value: str | None, location: str) -> datetime:
    if not value:
        raise VihfError("VIHF_MALFORMED", "a mandatory instant is missing", location)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise VihfError("VIHF_MALFORMED", f"{value!r} is not an xs:dateTime", location) from None
    if moment.tzinfo is None:
        raise VihfError("VIHF_MALFORMED", f"{value!r} has no time zone (SAML instants are UTC)", location)
    return moment.astimezone(UTC)


def find_assertion(element: etree._Element) -> etree._Element:
    """The one ``saml2:Assertion``: ``element`` itself or the only one below it (security header,
    envelope)."""
    if element.tag == _ASSERTION:
        return element
    found = element.findall(f".//{_ASSERTION}")
    if not found:
        raise VihfError("VIHF_NOT_FOUND", "no saml2:Assertion (VIHF) in the security header", "Security")
    if len(found) > 1:
        raise VihfError("VIHF_MALFORMED", f"{len(found)} assertions where one VIHF is expected", "Security")
    return found[0]


def _attributes(assertion: etree._Element) -> dict[str, list[etree._Element]]:
    """AttributeValue elements by attribute Name; a repeated attribute is refused."""
    values: dict[str, list[etree._Element]] = {}
    for attribute in assertion.iterfind(f"{{{SAML}}}AttributeStatement/{{{SAML}}}Attribute"):
        name = attribute.get("Name") or ""
        if name in values:
            raise VihfError("VIHF_MALFORMED", f"attribute {name!r} appears twice", _ATTRIBUTE_LOCATION.format(name))
        values[name] = attribute.findall(f"{{{SAML}}}AttributeValue")
    return values


def _text(values: dict[str, list[etree._Element]], name: str, code: str = "VIHF_ATTRIBUTE_MISSING") -> str:
    """The single string value of a mandatory attribute."""
    texts = [(value.text or "").strip() for value in values.get(name, [])]
    texts = [text for text in texts if text]
    if not texts:
        raise VihfError(code, f"mandatory attribute {name} is missing or empty", _ATTRIBUTE_LOCATION.format(name))
    if len(texts) > 1:
        raise VihfError("VIHF_MALFORMED", f"attribute {name} has {len(texts)} values, one expected",
                        _ATTRIBUTE_LOCATION.format(name))
    return texts[0]


def _optional_text(values: dict[str, list[etree._Element]], name: str) -> str | None:
    return _text(values, name) if name in values else None


def _codes(values: dict[str, list[etree._Element]], name: str, tag: str) -> list[Code]:
    """The HL7 CE values (``<Role>``, ``<PurposeOfUse>``...) of an attribute; a value lacking its code or
    codeSystem is refused as malformed."""
    codes = []
    for value in values.get(name, []):
        for element in value.iterfind(f"{{{HL7}}}{tag}"):
            code, system = element.get("code", "").strip(), element.get("codeSystem", "").strip()
            if not code or not system:
                raise VihfError("VIHF_ATTRIBUTE_INVALID", f"a {tag} without code or codeSystem",
                                _ATTRIBUTE_LOCATION.format(name))
            codes.append(Code(code, system, element.get("displayName")))
    return codes


def _roles(values: dict[str, list[etree._Element]]) -> tuple[Code, Code | None]:
    location = _ATTRIBUTE_LOCATION.format(ATTR_ROLE)
    roles = _codes(values, ATTR_ROLE, "Role")
    professions = [role for role in roles if role.system == PROFESSION_SYSTEM]
    others = [role for role in roles if role.system not in (PROFESSION_SYSTEM, SAVOIR_FAIRE_SYSTEM)]
    # A professional's role is a TRE_G15 profession; a non-PS actor (CPE, automaton) carries another system.
    profession = (professions or others or [None])[0]
    if profession is None:
        raise VihfError("VIHF_ROLE_MISSING", "no profession role (codeSystem 1.2.250.1.71.1.2.7)", location)
    savoir_faire = next((role for role in roles if role.system == SAVOIR_FAIRE_SYSTEM), None)
    if profession.system == PROFESSION_SYSTEM and profession.code in SAVOIR_FAIRE_REQUIRED and not savoir_faire:
        raise VihfError("VIHF_SAVOIR_FAIRE_MISSING",
                        f"profession {profession.code} needs a savoir-faire role (codeSystem {SAVOIR_FAIRE_SYSTEM})",
                        location)
    return profession, savoir_faire


def _purpose(values: dict[str, list[etree._Element]]) -> Code:
    location = _ATTRIBUTE_LOCATION.format(ATTR_PURPOSE)
    purposes = _codes(values, ATTR_PURPOSE, "PurposeOfUse")
    if not purposes:
        raise VihfError("VIHF_PURPOSE_MISSING", "no purpose of use (access mode)", location)
    purpose = purposes[0]
    if len(purposes) > 1 or purpose.system != PURPOSE_SYSTEM or purpose.code not in PURPOSES:
        raise VihfError("VIHF_PURPOSE_INVALID",
                        f"purpose of use {purpose.code!r} ({purpose.system}) is not one of {', '.join(PURPOSES)} "
                        f"({PURPOSE_SYSTEM})", location)
    return purpose


def parse_ins_cx(value: str) -> tuple[str, str]:
    """(15-character INS, OID) of a resource-id CX ``<NIR><key>^^^&<OID>&ISO^NH``; VihfError otherwise."""
    location = _ATTRIBUTE_LOCATION.format(ATTR_RESOURCE_ID)
    match = _CX_INS.match(value)
    if not match:
        raise VihfError("VIHF_RESOURCE_ID_INVALID", f"{value!r} is not an INS CX <NIR+key>^^^&<OID>&ISO^NH", location)
    nir, key, oid = match.groups()
    if oid not in INS_OIDS:
        raise VihfError("VIHF_RESOURCE_ID_INVALID", f"{oid} is not an INS OID ({', '.join(INS_OIDS)})", location)
    if not is_valid_nir(nir, key):
        raise VihfError("VIHF_RESOURCE_ID_INVALID", f"INS {nir}{key}: key {key} is wrong for NIR {nir}", location)
    return nir + key, oid


def _header(assertion: etree._Element) -> tuple[str, datetime, str, str]:
    if assertion.get("Version") != "2.0":
        raise VihfError("VIHF_MALFORMED", f"Version {assertion.get('Version')!r}, expected 2.0", "Assertion/@Version")
    assertion_id = assertion.get("ID") or ""
    if not re.fullmatch(r"[A-Za-z_][\w.-]*", assertion_id):
        raise VihfError("VIHF_MALFORMED", f"ID {assertion_id!r} is not an xs:ID", "Assertion/@ID")
    issued = _instant(assertion.get("IssueInstant"), "Assertion/@IssueInstant")
    issuer = (assertion.findtext(f"{{{SAML}}}Issuer") or "").strip()
    if not issuer:
        raise VihfError("VIHF_MALFORMED", "no Issuer (the signer's X.509 subject)", "Assertion/Issuer")
    national_id = (assertion.findtext(f"{{{SAML}}}Subject/{{{SAML}}}NameID") or "").strip()
    if not national_id:
        raise VihfError("VIHF_MALFORMED", "no Subject/NameID (the actor's national id)", "Assertion/Subject/NameID")
    return assertion_id, issued, issuer, national_id


def _authn(assertion: etree._Element) -> tuple[str, str | None]:
    context = assertion.find(f"{{{SAML}}}AuthnStatement/{{{SAML}}}AuthnContext")
    class_ref = (context.findtext(f"{{{SAML}}}AuthnContextClassRef") or "").strip() if context is not None else ""
    if not class_ref:
        raise VihfError("VIHF_MALFORMED", "no AuthnStatement/AuthnContext/AuthnContextClassRef",
                        "Assertion/AuthnStatement")
    decl = (context.findtext(f"{{{SAML}}}AuthnContextDecl") or "").strip() or None
    return class_ref, decl


def _conditions(assertion: etree._Element) -> tuple[datetime | None, datetime | None]:
    conditions = assertion.find(f"{{{SAML}}}Conditions")
    if conditions is None:
        return None, None
    bounds = {}
    for name in ("NotBefore", "NotOnOrAfter"):
        value = conditions.get(name)
        bounds[name] = None if value is None else _instant(value, f"Assertion/Conditions/@{name}")
    return bounds["NotBefore"], bounds["NotOnOrAfter"]


def parse_vihf(security_header_or_assertion: etree._Element, *, require_resource: bool = True) -> Vihf:
    """Read the VIHF in a ``wsse:Security`` header (or the assertion itself); VihfError on any missing or
    malformed mandatory field. ``require_resource=False`` lets a transaction without a patient omit the
    resource-id (every official example carries one)."""
    assertion = find_assertion(security_header_or_assertion)
    assertion_id, issued, issuer, national_id = _header(assertion)
    authn_context, authn_decl = _authn(assertion)
    values = _attributes(assertion)
    profession, savoir_faire = _roles(values)
    auth_mode = _text(values, ATTR_AUTH_MODE)
    if auth_mode not in AUTH_MODES:
        raise VihfError("VIHF_AUTH_MODE_INVALID", f"{auth_mode!r} is not one of {', '.join(AUTH_MODES)}",
                        _ATTRIBUTE_LOCATION.format(ATTR_AUTH_MODE))
    if auth_mode == "INDIRECTE_RENFORCEE" and not authn_decl:
        raise VihfError("VIHF_AUTHN_DECL_MISSING", "INDIRECTE_RENFORCEE needs an AuthnContextDecl",
                        "Assertion/AuthnStatement/AuthnContext")
    version = _text(values, ATTR_VERSION)
    if version not in SUPPORTED_VERSIONS:
        raise VihfError("VIHF_VERSION_UNSUPPORTED", f"VIHF_Version {version!r}, supported: {SUPPORTED_VERSIONS}",
                        _ATTRIBUTE_LOCATION.format(ATTR_VERSION))
    sector = _text(values, ATTR_SECTOR)
    if not _SECTOR.match(sector):
        raise VihfError("VIHF_ATTRIBUTE_INVALID", f"{sector!r} is not SAxx^{SECTOR_SYSTEM}",
                        _ATTRIBUTE_LOCATION.format(ATTR_SECTOR))
    resource_urn = _text(values, ATTR_RESOURCE_URN)
    if resource_urn != RESOURCE_URN:
        raise VihfError("VIHF_ATTRIBUTE_INVALID", f"Ressource_URN {resource_urn!r}, expected {RESOURCE_URN}",
                        _ATTRIBUTE_LOCATION.format(ATTR_RESOURCE_URN))
    ins = ins_oid = None
    if require_resource or ATTR_RESOURCE_ID in values:
        ins, ins_oid = parse_ins_cx(_text(values, ATTR_RESOURCE_ID))
    subject_name = _optional_text(values, ATTR_SUBJECT_ID)
    if auth_mode != "DIRECTE" and not subject_name:
        # Without a CPS the DMP cannot read the actor's name from a card: the VIHF must say it.
        raise VihfError("VIHF_ATTRIBUTE_MISSING", f"{auth_mode} needs the actor's name ({ATTR_SUBJECT_ID})",
                        _ATTRIBUTE_LOCATION.format(ATTR_SUBJECT_ID))
    lps = [_text(values, name, "VIHF_LPS_MISSING") for name in LPS_ATTRIBUTES]
    not_before, not_on_or_after = _conditions(assertion)
    return Vihf(
        assertion_id=assertion_id, issue_instant=issued, issuer=issuer, national_id=national_id,
        subject_name=subject_name, authn_context=authn_context, authn_context_decl=authn_decl,
        profession=profession, savoir_faire=savoir_faire, structure_id=_text(values, ATTR_STRUCTURE),
        sector=sector.split("^")[0], auth_mode=auth_mode, purpose=_purpose(values), ins=ins, ins_oid=ins_oid,
        resource_urn=resource_urn, version=version,
        confidentiality=tuple(_codes(values, ATTR_CONFIDENTIALITY, "ConfidentialityCode")),
        lps_id=lps[0], lps_name=lps[1], lps_version=lps[2], lps_homologation=lps[3],
        signed=assertion.find(f"{{{DS}}}Signature") is not None,
        not_before=not_before, not_on_or_after=not_on_or_after)


def parse_vihf_bytes(data: bytes, *, max_bytes: int = 256 * 1024, require_resource: bool = True) -> Vihf:
    """:func:`parse_vihf` of untrusted bytes (an assertion or a message holding one), read with the hardened
    parser: no DTD, no entities, at most ``max_bytes``; anything else is VIHF_MALFORMED."""
    try:
        root = parse_xml(data, max_bytes=max_bytes)
    except XmlRejected as exc:
        raise VihfError("VIHF_MALFORMED", exc.reason, "message") from None
    return parse_vihf(root, require_resource=require_resource)


# ------------------------------------------------------------------------------------------- signature


@dataclass(frozen=True)
class ExampleVector:
    """An official example assertion accepted as a known test vector, excused exactly ``waives``."""

    name: str
    source: str
    assertion_id: str
    sha256: str
    waives: frozenset[str]


def assertion_digest(assertion: etree._Element) -> str:
    """SHA-256 (hex) of the assertion's exclusive canonical form: what identifies an example vector."""
    return hashlib.sha256(etree.tostring(assertion, method="c14n", exclusive=True)).hexdigest()


def load_example_vectors(path: Path = _DATA / "example_vectors.yaml") -> tuple[ExampleVector, ...]:
    """The known test vectors; a waived code that does not exist is refused (a typo would waive nothing)."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))["vectors"]
    vectors = tuple(ExampleVector(entry["name"], entry["source"], entry["assertion_id"], entry["sha256"],
                                  frozenset(entry["waives"])) for entry in entries)
    for vector in vectors:
        if vector.waives - ERROR_CODES:
            raise ValueError(f"example vector {vector.name}: unknown code(s) {sorted(vector.waives - ERROR_CODES)}")
    return vectors


@dataclass(frozen=True)
class TrustStore:
    """The CAs a VIHF signer may chain to (the run's test PKI), and the official example vectors accepted
    when ``accept_example_vectors`` (the DMP simulator turns it on: the official requests must pass)."""

    cas: tuple[x509.Certificate, ...]
    vectors: tuple[ExampleVector, ...] = ()

    @classmethod
    def from_pem(cls, ca_pem: bytes, *, accept_example_vectors: bool = False) -> TrustStore:
        """A PEM bundle of CAs (e.g. ``TestCA.ca_pem``), plus the example vectors when asked."""
        cas = tuple(x509.load_pem_x509_certificates(ca_pem)) if ca_pem.strip() else ()
        return cls(cas, load_example_vectors() if accept_example_vectors else ())

    @classmethod
    def from_pki_dir(cls, pki_dir: Path, *, accept_example_vectors: bool = False) -> TrustStore:
        """The run's test PKI as the simulators share it (``ca.crt.pem`` in ``pki_dir``, the folder
        ``TestCA.load_or_create`` and the TLS servers use)."""
        return cls.from_pem((pki_dir / CA_CERT_FILE).read_bytes(), accept_example_vectors=accept_example_vectors)

    def vector_for(self, assertion: etree._Element) -> ExampleVector | None:
        if not self.vectors:
            return None
        digest = assertion_digest(assertion)
        return next((vector for vector in self.vectors if vector.sha256 == digest), None)


#: How a refused signature is answered: unreadable or not holding, or signed by a certificate not trusted now.
_SIGNATURE_CODES = {"invalid": "VIHF_SIGNATURE_INVALID", "untrusted": "VIHF_SIGNER_UNTRUSTED"}


def _refused(rejection: SignatureRejected) -> VihfError:
    return VihfError(_SIGNATURE_CODES[rejection.kind], rejection.reason, f"Assertion/{rejection.location}")


def _check_signed_info(signature: etree._Element, assertion_id: str) -> None:
    location = "Assertion/Signature/SignedInfo"
    c14n = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}CanonicalizationMethod")
    if c14n is None or c14n.get("Algorithm") != EXCLUSIVE_C14N:
        raise VihfError("VIHF_SIGNATURE_INVALID", "SignedInfo must use exclusive c14n", location)
    references = signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    if len(references) != 1 or references[0].get("URI") != f"#{assertion_id}":
        raise VihfError("VIHF_SIGNATURE_INVALID", f"one Reference to #{assertion_id} expected", location)


def _example_signer(assertion: etree._Element, der: bytes, vector: ExampleVector) -> Signer:
    """The signer of a known official example: excused the listed codes, nothing else is relaxed."""
    if not {"VIHF_SIGNATURE_INVALID", "VIHF_SIGNER_UNTRUSTED"} <= vector.waives:
        raise VihfError("VIHF_SIGNATURE_INVALID", f"example vector {vector.name} excuses no signature failure")
    try:
        certificate: x509.Certificate | None = xmldsig.load_certificate(der)
    except SignatureRejected:
        certificate = None  # one official sample's certificate is not even DER
    subject = subject_of_der(der) if certificate else assertion.findtext(f"{{{SAML}}}Issuer", "")
    return Signer(certificate, subject, vector.name, vector.waives)


def verify_signature(assertion: etree._Element, trust: TrustStore, *, now: datetime) -> Signer:
    """Check the VIHF's enveloped signature and that its signer chains to the trust store at ``now`` (the
    simulator's clock); return the signer. ``assertion`` may be the security header. The signature covers
    exactly the assertion (one Reference to its ID)."""
    assertion = find_assertion(assertion)
    vector = trust.vector_for(assertion)
    signature = assertion.find(f"{{{DS}}}Signature")
    if signature is None:
        if vector and "VIHF_UNSIGNED" in vector.waives:
            return Signer(None, "", vector.name, vector.waives)
        raise VihfError("VIHF_UNSIGNED", "the VIHF carries no enveloped ds:Signature", "Assertion/Signature")
    try:
        der = xmldsig.signer_der(signature)
        if vector:
            return _example_signer(assertion, der, vector)
        certificate = xmldsig.load_certificate(der)
        _check_signed_info(signature, assertion.get("ID", ""))
        xmldsig.check_issued(certificate, trust.cas, now)
        (signed,) = xmldsig.verify_signed_info(assertion, certificate, now=now, references=1)
    except SignatureRejected as exc:
        raise _refused(exc) from None
    if signed.signed_xml is None or signed.signed_xml.get("ID") != assertion.get("ID"):
        raise VihfError("VIHF_SIGNATURE_INVALID", "the signature does not cover the assertion", "Assertion/Signature")
    return Signer(certificate, subject_of_der(der))


def _structure_numbers(structure_id: str) -> set[str]:
    """The identifier and the number after its one-character type prefix (1 FINESS, 3 SIRET, 4 RPPS+rank)."""
    return {structure_id, structure_id[1:]}


def _refuse(vihf: Vihf, code: str, message: str, location: str) -> None:
    """Raise, unless the signer is a known example vector that excuses this code."""
    if vihf.signer is None or code not in vihf.signer.waived:
        raise VihfError(code, message, location)


def check_signer(vihf: Vihf, signer: Signer) -> Vihf:
    """The signer fits the mode: DIRECTE is signed by the actor's own CPS (CN = NameID); INDIRECTE and
    INDIRECTE_RENFORCEE by the structure's certificate (an OU = Identifiant_Structure, with or without its
    type prefix). Returns the VIHF with its signer attached."""
    vihf = replace(vihf, signer=signer)
    location = "Assertion/Signature/KeyInfo"
    if vihf.is_direct and signer.common_name != vihf.national_id:
        _refuse(vihf, "VIHF_SIGNER_MISMATCH", f"DIRECTE must be signed by the CPS of {vihf.national_id}, "
                f"not {signer.subject or 'nobody'}", location)
    if not vihf.is_direct and not _structure_numbers(vihf.structure_id) & set(signer.organisational_units):
        _refuse(vihf, "VIHF_SIGNER_MISMATCH", f"{vihf.auth_mode} must be signed by the certificate of "
                f"structure {vihf.structure_id}, not {signer.subject or 'nobody'}", location)
    return vihf


# ------------------------------------------------------------------------------------------ freshness


def check_freshness(vihf: Vihf, now: datetime, *, max_age: timedelta = timedelta(hours=1),
                    skew: timedelta = timedelta(minutes=5)) -> None:
    """IssueInstant not in the future nor older than ``max_age``; Conditions honoured when present. ``now``
    is the simulator's clock (pinned for replays of dated examples). No public figure for the DMP's accepted
    VIHF age was found: one hour and five minutes of clock skew are our choice."""
    if vihf.issue_instant - skew > now or (vihf.not_before and vihf.not_before - skew > now):
        raise VihfError("VIHF_NOT_YET_VALID", f"issued {vihf.issue_instant.isoformat()}, after {now.isoformat()}",
                        "Assertion/@IssueInstant")
    if vihf.not_on_or_after and now >= vihf.not_on_or_after + skew:
        raise VihfError("VIHF_EXPIRED", f"NotOnOrAfter {vihf.not_on_or_after.isoformat()} has passed",
                        "Assertion/Conditions/@NotOnOrAfter")
    if now - vihf.issue_instant > max_age:
        raise VihfError("VIHF_EXPIRED", f"issued {vihf.issue_instant.isoformat()}, more than {max_age} ago",
                        "Assertion/@IssueInstant")


# -------------------------------------------------------------------------------------------- data set


def _known_structure(structure_id: str, dataset: Dataset) -> bool:
    kind, number = structure_id[:1], structure_id[1:]
    if kind == "1":
        return any(number in (s.finess, s.finess_legal) for s in dataset.structures)
    if kind == "3":
        return any(number == s.siret for s in dataset.structures)
    if kind == "4":  # a practice: the holder's RPPS then a 3-digit rank
        return len(number) == 14 and any(p.rpps == number[:11] for p in dataset.professionals)
    return False


def check_against_dataset(vihf: Vihf, dataset: Dataset) -> None:
    """The actor, role, structure, patient and software are the data set's. Actors without an RPPS-based
    national id (``8``...: CPE holders, automata) are not in the data set and are not looked up."""
    role_location = _ATTRIBUTE_LOCATION.format(ATTR_ROLE)
    if vihf.national_id.startswith("8"):
        try:
            professional = dataset.professional_by_national_id(vihf.national_id)
        except KeyError:
            raise VihfError("VIHF_UNKNOWN_PROFESSIONAL", f"{vihf.national_id} is no known professional",
                            "Assertion/Subject/NameID") from None
        if vihf.profession.code != professional.profession_code:
            raise VihfError("VIHF_ROLE_MISMATCH", f"role {vihf.profession.code}, but {vihf.national_id} is "
                            f"{professional.profession_code} ({professional.profession_label})", role_location)
        if vihf.savoir_faire and professional.specialty_code and vihf.savoir_faire.code != professional.specialty_code:
            raise VihfError("VIHF_ROLE_MISMATCH", f"savoir-faire {vihf.savoir_faire.code}, but {vihf.national_id} "
                            f"practises {professional.specialty_code}", role_location)
    if not _known_structure(vihf.structure_id, dataset):
        _refuse(vihf, "VIHF_UNKNOWN_STRUCTURE", f"{vihf.structure_id} is no known structure",
                _ATTRIBUTE_LOCATION.format(ATTR_STRUCTURE))
    if vihf.ins and not any(p.ins.nir + p.ins.key == vihf.ins and p.ins.oid == vihf.ins_oid for p in dataset.patients):
        raise VihfError("VIHF_UNKNOWN_PATIENT", f"INS {vihf.ins} ({vihf.ins_oid}) is no patient's active INS",
                        _ATTRIBUTE_LOCATION.format(ATTR_RESOURCE_ID))
    try:
        authorised = dataset.lps_by_idam(vihf.lps_homologation).authorised
    except KeyError:
        authorised = False
    if not authorised:
        _refuse(vihf, "VIHF_LPS_NOT_AUTHORISED", f"software homologation {vihf.lps_homologation!r} is unknown "
                "or withdrawn", _ATTRIBUTE_LOCATION.format("LPS_ID_HOMOLOGATION_DMP"))


def validate_vihf(security_header: etree._Element, *, trust: TrustStore, dataset: Dataset, now: datetime,
                  require_resource: bool = True) -> Vihf:
    """Every check, in order (parse, signature, signer/mode, freshness, data set): the VIHF with its signer."""
    vihf = parse_vihf(security_header, require_resource=require_resource)
    vihf = check_signer(vihf, verify_signature(security_header, trust, now=now))
    check_freshness(vihf, now)
    check_against_dataset(vihf, dataset)
    return vihf

