"""The PSC actions' parameters and report, as the driver contract describes them (declared here independently
of the test kit, as any candidate would from the published OpenAPI document)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from esante.harness.driver import ActionReport
from esante.harness.reference.parts import Params, ProfessionalParams, StructureParams


class LoginParams(Params):
    professional: ProfessionalParams | None = None  # for the browser's login page; the software needs nothing


class CibaLoginParams(Params):
    professional: ProfessionalParams
    channel: Literal["CARD", "MOBILE"] = "MOBILE"


class CallApiParams(Params):
    structure: StructureParams


class SignedInProfessional(BaseModel):
    """Who the application considers signed in: the identifier its account is keyed on, and the names shown."""

    user_id: str
    family_name: str | None = None
    given_name: str | None = None


class PscReport(ActionReport):
    professional: SignedInProfessional | None = None
