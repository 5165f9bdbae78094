"""Secrets in recordings: flagged always, masked on request (``esante proxy --record DIR --mask-secrets``).

A secret is what would let someone act as the candidate or the professional: credentials in headers
(``Authorization``, cookies, API keys), OAuth tokens, codes and client credentials in JSON or form bodies, and
SAML assertions or security tokens in XML (the CPS assertion of ``wsse:Security``, the DMP's VIHF). Masking
replaces the value by :data:`~esante.simulators.replay.protocol.MASKED`, keeping the message well formed; a body
that is neither XML, JSON nor a form (an MTOM multipart) is flagged when it holds an assertion, not rewritten.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from lxml import etree

from esante.simulators.kits.xml import XmlRejected, parse_xml
from esante.simulators.replay.protocol import MASKED
from esante.simulators.replay.recordings import Message, Recording

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "esante-api-key",
                            "x-api-key"})
SECRET_FIELDS = frozenset({"access_token", "refresh_token", "id_token", "client_secret", "client_assertion",
                           "assertion", "code", "code_verifier", "password", "subject_token", "token",
                           "logout_token", "auth_req_id"})
SECRET_ELEMENTS = frozenset({"Assertion", "EncryptedAssertion", "BinarySecurityToken"})
_ASSERTION = re.compile(rb"<([\w.-]+:)?(Assertion|BinarySecurityToken)[\s>]")


def flag_secrets(recording: Recording, *, mask: bool) -> Recording:
    """The recording with ``secrets`` listing where secrets are, and with them masked when ``mask``."""
    found: list[str] = []
    request = _scan(recording.request, "request", mask, found)
    response = _scan(recording.response, "response", mask, found)
    return recording.model_copy(update={"request": request, "response": response, "secrets": found,
                                        "masked": mask and bool(found)})


def _scan(message: Any, side: str, mask: bool, found: list[str]) -> Any:
    headers = []
    for name, value in message.headers:
        if name.lower() in SECRET_HEADERS:
            found.append(f"{side} header {name}")
            value = MASKED if mask else value
        headers.append((name, value))
    body = message.content()
    kind = _body_kind(message)
    scanner = {"xml": _xml, "json": _json, "form": _form}.get(kind)
    rewritten = scanner(body, found, f"{side} body", mask) if scanner else None
    if scanner is None and _ASSERTION.search(body):
        found.append(f"{side} body: a security token or SAML assertion (not masked: the body is not plain XML)")
    update: dict[str, Any] = {"headers": headers}
    if mask and rewritten is not None:
        update |= Message.carrying(headers, rewritten).model_dump(include={"body", "body_base64"})
    return message.model_copy(update=update)


def _body_kind(message: Message) -> str | None:
    media = message.header("content-type").split(";")[0].strip().lower()
    if media.endswith("xml"):
        return "xml"
    if media.endswith("json"):
        return "json"
    return "form" if media == "application/x-www-form-urlencoded" else None


def _xml(body: bytes, found: list[str], where: str, mask: bool) -> bytes | None:
    try:
        root = parse_xml(body)
    except XmlRejected:
        return None
    hits = [e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname in SECRET_ELEMENTS
            and not any(etree.QName(a).localname in SECRET_ELEMENTS for a in e.iterancestors())]
    for element in hits:
        found.append(f"{where}: {etree.QName(element).localname}")
        if mask:
            for child in list(element):
                element.remove(child)
            element.text = MASKED
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") if hits else None


def _json(body: bytes, found: list[str], where: str, mask: bool) -> bytes | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    before = len(found)
    masked = _json_walk(document, found, where, mask)
    return json.dumps(masked, ensure_ascii=False).encode() if len(found) > before else None


def _json_walk(value: Any, found: list[str], where: str, mask: bool) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in SECRET_FIELDS and isinstance(item, str):
                found.append(f"{where}: {key}")
                out[key] = MASKED if mask else item
            else:
                out[key] = _json_walk(item, found, where, mask)
        return out
    if isinstance(value, list):
        return [_json_walk(item, found, where, mask) for item in value]
    return value


def _form(body: bytes, found: list[str], where: str, mask: bool) -> bytes | None:
    pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=200)
    secret = [name for name, _ in pairs if name in SECRET_FIELDS]
    found.extend(f"{where}: {name}" for name in secret)
    return urlencode([(n, MASKED if mask and n in SECRET_FIELDS else v) for n, v in pairs]).encode() if secret \
        else None
