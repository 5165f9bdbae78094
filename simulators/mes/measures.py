"""Validation of measures pushed as a ``MesBundleFluxAlimentation`` (ANS "Mesures de santé" IG).

The Bundle is a ``transaction`` with one Observation of a listed measure profile (entry request ``POST
Observation``) and an optional PhdDevice (``POST Device``) the Observation points to by its ``fullUrl``.
The Bundle reaches these rules valid R4 (the FHIR kit validated it against the R4 JSON Schema and
fhir.resources' models, each entry's resource as its own type); they add the
profile's rules from ``data/measures.yaml``: meta.profile, vital-signs category, LOINC code, UCUM unit and a
plausible value, the paired patient as subject, an effective date not in the future. Every problem is
reported, each with its FHIRPath-like location.

Idempotency (our design, following FHIR's conditional create): the Observation carries an ``identifier``
(the app's own id of the measure) and its entry's ``request.ifNoneExist`` is ``identifier=<system>|<value>``;
MES then files a retried Bundle once and answers ``200 OK`` with the measure already filed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl

import yaml

from esante.simulators.kits.fhir.errors import Invalid, problem
from esante.simulators.kits.fhir.values import date_range
from esante.simulators.mes.protocol import LOINC, MAX_TRANSACTION_ENTRIES, MEASURE_KINDS, OBSERVATION_CATEGORY, UCUM

FUTURE_SLACK = timedelta(minutes=5)  # a device clock a little ahead is not an error


@dataclass(frozen=True, slots=True)
class MeasureCatalogue:
    profile_base: str
    device_profile: str
    measures: dict[str, dict[str, Any]]

    def by_profile(self, url: str) -> tuple[str, dict[str, Any]] | None:
        for kind, spec in self.measures.items():
            if url == self.profile_base + spec["profile"]:
                return kind, spec
        return None


@cache
def catalogue() -> MeasureCatalogue:
    data = yaml.safe_load(files("esante.simulators.mes").joinpath("data/measures.yaml").read_text(encoding="utf-8"))
    if tuple(data["measures"]) != MEASURE_KINDS:
        raise ValueError(f"data/measures.yaml describes {', '.join(data['measures'])}; protocol.MEASURE_KINDS "
                         f"names {', '.join(MEASURE_KINDS)}")
    return MeasureCatalogue(data["profile_base"], data["device_profile"], data["measures"])


@dataclass(frozen=True, slots=True)
class MeasureEntry:
    """A valid Bundle's content: the Observation (as sent), its measure kind, idempotency key, device."""

    kind: str
    observation: dict[str, Any]
    key: str | None          # "system|value" of the identifier named by ifNoneExist
    device: dict[str, Any] | None


def validate_bundle(bundle: dict[str, Any], patient_ref: str, now: datetime | None = None) -> MeasureEntry:
    """The measure in a (valid R4) MesBundleFluxAlimentation, or :class:`Invalid` listing every problem."""
    if bundle.get("type") != "transaction":
        raise Invalid([problem("invalid", f"Bundle.type is {bundle.get('type')!r}: a MesBundleFluxAlimentation "
                                          "is a transaction", "Bundle.type")])
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_TRANSACTION_ENTRIES:
        raise Invalid([problem("invalid", "a MesBundleFluxAlimentation holds one Observation and at most one "
                                          "Device", "Bundle.entry")])
    problems: list[dict[str, Any]] = []
    observations = [(i, e) for i, e in enumerate(entries) if (e.get("resource") or {}).get("resourceType")
                    == "Observation"]
    devices = [(i, e) for i, e in enumerate(entries) if (e.get("resource") or {}).get("resourceType") == "Device"]
    if len(observations) != 1 or len(observations) + len(devices) != len(entries):
        raise Invalid([problem("invalid", "the Bundle must hold exactly one Observation and optionally one "
                                          "Device", "Bundle.entry")])
    index, entry = observations[0]
    device = _device(devices, problems)
    kind = _observation(entry, f"Bundle.entry[{index}]", patient_ref, device, now or datetime.now(UTC), problems)
    key = _idempotency_key(entry, f"Bundle.entry[{index}]", problems)
    if problems or kind is None:
        raise Invalid(problems)
    return MeasureEntry(kind, entry["resource"], key, devices[0][1]["resource"] if devices else None)


def _request(entry: dict[str, Any], where: str, url: str, problems: list[dict[str, Any]]) -> None:
    request = entry.get("request") or {}
    if request.get("method") != "POST" or request.get("url") != url:
        problems.append(problem("invalid", f"the entry's request must be POST {url}", f"{where}.request"))


def _device(devices: list[tuple[int, dict[str, Any]]], problems: list[dict[str, Any]]) -> str | None:
    if not devices:
        return None
    index, entry = devices[0]
    where = f"Bundle.entry[{index}]"
    _request(entry, where, "Device", problems)
    if catalogue().device_profile not in ((entry["resource"].get("meta") or {}).get("profile") or []):
        problems.append(problem("invalid", f"the Device must declare the profile {catalogue().device_profile}",
                                f"{where}.resource.meta.profile"))
    if not str(entry.get("fullUrl", "")).startswith("urn:uuid:"):
        problems.append(problem("invalid", "the Device entry needs a urn:uuid fullUrl the Observation refers to",
                                f"{where}.fullUrl"))
    return entry.get("fullUrl")


def _observation(entry: dict[str, Any], where: str, patient_ref: str, device: str | None, now: datetime,
                 problems: list[dict[str, Any]]) -> str | None:
    _request(entry, where, "Observation", problems)
    resource, at = entry["resource"], f"{where}.resource"  # its structure was checked with the Bundle's
    profiles = (resource.get("meta") or {}).get("profile") or []
    known = next((k for k in (catalogue().by_profile(p) for p in profiles) if k), None)
    if known is None:
        problems.append(problem("invalid", f"meta.profile {profiles} names no measure profile of the IG",
                                f"{at}.meta.profile"))
        return None
    kind, spec = known
    if resource.get("status") not in ("final", "amended", "corrected"):
        problems.append(problem("value", f"status {resource.get('status')!r}: a measure is final", f"{at}.status"))
    categories = [c for cat in resource.get("category") or [] for c in cat.get("coding") or []]
    if not any(c.get("system") == OBSERVATION_CATEGORY and c.get("code") == "vital-signs" for c in categories):
        problems.append(problem("required", "category vital-signs is missing", f"{at}.category"))
    codes = [c for c in (resource.get("code") or {}).get("coding") or [] if c.get("system") == LOINC]
    if not any(c.get("code") in spec["codes"] for c in codes):
        sent = [c.get("code") for c in codes] or "no LOINC coding"
        problems.append(problem("code-invalid", f"code {sent} is not a LOINC code of {spec['profile']} "
                                                f"(expected {' or '.join(spec['codes'])})", f"{at}.code.coding"))
    if (resource.get("subject") or {}).get("reference") != patient_ref:
        problems.append(problem("forbidden", f"subject must be the paired citizen ({patient_ref})",
                                f"{at}.subject"))
    _effective(resource, at, now, problems)
    if "components" in spec:
        _components(resource, at, spec["components"], problems)
    else:
        _quantity(resource.get("valueQuantity"), f"{at}.valueQuantity", spec["units"], problems)
    reference = (resource.get("device") or {}).get("reference")
    if reference is not None and reference != device:
        problems.append(problem("invalid", f"device {reference!r} is not the Device entry of the Bundle",
                                f"{at}.device"))
    return kind


def _effective(resource: dict[str, Any], at: str, now: datetime, problems: list[dict[str, Any]]) -> None:
    value = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("end")
    if not value:
        problems.append(problem("required", "effectiveDateTime is missing: when was it measured?",
                                f"{at}.effective[x]"))
        return
    if date_range(value).low > now + FUTURE_SLACK:  # a valid R4 dateTime (the kit validated it)
        problems.append(problem("value", f"effectiveDateTime {value} is in the future", f"{at}.effective[x]"))


def _quantity(quantity: Any, at: str, units: dict[str, list[float]], problems: list[dict[str, Any]]) -> None:
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        problems.append(problem("required", "the measure has no valueQuantity.value", at))
        return
    if quantity.get("system") != UCUM or quantity.get("code") not in units:
        problems.append(problem("code-invalid", f"unit {quantity.get('code')!r} (system {quantity.get('system')!r})"
                                                f" is not one of the UCUM units {', '.join(units)}", f"{at}.code"))
        return
    low, high = units[quantity["code"]]
    if not low <= float(quantity["value"]) <= high:
        problems.append(problem("value", f"value {quantity['value']} {quantity['code']} is outside the plausible "
                                         f"range [{low}, {high}]", f"{at}.value"))


def _components(resource: dict[str, Any], at: str, expected: dict[str, dict[str, Any]],
                problems: list[dict[str, Any]]) -> None:
    components = resource.get("component") or []
    for name, spec in expected.items():
        index = next((i for i, c in enumerate(components)
                      if any(x.get("system") == LOINC and x.get("code") == spec["code"]
                             for x in (c.get("code") or {}).get("coding") or [])), None)
        if index is None:
            problems.append(problem("required", f"the {name} component (LOINC {spec['code']}) is missing",
                                    f"{at}.component"))
            continue
        _quantity(components[index].get("valueQuantity"), f"{at}.component[{index}].valueQuantity",
                  spec["units"], problems)


def _idempotency_key(entry: dict[str, Any], where: str, problems: list[dict[str, Any]]) -> str | None:
    """The ``system|value`` an ``ifNoneExist`` names; it must be the Observation's own identifier."""
    condition = (entry.get("request") or {}).get("ifNoneExist")
    if condition is None:
        return None
    identifiers = {f"{i.get('system')}|{i.get('value')}" for i in entry["resource"].get("identifier") or []}
    asked = parse_qsl(condition)  # as a search: percent-encoded or not
    key = asked[0][1] if len(asked) == 1 and asked[0][0] == "identifier" else None
    if key is None or key not in identifiers:
        problems.append(problem("invalid", f"ifNoneExist {condition!r} must be identifier=<system>|<value> of "
                                           "the Observation's own identifier", f"{where}.request.ifNoneExist"))
        return None
    return key

