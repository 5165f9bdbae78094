"""Recordings: one YAML file per exchange, written by ``esante proxy --record DIR`` and answered by ``esante sim
replay DIR``. A person reads and edits them: the request and the answer as text, and ``match``, the keys a
request must have to get this answer (computed by the matching rules, :class:`MatchRule`).

How a request finds its answer (:meth:`Library.answer`): the recordings whose ``match`` equals the request's
keys; those recorded under the current test case first; among them, the n-th identical request of the case gets
the n-th recording (the last one repeats), so a call answered by a fault then by a result replays in that order.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import yaml
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from esante.simulators.core.evidence import canonical_json, sha256_hex
from esante.simulators.kits.mtom import MtomRejected, is_multipart, parse_related
from esante.simulators.kits.soap import SoapRejected, parse_envelope
from esante.simulators.replay.protocol import FORMAT, RECORDING_SUFFIX, RULES_FILE

MAX_RECORDING_BYTES = 32 * 1024 * 1024
MAX_PARAMS = 200

Headers = list[tuple[str, str]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Model):
    """One side of an exchange: its headers in order and its body, as text (UTF-8) or else base64."""

    headers: Headers = Field(default_factory=list)
    body: str = ""
    body_base64: str | None = None

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")

    def content(self) -> bytes:
        return base64.b64decode(self.body_base64) if self.body_base64 is not None else self.body.encode()

    @classmethod
    def carrying(cls, headers: Headers, body: bytes, **fields: Any) -> Any:
        """The message with ``body`` as text when it is UTF-8, else as base64."""
        try:
            return cls(headers=headers, body=body.decode(), **fields)
        except UnicodeDecodeError:
            return cls(headers=headers, body_base64=base64.b64encode(body).decode(), **fields)


class RecordedRequest(Message):
    method: str
    path: str
    query: str = ""


class RecordedResponse(Message):
    status: int


class Recording(_Model):
    """One recorded exchange (a file)."""

    format: int = FORMAT
    service: str
    case: str | None = Field(default=None, description="the test case it was recorded under, preferred when replaying")
    recorded_at: str | None = None
    upstream: str | None = Field(default=None, description="the service that answered")
    match: dict[str, Any] = Field(description="what a request must have to get this answer")
    secrets: list[str] = Field(default_factory=list, description="where secrets were seen (masked: replaced)")
    masked: bool = False
    request: RecordedRequest
    response: RecordedResponse

    def dump(self) -> str:
        header = (f"# Recorded by esante proxy from {self.upstream or 'the upstream'} ({self.service}).\n"
                  "# A request gets this response when its keys equal `match` (edit either; see rules.yaml).\n")
        return header + yaml.dump(self.model_dump(mode="json", exclude_none=True), Dumper=_Dumper,
                                  sort_keys=False, allow_unicode=True, width=120)


class _Dumper(yaml.SafeDumper):
    """Multi-line text (bodies) as literal blocks, so that a recording reads like the message."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


# -- matching rules ----------------------------------------------------------------------------------------------
class MatchRule(_Model):
    """How the requests of one service are told apart (``rules.yaml``)."""

    soap: bool = False
    values: dict[str, str] = Field(default_factory=dict, description="name: XPath 1.0 on the SOAP Body")
    ignore: list[str] = Field(default_factory=list, description="element local names left out of the values")
    params: list[str] = Field(default_factory=list, description="query or form parameters compared")


def load_rules(folder: Path | None) -> dict[str, MatchRule]:
    """The folder's ``rules.yaml`` if it has one, else the shipped rules; ValueError names what is wrong."""
    own = folder / RULES_FILE if folder is not None else None
    source = own if own is not None and own.is_file() else files("esante.simulators.replay").joinpath(RULES_FILE)
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
        return {name: MatchRule.model_validate(rule or {}) for name, rule in dict(raw).items()}
    except (yaml.YAMLError, ValidationError, TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from None


def rule_for(rules: dict[str, MatchRule], service: str) -> MatchRule:
    return rules.get(service) or rules.get("default") or MatchRule()


def match_keys(rule: MatchRule, method: str, path: str, query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """The keys of one request under ``rule``: what a recording's ``match`` is compared with."""
    keys: dict[str, Any] = {"method": method.upper(), "path": path}
    if rule.soap:
        return keys | _soap_keys(rule, content_type, body)
    if rule.params:
        form = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMS)
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            form += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_PARAMS)
        keys["params"] = {name: value for name, value in form if name in rule.params}
    return keys


def _soap_keys(rule: MatchRule, content_type: str, body: bytes) -> dict[str, Any]:
    try:
        envelope = parse_related(body, content_type).root if is_multipart(content_type) else body
        operation = parse_envelope(envelope, allow_soap11=True).body
    except (SoapRejected, MtomRejected, ValueError):
        operation = None
    if operation is None:  # not a SOAP call, or an empty Body: the bytes themselves
        return {"body_sha256": sha256_hex(body)}
    values = {name: _texts(operation.xpath(expr)) for name, expr in rule.values.items()} if rule.values \
        else _leaves(operation, set(rule.ignore))
    return {"operation": etree.QName(operation).localname, "values": values}


def _texts(found: Any) -> list[str]:
    items = found if isinstance(found, list) else [found]
    return [str(item) if not isinstance(item, etree._Element) else (item.text or "").strip() for item in items]


def _leaves(operation: etree._Element, ignore: set[str]) -> dict[str, Any]:
    """Every text value under the operation element, by its path of local names (a list when repeated)."""
    values: dict[str, list[str]] = {}
    for element in operation.iterdescendants():
        if not isinstance(element.tag, str) or len(element) or etree.QName(element).localname in ignore:
            continue
        names, node = [], element
        while node is not None and node is not operation:
            names.append(etree.QName(node).localname)
            node = node.getparent()
        values.setdefault("/".join(reversed(names)), []).append((element.text or "").strip())
    return {path: found[0] if len(found) == 1 else found for path, found in values.items()}


# -- a folder of recordings ----------------------------------------------------------------------------------------
def read_recording(path: Path) -> Recording:
    if path.stat().st_size > MAX_RECORDING_BYTES:
        raise ValueError(f"{path}: larger than {MAX_RECORDING_BYTES} bytes")
    try:
        return Recording.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None


def recording_name(sequence: int, recording: Recording) -> str:
    """``0001-INSI-01-RECSANSVITALE.yaml``: sorts in recording order, says the case and the operation."""
    label = recording.match.get("operation") or recording.request.path.strip("/").replace("/", "_") or "root"
    parts = [f"{sequence:04d}", recording.case or "no-case", str(label)]
    return "-".join("".join(c if c.isalnum() or c in "._-" else "_" for c in part) for part in parts)[:150] \
        + RECORDING_SUFFIX


class Library:
    """The recordings of one service, in recording order, and the per-case position of each repeated request."""

    def __init__(self, service: str, recordings: list[tuple[str, Recording]], rule: MatchRule) -> None:
        self.service, self.rule = service, rule
        self.recordings = recordings
        self._by_keys: dict[str, list[tuple[str, Recording]]] = {}
        for name, recording in recordings:
            self._by_keys.setdefault(canonical_json(recording.match), []).append((name, recording))
        self._served: Counter[tuple[str | None, str]] = Counter()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: Path | None, service: str) -> Library:
        """``folder/<service>/*.yaml``, in name order (none when the folder is None or absent)."""
        rule = rule_for(load_rules(folder), service)
        directory = folder / service if folder is not None else None
        paths = sorted(directory.glob(f"*{RECORDING_SUFFIX}")) if directory is not None and directory.is_dir() else []
        return cls(service, [(p.name, read_recording(p)) for p in paths], rule)

    def keys(self, method: str, path: str, query: str, content_type: str, body: bytes) -> dict[str, Any]:
        return match_keys(self.rule, method, path, query, content_type, body)

    def answer(self, keys: dict[str, Any], case_id: str | None) -> tuple[str, Recording] | None:
        """The recording answering a request with these keys in this case, or None."""
        key = canonical_json(keys)
        found = self._by_keys.get(key)
        if not found:
            return None
        own = [r for r in found if r[1].case == case_id] or found
        with self._lock:
            position = self._served[(case_id, key)]
            self._served[(case_id, key)] += 1
        return own[min(position, len(own) - 1)]

    def rewind(self) -> None:
        """Forget how many times each request was answered (a new test case)."""
        with self._lock:
            self._served.clear()
