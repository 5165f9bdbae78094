"""What PSC actions send the candidate: the professional who signs in (the one shape of every kit), how a thick
client signs in (CIBA), the structure an "API Pro Santé connectée" is called for. Sign-in actions report the
professional the software considers signed in (the suite's :class:`SignInReport`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from esante.harness.suite import ProfessionalPayload, StructurePayload

Channel = Literal["CARD", "MOBILE"]  # PSC's CIBA ``channel``: the CPS card or the e-CPS app


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Model):
    professional: ProfessionalPayload = Field(description="who signs in on PSC's page (the software needs nothing)")


class NoParams(Model):
    pass


class CibaLogin(Model):
    professional: ProfessionalPayload = Field(description="who the thick client names in its CIBA request")
    channel: Channel = "MOBILE"


class CallApi(Model):
    structure: StructurePayload = Field(description="the structure on whose behalf the API is called")
