"""The reference candidate's signature document of a DMP feed: an enveloping XAdES-BES signature of an IHE DSG
manifest (one ``Reference`` per document, ``URI`` = ``urn:oid:<XDS uniqueId>``, digest of its bytes).

Built with lxml c14n and ``cryptography`` (EC or RSA key from PEM): SignedInfo references the manifest and
the XAdES SignedProperties, each through exclusive c14n, as the official TD2.1 example does.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
PURPOSE_OF_SIGNATURE = "1.2.840.10065.1.12.1.14"  # ASTM E1762 "Source"


def _ds(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{DS}}}{tag}", attributes)
    element.text = text
    return element


def _digest(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _reference(parent: etree._Element, uri: str, digest: str, *, c14n: bool, kind: str | None = None) -> None:
    attributes = {"URI": uri} | ({"Type": kind} if kind else {})
    reference = _ds(parent, "Reference", **attributes)
    if c14n:
        _ds(_ds(reference, "Transforms"), "Transform", Algorithm=EXC_C14N)
    _ds(reference, "DigestMethod", Algorithm=SHA256)
    _ds(reference, "DigestValue", digest)


def _signed_properties(signature: etree._Element, signature_id: str, cert: x509.Certificate) -> etree._Element:
    qualifying = etree.SubElement(_ds(signature, "Object"), f"{{{XADES}}}QualifyingProperties",
                                  Target=f"#{signature_id}", nsmap={"xades": XADES})
    properties = etree.SubElement(qualifying, f"{{{XADES}}}SignedProperties", Id="S0-SignedProperties")
    signed = etree.SubElement(properties, f"{{{XADES}}}SignedSignatureProperties")
    etree.SubElement(signed, f"{{{XADES}}}SigningTime").text = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    certificate = etree.SubElement(etree.SubElement(signed, f"{{{XADES}}}SigningCertificate"), f"{{{XADES}}}Cert")
    cert_digest = etree.SubElement(certificate, f"{{{XADES}}}CertDigest")
    _ds(cert_digest, "DigestMethod", Algorithm=SHA256)
    _ds(cert_digest, "DigestValue", _digest(cert.public_bytes(serialization.Encoding.DER)))
    issuer_serial = etree.SubElement(certificate, f"{{{XADES}}}IssuerSerial")
    _ds(issuer_serial, "X509IssuerName", cert.issuer.rfc4514_string())
    _ds(issuer_serial, "X509SerialNumber", str(cert.serial_number))
    policy = etree.SubElement(signed, f"{{{XADES}}}SignaturePolicyIdentifier")
    etree.SubElement(policy, f"{{{XADES}}}SignaturePolicyImplied")
    return properties


def _algorithm(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    raise ValueError(f"unsupported signing key {type(key).__name__}")


def _sign(key: object, data: bytes) -> bytes:
    """The XMLDSig signature value: raw r||s for ECDSA (RFC 4050), PKCS#1 v1.5 for RSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size) + s.to_bytes(size)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True)


def build_signature(documents: Mapping[str, bytes], cert_pem: bytes, key_pem: bytes, *,
                    tamper: bool = False) -> bytes:
    """The signature document over ``documents`` (XDS uniqueId -> bytes); ``tamper`` spoils their digests."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_pem, password=None)
    signature_id = f"sig-{uuid.uuid4()}"
    signature = etree.Element(f"{{{DS}}}Signature", Id=signature_id, nsmap={"ds": DS})
    signed_info = _ds(signature, "SignedInfo")
    _ds(signed_info, "CanonicalizationMethod", Algorithm=EXC_C14N)
    _ds(signed_info, "SignatureMethod", Algorithm=_algorithm(key))
    value = _ds(signature, "SignatureValue")
    _ds(_ds(_ds(signature, "KeyInfo"), "X509Data"), "X509Certificate",
        base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode())
    manifest = _ds(_ds(signature, "Object"), "Manifest", Id="IHEManifest")
    for unique_id, data in documents.items():
        _reference(manifest, f"urn:oid:{unique_id}", _digest(data + (b" " if tamper else b"")), c14n=False)
    properties = _ds(_ds(signature, "Object"), "SignatureProperties")
    _ds(properties, "SignatureProperty", PURPOSE_OF_SIGNATURE, Id="purposeOfSignature", Target=f"#{signature_id}")
    signed_properties = _signed_properties(signature, signature_id, cert)
    _reference(signed_info, "#IHEManifest", _digest(_c14n(manifest)), c14n=True, kind=f"{DS}Manifest")
    _reference(signed_info, "#S0-SignedProperties", _digest(_c14n(signed_properties)), c14n=True,
               kind="http://uri.etsi.org/01903#SignedProperties")
    value.text = base64.b64encode(_sign(key, _c14n(signed_info))).decode()
    return etree.tostring(signature, xml_declaration=True, encoding="UTF-8")
