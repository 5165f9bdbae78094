"""Cryptographic verification of an enveloping XML signature (the DMP feed's XAdES signature document).

Checks the SignedInfo references (same-document ``#Id`` URIs, c14n transforms), the SignatureValue with the
KeyInfo certificate's key (RSA PKCS#1 v1.5 or ECDSA, SHA-1/256/384/512) and that a given CA issued that
certificate and it is valid now. Returns a reason on failure, None when the signature holds.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
_D = f"{{{DS}}}"
INCLUSIVE = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N = {INCLUSIVE: (False, False), f"{INCLUSIVE}#WithComments": (False, True),
        "http://www.w3.org/2001/10/xml-exc-c14n#": (True, False),
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments": (True, True)}
DIGESTS = {f"{DS}sha1": "sha1", "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
           "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
           "http://www.w3.org/2001/04/xmlenc#sha512": "sha512"}
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
SIGNATURES = {f"{DS}rsa-sha1": ("rsa", hashes.SHA1), f"{_MORE}rsa-sha256": ("rsa", hashes.SHA256),
              f"{_MORE}rsa-sha512": ("rsa", hashes.SHA512), f"{_MORE}ecdsa-sha256": ("ec", hashes.SHA256),
              f"{_MORE}ecdsa-sha384": ("ec", hashes.SHA384), f"{_MORE}ecdsa-sha512": ("ec", hashes.SHA512)}


def canonical(element: etree._Element, algorithm: str) -> bytes:
    """``element`` canonicalised by the c14n ``algorithm`` (inclusive c14n when it is not one)."""
    exclusive, comments = C14N.get(algorithm, (False, False))
    return etree.tostring(element, method="c14n", exclusive=exclusive, with_comments=comments)


def _check_references(signature: etree._Element, signed_info: etree._Element) -> str | None:
    by_id = {element.get("Id"): element for element in signature.iter() if element.get("Id")}
    for number, reference in enumerate(signed_info.iterfind(f"{_D}Reference"), 1):
        uri = reference.get("URI", "")
        target = by_id.get(uri[1:]) if uri.startswith("#") else None
        if target is None:
            return f"SignedInfo Reference[{number}] URI {uri!r} names no element of the signature"
        transforms = [t.get("Algorithm", "") for t in reference.iterfind(f"{_D}Transforms/{_D}Transform")]
        algorithm = next((t for t in transforms if t in C14N), INCLUSIVE)
        method = reference.find(f"{_D}DigestMethod")
        digest = DIGESTS.get("" if method is None else method.get("Algorithm", ""))
        if digest is None:
            return f"SignedInfo Reference[{number}] has an unsupported DigestMethod"
        actual = base64.b64encode(hashlib.new(digest, canonical(target, algorithm)).digest()).decode()
        if actual != (reference.findtext(f"{_D}DigestValue") or "").strip():
            return f"SignedInfo Reference[{number}] ({uri}) digest does not match the signed element"
    return None


def _verify_value(cert: x509.Certificate, signed_info: etree._Element, algorithm: str, value: bytes) -> str | None:
    kind, hash_type = SIGNATURES.get(algorithm, ("", None))
    method = signed_info.find(f"{_D}CanonicalizationMethod")
    data = canonical(signed_info, "" if method is None else method.get("Algorithm", ""))
    key = cert.public_key()
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey) and hash_type:
            key.verify(value, data, padding.PKCS1v15(), hash_type())
        elif kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey) and hash_type:
            half = len(value) // 2
            der = encode_dss_signature(int.from_bytes(value[:half]), int.from_bytes(value[half:]))
            key.verify(der, data, ec.ECDSA(hash_type()))
        else:
            return f"SignatureMethod {algorithm!r} does not fit the certificate's key or is not supported"
    except InvalidSignature:
        return "SignatureValue does not verify with the KeyInfo certificate"
    return None


def _certificate(signature: etree._Element) -> x509.Certificate | str:
    text = signature.findtext(f"{_D}KeyInfo/{_D}X509Data/{_D}X509Certificate")
    if not text:
        return "KeyInfo carries no X509Certificate"
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join(text.split())))
    except ValueError:
        return "KeyInfo X509Certificate is not a DER certificate"


def verify_signature(signature: etree._Element, ca_cert: x509.Certificate) -> str | None:
    """Why ``signature`` (a ds:Signature) does not hold or was not made with a certificate ``ca_cert`` issued."""
    signed_info = signature.find(f"{_D}SignedInfo")
    method = None if signed_info is None else signed_info.find(f"{_D}SignatureMethod")
    value = signature.findtext(f"{_D}SignatureValue")
    if signed_info is None or method is None or not value:
        return "the signature has no SignedInfo, SignatureMethod or SignatureValue"
    cert = _certificate(signature)
    if isinstance(cert, str):
        return cert
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return f"the signing certificate {cert.subject.rfc4514_string()} was not issued by the trusted CA"
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return "the signing certificate is not valid now"
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except ValueError:
        return "SignatureValue is not base64"
    return _check_references(signature, signed_info) or _verify_value(cert, signed_info,
                                                                        method.get("Algorithm", ""), raw)
