"""XML Signature verification (W3C XML-DSig 1.1), on signxml, against the caller's CAs and the caller's clock.

Every signature a simulator receives (the DMP's VIHF, the signature document of a DMP feed) is judged in three
steps, each refusing with a :class:`SignatureRejected` that says whether the signature is *invalid* (it cannot
be read or does not hold) or *untrusted* (it holds, but its certificate is not one the service trusts now):

1. :func:`signer_der` / :func:`load_certificate` read the signer's certificate from
   ``KeyInfo/X509Data/X509Certificate`` (exactly one);
2. :func:`check_issued` checks it was issued by one of the service's CAs and is valid at ``now``;
3. :func:`verify_signed_info` lets signxml verify the SignatureValue with that certificate's key and every
   SignedInfo reference's digest (its transforms, its canonicalisation), its certificate validity read at
   ``now`` as well.

``now`` is always the caller's: a simulator replaying dated examples pins its clock, and nothing here reads
the system time.

Done by hand, because signxml does not do it:

* the trust decision (step 2): signxml builds chains from a CA *file* with the WebPKI extension policy of
  ``cryptography``; a service here holds its CAs in memory (the lab's test CA), trusts certificates issued
  directly by them, and must tell an untrusted signer from a broken signature (the DMP answers them with
  different codes);
* the digests of ``ds:Manifest`` references (:func:`reference_digest`): XML-DSig core validation checks the
  SignedInfo references only (a Manifest's are the application's to check, XML-DSig 5.1), so signxml never
  resolves them. IHE DSG (the XAdES signature document of an XDS submission) signs the documents through such
  a Manifest, whose URIs (``urn:oid:<uniqueId>``) name documents outside the signature.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from lxml import etree
from signxml import DigestAlgorithm, SignatureConfiguration, SignatureMethod, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidDigest, SignXMLException
from signxml.exceptions import InvalidSignature as InvalidSignatureValue
from signxml.verifier import VerifyResult

DS = "http://www.w3.org/2000/09/xmldsig#"
_D = f"{{{DS}}}"
INCLUSIVE_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
EXCLUSIVE_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
#: Canonicalisation algorithms → (exclusive, with comments), for :func:`canonical`.
C14N = {INCLUSIVE_C14N: (False, False), f"{INCLUSIVE_C14N}#WithComments": (False, True),
        EXCLUSIVE_C14N: (True, False), f"{EXCLUSIVE_C14N}WithComments": (True, True)}
#: Digest algorithms → hashlib names, for :func:`reference_digest`.
DIGESTS = {f"{DS}sha1": "sha1", "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
           "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
           "http://www.w3.org/2001/04/xmlenc#sha512": "sha512"}
#: What the French health services sign with: RSA (CPS cards) and ECDSA (IGC-Santé software certificates),
#: SHA-1 still accepted as the DMP's own examples use it.
SIGNATURE_METHODS = frozenset({SignatureMethod.RSA_SHA1, SignatureMethod.RSA_SHA256, SignatureMethod.RSA_SHA384,
                               SignatureMethod.RSA_SHA512, SignatureMethod.ECDSA_SHA256,
                               SignatureMethod.ECDSA_SHA384, SignatureMethod.ECDSA_SHA512})
DIGEST_ALGORITHMS = frozenset({DigestAlgorithm.SHA1, DigestAlgorithm.SHA256, DigestAlgorithm.SHA384,
                               DigestAlgorithm.SHA512})
KEY_INFO = "Signature/KeyInfo"

Rejection = Literal["invalid", "untrusted"]


class SignatureRejected(ValueError):
    """A signature refused: ``kind`` is ``invalid`` (unreadable or not holding) or ``untrusted`` (a certificate
    the service does not trust at its clock), ``reason`` a sentence, ``location`` where in the signature."""

    def __init__(self, kind: Rejection, reason: str, location: str = "Signature") -> None:
        super().__init__(f"{reason} (at {location})")
        self.kind, self.reason, self.location = kind, reason, location


def signer_der(signature: etree._Element) -> bytes:
    """The DER bytes of the one ``KeyInfo/X509Data/X509Certificate`` of a ``ds:Signature``."""
    texts = signature.findall(f"{_D}KeyInfo/{_D}X509Data/{_D}X509Certificate")
    if len(texts) != 1 or not (texts[0].text or "").strip():
        raise SignatureRejected("invalid", "KeyInfo must carry exactly one X509Certificate", KEY_INFO)
    try:
        return base64.b64decode("".join((texts[0].text or "").split()), validate=True)
    except ValueError:
        raise SignatureRejected("invalid", "X509Certificate is not base64", KEY_INFO) from None


def load_certificate(der: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise SignatureRejected("invalid", "X509Certificate is not a DER certificate", KEY_INFO) from None


def check_issued(certificate: x509.Certificate, cas: Sequence[x509.Certificate], now: datetime) -> None:
    """``certificate`` is valid at ``now`` and was issued (and signed) by one of ``cas``."""
    subject = certificate.subject.rfc4514_string()
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SignatureRejected("untrusted", f"certificate {subject} is not valid at {now.isoformat()}", KEY_INFO)
    for ca in cas:
        if ca.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return
    raise SignatureRejected("untrusted", f"certificate {subject} (issuer {certificate.issuer.rfc4514_string()}) "
                                         "does not chain to a trusted CA", KEY_INFO)


def verify_signed_info(root: etree._Element, certificate: x509.Certificate, *, now: datetime,
                       location: str = "./", references: int | None = None) -> list[VerifyResult]:
    """signxml's verification of the signature of ``root`` (the ``ds:Signature`` itself when enveloping, else
    the signed element holding it at ``location``) with ``certificate``'s key: the SignatureValue over the
    canonical SignedInfo and each reference's digest; ``references`` is how many there must be (any number
    when None). What each reference signed, as signxml read it, is returned."""
    config = SignatureConfiguration(require_x509=True, location=location, verification_time=now,
                                    expect_references=references if references is not None else True,
                                    signature_methods=SIGNATURE_METHODS, digest_algorithms=DIGEST_ALGORITHMS,
                                    ignore_ambiguous_key_info=True)
    try:
        found = XMLVerifier().verify(etree.fromstring(etree.tostring(root)), x509_cert=certificate,
                                     expect_config=config, validate_schema=False)
    except InvalidDigest as exc:
        raise SignatureRejected("invalid", f"a SignedInfo reference's digest does not match the signed element "
                                           f"({exc})", "Signature/SignedInfo") from None
    except InvalidCertificate as exc:
        raise SignatureRejected("untrusted", str(exc), KEY_INFO) from None
    except InvalidSignatureValue:
        raise SignatureRejected("invalid", "SignatureValue does not verify with the KeyInfo certificate",
                                "Signature/SignatureValue") from None
    except (SignXMLException, ValueError) as exc:
        raise SignatureRejected("invalid", f"the signature does not verify: {exc}", "Signature") from None
    return found if isinstance(found, list) else [found]


def verify(root: etree._Element, cas: Sequence[x509.Certificate], *, now: datetime, location: str = "./",
           references: int | None = None) -> x509.Certificate:
    """The three steps (signer certificate, trust at ``now``, signed info) of the ``ds:Signature`` of ``root``:
    the signer's certificate when the signature holds and is trusted."""
    signature = root if root.tag == f"{_D}Signature" else root.find(f"{location}{_D}Signature")
    if signature is None:
        raise SignatureRejected("invalid", "no ds:Signature where one is expected")
    certificate = load_certificate(signer_der(signature))
    check_issued(certificate, cas, now)
    verify_signed_info(root, certificate, now=now, location=location, references=references)
    return certificate


def canonical(element: etree._Element, algorithm: str) -> bytes:
    """``element`` canonicalised by the c14n ``algorithm`` (inclusive c14n 1.0 when it is not one)."""
    exclusive, comments = C14N.get(algorithm, (False, False))
    return etree.tostring(element, method="c14n", exclusive=exclusive, with_comments=comments)


def reference_digest(data: bytes, root: etree._Element | None, transforms: Sequence[str],
                     digest_method: str) -> str | None:
    """The base64 digest a ``ds:Reference`` with these ``transforms`` and ``digest_method`` must carry for a
    document of bytes ``data`` (``root`` its parsed tree, for a c14n transform); None for an unknown digest
    algorithm. Only canonicalisation transforms are applied (the ones IHE DSG uses)."""
    algorithm = DIGESTS.get(digest_method)
    if algorithm is None:
        return None
    c14n = next((transform for transform in transforms if transform in C14N), None)
    if c14n is not None and root is not None:
        data = canonical(root, c14n)
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
