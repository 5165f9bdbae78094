"""The reference candidate behind the driver contract (:mod:`harness.driver`): a FastAPI app.

``create_reference_app(pki_dir=..., defects=[...])`` is what ``esante run --candidate reference`` serves. On
``/reset`` it points its INSi client at ``endpoints["insi"]`` and, for an HTTPS endpoint, authenticates with
an ``INSI-AUTO`` organisation certificate that it issues itself, once, from the run's test CA.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from harness.driver import (
    API_PREFIX,
    ActionReport,
    ActionRequest,
    CallbackRequest,
    CandidateInfo,
    PatientIdentity,
    ResetRequest,
    Traits,
)
from harness.reference.candidate import NotConfigured, ReferenceCandidate, VitaleCard
from harness.reference.defects import Defects
from harness.reference.insi_client import InsiClient
from harness.reference.psc import PscCandidate, guarded
from simulators.core.pki import TestCA
from simulators.insi.protocol import SERVICE_PATH

#: The fictitious structure running the reference candidate (ContexteBAM/ContexteLPS Emetteur).
STRUCTURE_FINESS = "750000001"
STRUCTURE_NAME = "ESANTE REFERENCE CANDIDATE (FICTIVE)"
INSI_CERT_CN = "INSI-AUTO"
VENDOR = "esante-conformance"
INSI_ACTIONS = ("insi.lookup_traits", "insi.lookup_vitale", "insi.verify")
PSC_ACTIONS = ("psc.login", "psc.show_profile", "psc.logout", "psc.ciba_login", "psc.call_api")
ACTIONS = INSI_ACTIONS + PSC_ACTIONS
LOOPBACK = "http://127.0.0.1"

P = TypeVar("P", bound=BaseModel)


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LookupTraitsParams(_Params):
    traits: Traits
    id_document_checked: bool = False


class LookupVitaleParams(_Params):
    card: VitaleCard
    id_document_checked: bool = False


class VerifyParams(_Params):
    identity: PatientIdentity


class ProfessionalParams(_Params):
    """The professional a PSC step is about, as the harness's action builders send it."""

    id: str
    national_id: str = Field(min_length=1)
    family_name: str
    given_name: str


class LoginParams(_Params):
    professional: ProfessionalParams | None = None  # for the browser's login page; the software needs nothing


class NoParams(_Params):
    pass


class CibaLoginParams(_Params):
    professional: ProfessionalParams
    channel: Literal["CARD", "MOBILE"] = "MOBILE"


class StructureParams(_Params):
    id: str | None = None  # the data set's id (S001), sent by the action builder; not needed here
    finess: str = Field(pattern=r"^\d{9}$")
    name: str = Field(min_length=1)


class CallApiParams(_Params):
    structure: StructureParams


@dataclass(frozen=True, slots=True)
class _ClientCertificate:
    cert_path: Path
    key_path: Path
    ca_pem: bytes


class ReferenceRuntime:
    """Everything one reference candidate holds: its defects, identities, INSi client and certificate."""

    def __init__(self, pki_dir: Path, defects: Defects, idam: str, name: str, version: str) -> None:
        self.pki_dir = pki_dir
        self.defects = defects
        self.idam = idam
        self.name = name
        self.version = version
        self.candidate = ReferenceCandidate(defects)
        self.psc: PscCandidate | None = None
        self.lock = threading.Lock()  # one action at a time: the identities are plain in-memory state

    def info(self) -> CandidateInfo:
        version = f"{self.version}+defects:{self.defects.label()}" if self.defects else self.version
        return CandidateInfo(name=self.name, version=version, vendor=VENDOR, actions=list(ACTIONS))

    def reset(self, endpoints: dict[str, str]) -> None:
        """Forget identities and sessions; (re)point the INSi client, keeping its connection when the URL is
        unchanged; start a fresh PSC web session (discovery and keys are read again, as after a restart)."""
        with self.lock:
            self.candidate.reset()
            self._reset_psc(endpoints.get("psc"))
            base = endpoints.get("insi")
            endpoint = f"{base.rstrip('/')}{SERVICE_PATH}" if base else None
            current = self.candidate.client
            if current is not None and current.endpoint == endpoint:
                return
            if current is not None:
                current.close()
            self.candidate.client = self._client(endpoint) if endpoint else None

    def _reset_psc(self, base: str | None) -> None:
        if self.psc is not None:
            self.psc.close()
        ca_pem = TestCA.load_or_create(self.pki_dir).ca_pem if base and base.startswith("https:") else None
        self.psc = PscCandidate(base, self.pki_dir, ca_pem, self.defects) if base else None

    def _psc(self) -> PscCandidate:
        if self.psc is None:
            raise NotConfigured("no Pro Santé Connect endpoint was given on /reset")
        return self.psc

    def callback(self, url: str) -> ActionReport:
        with self.lock:
            return self._psc().callback(url)

    def _client(self, endpoint: str) -> InsiClient:
        cert = self.certificate() if endpoint.startswith("https:") else None
        return InsiClient(endpoint, ca_pem=cert.ca_pem if cert else None,
                          cert_file=cert.cert_path if cert else None, key_file=cert.key_path if cert else None,
                          idam=self.idam, software_name=self.name, software_version=self.version,
                          emitter=STRUCTURE_FINESS, defects=self.defects)

    def certificate(self) -> _ClientCertificate:
        """The organisation certificate for mutual TLS (CN INSI-AUTO; the structure's FINESS under a defect)."""
        common_name = STRUCTURE_FINESS if self.defects.on("wrong_certificate") else INSI_CERT_CN
        return client_certificate(self.pki_dir, common_name)

    def close(self) -> None:
        """Close the INSi client's connections (the app has no lifespan: ServerHandle runs without one)."""
        with self.lock:
            if self.candidate.client is not None:
                self.candidate.client.close()
                self.candidate.client = None
            if self.psc is not None:
                self.psc.close()
                self.psc = None

    def act(self, action: str, params: dict[str, Any], own_url: str = LOOPBACK) -> ActionReport:
        if action in PSC_ACTIONS:
            return self._act_psc(action, params, own_url)
        handler = self._handlers().get(action)
        if handler is None:
            raise HTTPException(404, f"unknown action {action!r}; the reference candidate supports "
                                     f"{', '.join(ACTIONS)}")
        with self.lock:
            return handler(params)

    def _act_psc(self, action: str, raw: dict[str, Any], own_url: str) -> ActionReport:
        """Validate the step's parameters (a 422 is the harness's mistake), then do what the user clicked."""
        work = _psc_work(action, raw, own_url)
        with self.lock:
            psc = self._psc()
            return guarded(lambda: work(psc))

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], ActionReport]]:
        c = self.candidate

        def traits(raw: dict[str, Any]) -> ActionReport:
            p = _validated(LookupTraitsParams, raw)
            return c.lookup_traits(p.traits, p.id_document_checked)

        def vitale(raw: dict[str, Any]) -> ActionReport:
            p = _validated(LookupVitaleParams, raw)
            return c.lookup_vitale(p.card, p.id_document_checked)

        def verify(raw: dict[str, Any]) -> ActionReport:
            p = _validated(VerifyParams, raw)
            if p.identity.ins is None:
                raise HTTPException(422, "insi.verify needs an identity that holds an INS")
            return c.verify(p.identity)

        return {"insi.lookup_traits": traits, "insi.lookup_vitale": vitale, "insi.verify": verify}


def _psc_work(action: str, raw: dict[str, Any], own_url: str) -> Callable[[PscCandidate], ActionReport]:
    """One PSC action with its validated parameters, ready to run on the web session."""
    if action == "psc.login":
        _validated(LoginParams, raw)
        return lambda psc: psc.login(own_url)
    if action == "psc.ciba_login":
        ciba = _validated(CibaLoginParams, raw)
        return lambda psc: psc.ciba_login(ciba.professional.national_id, ciba.channel)
    if action == "psc.call_api":
        structure = _validated(CallApiParams, raw).structure
        return lambda psc: psc.call_api(structure.finess, structure.name)
    _validated(NoParams, raw)
    if action == "psc.logout":
        return lambda psc: psc.logout(own_url)
    return lambda psc: psc.show_profile()


def loopback_origin(request: Request) -> str:
    """The application's own origin for its redirect URIs: PSC registers loopback URIs (``127.0.0.1``, any
    port, RFC 8252 §7.3), so the port is the one the driver was called on, whatever host name it used."""
    port = request.base_url.port
    return f"{LOOPBACK}:{port}" if port else LOOPBACK


_issued: dict[tuple[Path, str, bytes], _ClientCertificate] = {}
_issued_lock = threading.Lock()


def client_certificate(pki_dir: Path, common_name: str) -> _ClientCertificate:
    """Issue the candidate's client certificate from the test CA once per process, and keep it on disk.

    Keyed by the CA itself as well as its folder, so a CA re-created in the same folder gets a new certificate.
    """
    ca = TestCA.load_or_create(pki_dir)
    key = (pki_dir.resolve(), common_name, ca.ca_pem)
    with _issued_lock:
        if key not in _issued:
            issued = ca.issue_client(common_name, organisation=STRUCTURE_NAME, ou=STRUCTURE_FINESS)
            stem = "insi-auto" if common_name == INSI_CERT_CN else f"client-{common_name.lower()}"
            cert_path, key_path = issued.write(pki_dir / "reference", stem)
            _issued[key] = _ClientCertificate(cert_path, key_path, ca.ca_pem)
        return _issued[key]


def _validated(model: type[P], raw: dict[str, Any]) -> P:
    """Parse action params; a bad request is the harness's mistake, reported as 422 with pydantic's reasons."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise HTTPException(422, errors) from None


def create_reference_app(*, pki_dir: Path, defects: Iterable[str] = (), idam: str = "ESANTE-REF-0001",
                         name: str = "esante-reference-candidate", version: str = "1.0.0") -> FastAPI:
    """The reference candidate as a driver-contract app; ``defects`` switches on named defects (see DEFECTS)."""
    runtime = ReferenceRuntime(Path(pki_dir), Defects(defects), idam, name, version)
    app = FastAPI(title="esante reference candidate", version=version, docs_url=None, redoc_url=None)
    router = APIRouter(prefix=API_PREFIX)

    @router.get("/info", response_model=CandidateInfo)
    def info() -> CandidateInfo:
        return runtime.info()

    @router.post("/reset", status_code=204)
    def reset(body: ResetRequest) -> Response:
        runtime.reset(body.endpoints)
        return Response(status_code=204)

    @router.post("/actions/{action}", response_model=ActionReport)
    def act(action: str, body: ActionRequest, request: Request) -> ActionReport:
        try:
            return runtime.act(action, body.params, loopback_origin(request))
        except NotConfigured as exc:
            raise HTTPException(409, str(exc)) from None

    @router.post("/callback", response_model=ActionReport)
    def callback(body: CallbackRequest) -> ActionReport:
        try:
            return runtime.callback(body.url)
        except NotConfigured as exc:
            raise HTTPException(409, str(exc)) from None

    app.include_router(router)
    app.state.reference = runtime
    return app
