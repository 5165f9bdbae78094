"""The PSC actions' parameters and report, as the driver contract describes them (declared here independently
of the test kit, as any candidate would from the published OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from esante.harness.driver import ActionReport
from esante.harness.reference.parts import Params


class Structure(Params):
    id: str | None = None
    finess: str = Field(pattern=r"^\d{9}$")
    name: str = Field(min_length=1)
    sector: str | None = None


class Professional(Params):
    """The professional a step is about; the software itself only needs the national id (for CIBA)."""

    id: str
    national_id: str = Field(min_length=1)
    rpps: str | None = None
    family_name: str
    given_name: str
    profession_code: str | None = None
    profession_label: str | None = None
    specialty_code: str | None = None
    structure: Structure | None = None


class LoginParams(Params):
    professional: Professional | None = None  # for the browser's login page; the software needs nothing


class CibaLoginParams(Params):
    professional: Professional
    channel: Literal["CARD", "MOBILE"] = "MOBILE"


class CallApiParams(Params):
    structure: Structure


class SignedInProfessional(BaseModel):
    """Who the application considers signed in: the identifier its account is keyed on, and the names shown."""

    user_id: str
    family_name: str | None = None
    given_name: str | None = None


class PscReport(ActionReport):
    professional: SignedInProfessional | None = None
