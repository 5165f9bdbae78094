"""The reference partner app's own pieces: its FHIR resources pass MES's validation for every measure kind,
its retry rules read MES's answers right, and it follows paging links only on MES itself."""

from __future__ import annotations

import httpx
import pytest

from esante.harness.lab import mes as mes_fhir
from esante.harness.reference.mes.application import _same_origin_path
from esante.harness.reference.mes.client import MesRefused, _retry_after, outcome_of
from esante.harness.reference.mes.resources import MEASURES, measure_bundle
from esante.harness.reference.pdf import minimal_pdf
from esante.simulators.kits.fhir.errors import Invalid
from esante.simulators.mes.documents import validate_document
from esante.simulators.mes.measures import catalogue, validate_bundle

PATIENT = "Patient/abc"
UNITS = {"body_weight": "kg", "body_height": "cm", "bmi": "kg/m2", "blood_pressure": "mm[Hg]", "heart_rate": "/min",
         "body_temperature": "Cel", "glucose": "mg/dL", "oxygen_saturation": "%", "steps": "1/(24.h)",
         "pain": "{score}", "waist_circumference": "cm", "head_circumference": "cm"}


def test_the_app_knows_every_measure_profile() -> None:
    assert set(MEASURES) == set(catalogue().measures) == set(UNITS)


@pytest.mark.parametrize("kind", sorted(UNITS))
def test_reference_bundles_are_valid_for_every_kind(kind: str) -> None:
    measure = {"id": f"m-{kind}", "kind": kind, "unit": UNITS[kind], "value": mes_fhir.SAMPLE_VALUES.get(kind, 0),
               "systolic": 120, "diastolic": 80}
    bundle = measure_bundle(measure, PATIENT, "2026-01-01T08:00:00+00:00")
    entry = validate_bundle(bundle, PATIENT)
    assert entry.kind == kind and entry.key == f"urn:oid:1.2.250.1.999.42.1|m-{kind}"


def test_human_units_are_refused() -> None:
    bundle = measure_bundle({"id": "t", "kind": "body_temperature", "unit": "Cel", "value": 37}, PATIENT,
                            "2026-01-01T08:00:00+00:00", human_units=True)
    with pytest.raises(Invalid, match="°C"):
        validate_bundle(bundle, PATIENT)


def test_the_pdf_is_one_mes_accepts() -> None:
    import base64

    pdf = minimal_pdf("Bilan (sanguin)")
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    resource = mes_fhir.document(PATIENT, data=pdf)
    assert validate_document(resource, PATIENT)[1] == pdf
    assert base64.b64decode(resource["content"][0]["attachment"]["data"]) == pdf


def test_answers_are_read_as_mes_means_them() -> None:
    revoked = httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "security", "diagnostics": "the pairing is revoked by the user",
         "details": {"coding": [{"code": "PAIRING_REVOKED"}]}}]})
    assert outcome_of(revoked) == ("PAIRING_REVOKED", "the pairing is revoked by the user")
    assert outcome_of(httpx.Response(400, json={"error": "invalid_grant", "error_description": "x"})) == \
        ("invalid_grant", "x")
    assert outcome_of(httpx.Response(502, text="<html>bad gateway</html>"))[0] == "http_502"
    assert _retry_after(httpx.Response(429, headers={"Retry-After": "2"})) == 2.0
    assert _retry_after(httpx.Response(429, headers={"Retry-After": "3600"})) == 10.0
    assert _retry_after(httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 1.0


def test_paging_links_are_followed_on_mes_only() -> None:
    assert _same_origin_path("https://mes:8005/fhir/Observation?_offset=5", "https://mes:8005") == \
        "/fhir/Observation?_offset=5"
    with pytest.raises(MesRefused):
        _same_origin_path("https://attacker.example/fhir/Observation", "https://mes:8005")
    with pytest.raises(MesRefused):
        _same_origin_path("https://mes:8005.attacker.example/fhir", "https://mes:8005")
