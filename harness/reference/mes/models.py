"""The MES actions' parameters and report, as the driver contract describes them (declared here independently
of the test kit, as any candidate would from the published OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from esante.harness.driver import ActionReport
from esante.harness.reference.parts import Params, PatientParams


class PairParams(Params):
    patient: PatientParams | None = None  # for MES's page: the app itself needs nothing
    consent: Literal["accept", "refuse"] = "accept"


class Measure(Params):
    id: str
    kind: str
    value: float | None = None
    systolic: float | None = None
    diastolic: float | None = None
    unit: str
    code: str | None = None


class MeasuresParams(Params):
    measures: list[Measure]


class DocumentParams(Params):
    class Document(Params):
        id: str
        title: str
        type: str
        content_type: str

    document: Document


class AgendaParams(Params):
    class Entry(Params):
        id: str
        start: str
        end: str
        status: str = "booked"
        description: str = ""

    appointments: list[Entry]


class ReadParams(Params):
    code: str | None = None


class MesReport(ActionReport):
    """What the app reports: its outcome (MES actions report nothing more)."""
