"""What Mon espace santé actions send the candidate: the citizen who pairs (the one patient shape of every kit),
the measures, document and appointments the app sends. MES actions report nothing beyond their outcome."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from esante.harness.suite import PatientPayload
from esante.simulators.mes.protocol import MEASURE_KINDS


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoParams(Model):
    pass


class Pair(Model):
    patient: PatientPayload = Field(description="who signs in on MES's page (the app itself needs nothing)")
    consent: Literal["accept", "refuse"] = Field(default="accept", description="the citizen's answer on MES's page")


class Measure(Model):
    """A measure as the device (or the user) gives it: ``unit`` and ``code`` as the device reports them."""

    id: str = Field(description="the app's own id of the measure")
    kind: str = Field(description=f"one of {', '.join(MEASURE_KINDS)}")
    value: float | None = None
    systolic: float | None = Field(default=None, description="blood pressure only")
    diastolic: float | None = Field(default=None, description="blood pressure only")
    unit: str
    code: str | None = Field(default=None, description="a LOINC code the device uses instead of the profile's")

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in MEASURE_KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(MEASURE_KINDS)}")
        return kind


class PushMeasures(Model):
    measures: list[Measure] = Field(min_length=1)


class Document(Model):
    id: str = Field(description="the app's own id of the document")
    title: str
    type: str = Field(description="the LOINC document type")
    content_type: str


class PushDocument(Model):
    document: Document = Field(description="the document to share (the app makes the file)")


class Appointment(Model):
    id: str = Field(description="the app's own id of the appointment")
    start: str
    end: str
    status: str = "booked"
    description: str = ""


class SyncAgenda(Model):
    appointments: list[Appointment]


class ReadMeasures(Model):
    code: str | None = Field(default=None, description="a LOINC code: only these measures")
