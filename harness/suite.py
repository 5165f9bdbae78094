"""Everything a test kit author needs, in one module (as pytest's ``hookspec.py`` is its whole plugin surface).

A test kit (``scenarios/<service>/``) reads like its specification: a campaign, small named checks, the driver
actions, the reference candidate's defects. It imports the harness through this module only, its simulator
through ``protocol`` (constants from the specification) and ``notes`` (what the simulator observed, typed),
and the protocol kits it reads messages with.

**Checks** judge one rule each, on what the simulators journaled for the test case and what the candidate
reported::

    @check("insi.security_context", requirements=["INSI-SEC-01"],
           title="Every call carries ContexteBAM, ContexteLPS and wsse:Security")
    def security_context(ctx: CheckContext) -> Outcome:
        calls = ctx.of("insi") or stop(fail("no call reached the INSi teleservice"))
        ...
        return fail(f"{where(call)}: no ContexteLPS header", call)

A check returns :func:`ok`, :func:`fail` (saying what was wrong and where, with the exchanges as evidence) or
:func:`inconclusive`; a helper that already knows the outcome raises it with :func:`stop`. The case's
requirement ids follow from its checks' ``requirements``.

**Actions** turn a campaign step into the typed parameters of a driver call, and declare the report model the
candidate answers with::

    @action("psc.login", title="Sign in with Pro Santé Connect", params=Login, report=SignInReport,
            instruction="Sign in as {professional[national_id]}...", browser_form=login_page)
    def login(step: Step, dataset: Dataset) -> Login:
        return Login(professional=professional_payload(dataset, step))

Patients, professionals and structures travel in one shape whatever the service (:class:`PatientPayload`,
:class:`ProfessionalPayload`, :class:`StructurePayload`). Retries are judged one way (:func:`retry_storm`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field

from esante.harness.actions import ActionSpec, Ask, action
from esante.harness.campaign import Step
from esante.harness.checks import (
    CheckContext,
    Outcome,
    StepObservation,
    check,
    fail,
    inconclusive,
    ok,
    stop,
)
from esante.harness.driver import ActionOutcome, ActionReport
from esante.reports.model import Verdict
from esante.simulators.core.journal import Exchange
from esante.simulators.dataset import Dataset

__all__ = [
    "MAX_ATTEMPTS", "ActionOutcome", "ActionReport", "ActionSpec", "Ask", "CheckContext", "Dataset", "Exchange",
    "InsPayload", "Outcome", "PatientPayload", "ProfessionalPayload", "ProfessionalSession", "SignInReport",
    "Step", "StepObservation", "StructurePayload", "Verdict", "action", "ask_professional", "check", "describe",
    "fail", "form_of", "inconclusive", "last_report", "moment", "ok",
    "patient_payload", "professional_payload", "required", "retry_storm", "stop", "structure_payload",
    "transport_failed", "where",
]


# -- reading what was observed --------------------------------------------------------------------------------
def where(exchange: Exchange, label: str | None = None) -> str:
    """Where an exchange is, for a failure message: ``TD2.1 POST /path at <time>``."""
    prefix = f"{label} " if label else ""
    return f"{prefix}{exchange.method} {exchange.path} at {exchange.received_at}"


def moment(exchange: Exchange) -> datetime:
    """When the simulator received the exchange."""
    return datetime.fromisoformat(exchange.received_at.replace("Z", "+00:00"))


def form_of(exchange: Exchange) -> dict[str, str]:
    """The request's parameters: the query of a GET, the urlencoded body of a POST (the first value wins)."""
    raw = exchange.query if exchange.method == "GET" else exchange.request_body.decode("utf-8", "replace")
    form: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, max_num_fields=200):
        form.setdefault(key, value)
    return form


def required(found: Sequence[Exchange], what: str, where_to: str) -> list[Exchange]:
    """``found``, or stop the check: nothing to judge (``no <what> reached <where_to> in this test case``)."""
    return list(found) or stop(fail(f"no {what} reached {where_to} in this test case"))


def describe(report: ActionReport) -> str:
    """A candidate's report in one line: ``error (DMP_E01): the DMP is closed``."""
    text = report.outcome.value + (f" ({report.error_code})" if report.error_code else "")
    return text + (f": {report.message}" if report.message else "")


def last_report(ctx: CheckContext, action_prefix: str, what: str | None = None
                ) -> tuple[StepObservation, ActionReport]:
    """The last step of these actions with its report, or stop the check: the candidate reported nothing."""
    found = ctx.reports(action_prefix)
    return found[-1] if found else stop(fail(f"the candidate reported no result for {what or action_prefix}"))


# -- retries, judged one way ----------------------------------------------------------------------------------
#: One call and two retries: after a failure a software retries at most twice (every service's rule).
MAX_ATTEMPTS = 3


def transport_failed(exchange: Exchange) -> bool:
    """The call failed as any client sees it: no answer (dropped connection, crash) or a server error (5xx)."""
    return exchange.outcome != "answered" or exchange.status is None or exchange.status >= 500


def retry_storm(exchanges: Sequence[Exchange], failed: Callable[[Exchange], bool] = transport_failed,
                max_attempts: int = MAX_ATTEMPTS) -> list[Exchange] | None:
    """The longest run of consecutive failed calls to one path, when it is longer than ``max_attempts``: how
    many times a software tried the same call while the service failed. None when the discipline held.

    ``failed`` says what a failure is; a service adds its own transient errors to :func:`transport_failed`
    (``lambda e: transport_failed(e) or error_of(e) == "XDSRegistryNotAvailable"``)."""
    longest: list[Exchange] = []
    run: list[Exchange] = []
    for exchange in exchanges:
        if not failed(exchange):
            run = []
            continue
        run = [*run, exchange] if run and run[-1].path == exchange.path else [exchange]
        longest = run if len(run) > len(longest) else longest
    return longest if len(longest) > max_attempts else None


# -- people and structures, in one shape ----------------------------------------------------------------------
class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InsPayload(Payload):
    """An INS: matricule (NIR or NIA), key, and the OID of its domain."""

    nir: str = Field(pattern=r"^\d{5}(?:\d{2}|2A|2B)\d{6}$|^\d{6}[0-9AB]\d{6}$")
    key: str = Field(pattern=r"^\d{2}$")
    oid: str


IdentityStatus = Literal["QUAL", "VALI", "RECUP", "PROV"]


class PatientPayload(Payload):
    """A test patient as every action sends one: the reference traits and, unless the identity is
    provisional, the INS."""

    id: str = Field(description="the data set's id (P001)")
    identity_status: IdentityStatus = Field(default="QUAL", description="the identity's status in the software")
    ins: InsPayload | None = Field(default=None, description="absent for a provisional identity")
    birth_name: str
    used_name: str | None = None
    first_names: list[str]
    sex: Literal["M", "F"]
    birth_date: str
    birth_place: str | None = None


class StructurePayload(Payload):
    id: str = Field(description="the data set's id (S001)")
    finess: str
    name: str
    sector: str | None = Field(default=None, description="the sector of activity code")


class ProfessionalPayload(Payload):
    """A test professional as every action sends one."""

    id: str = Field(description="the data set's id (PS001)")
    national_id: str = Field(description="the national identifier (8 + RPPS)")
    rpps: str | None = None
    family_name: str
    given_name: str
    profession_code: str | None = None
    profession_label: str | None = None
    specialty_code: str | None = None
    structure: StructurePayload | None = Field(default=None, description="where they practise for this step")


def patient_payload(dataset: Dataset, step: Step, *, identity_status: IdentityStatus | None = None) -> PatientPayload:
    """The step's patient (``patient: P001``); ``with: {identity_status: PROV}`` sends no INS."""
    if step.patient is None:
        raise ValueError(f"step {step.action} needs a 'patient'")
    p = dataset.patient(step.patient)
    status = identity_status or step.with_.get("identity_status", "QUAL")
    if status not in ("QUAL", "VALI", "RECUP", "PROV"):
        raise ValueError(f"identity_status {status!r} is not QUAL, VALI, RECUP or PROV")
    ins = None if status == "PROV" else InsPayload(nir=p.ins.nir, key=p.ins.key, oid=p.ins.oid)
    return PatientPayload(id=p.id, identity_status=status, ins=ins, birth_name=p.birth_name, used_name=p.used_name,
                          first_names=list(p.first_names), sex=p.sex, birth_date=p.birth_date,
                          birth_place=p.birth_place)


def structure_payload(dataset: Dataset, structure_id: str) -> StructurePayload:
    s = dataset.structure(structure_id)
    return StructurePayload(id=s.id, finess=s.finess, name=s.name, sector=s.sector_code)


def professional_payload(dataset: Dataset, step: Step, *, with_structure: bool = True) -> ProfessionalPayload:
    """The step's professional (``professional: PS001``), practising at ``with: {structure}`` or their first."""
    if step.professional is None:
        raise ValueError(f"step {step.action} needs a 'professional'")
    p = dataset.professional(step.professional)
    structure = None
    if with_structure:
        structure_id = step.with_.get("structure") or (p.structure_ids[0] if p.structure_ids else "S001")
        structure = structure_payload(dataset, structure_id)
    return ProfessionalPayload(id=p.id, national_id=p.national_id, rpps=p.rpps, family_name=p.family_name,
                               given_name=p.given_name, profession_code=p.profession_code,
                               profession_label=p.profession_label, specialty_code=p.specialty_code,
                               structure=structure)


# -- a professional signed in, whatever the service -----------------------------------------------------------
class ProfessionalSession(Payload):
    """Who the software considers signed in after an authentication."""

    user_id: str = Field(description="the identifier the software keys the professional's account on")
    family_name: str | None = None
    given_name: str | None = None


class SignInReport(ActionReport):
    """The report of an action that signs a professional in (or out)."""

    professional: ProfessionalSession | None = None


def ask_professional(ask: Ask, params: dict[str, object], outcome: str) -> dict[str, object]:
    """Operator mode: what the person reads on the software's account page once signed in."""
    if outcome != "signed_in":
        return {}
    known = params.get("professional") if isinstance(params.get("professional"), dict) else {}
    assert isinstance(known, dict)
    return {"professional": {
        "user_id": ask("Identifier the software keeps for the professional (account page)", "",
                       "professional.user_id"),
        "family_name": ask("Family name shown", str(known.get("family_name", "")), "professional.family_name") or None,
        "given_name": ask("Given name shown", str(known.get("given_name", "")), "professional.given_name") or None}}
