"""What every protocol of the reference candidate plugs into: a :class:`Part` per national service.

The reference candidate is one application speaking several services (INSi, PSC, DMP...). Each service is a
:class:`Part`: it names the driver actions it answers, is (re)pointed at its simulator on ``/reset``, does the
user's actions, and handles the browser arriving at its own pages (``/callback``, by path prefix). A new
service adds a package with its part and registers it in the ``esante.reference`` entry-point group.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from esante.harness.driver import ActionReport
from esante.harness.reference.defects import Defects
from esante.simulators.core.pki import TestCA

#: The fictitious structure running the reference candidate (ContexteBAM/ContexteLPS Emetteur, VIHF structure).
STRUCTURE_FINESS = "750000001"
STRUCTURE_NAME = "ESANTE REFERENCE CANDIDATE (FICTIVE)"
LOOPBACK = "http://127.0.0.1"

P = TypeVar("P", bound=BaseModel)


class NotConfigured(RuntimeError):
    """An action was asked before ``/reset`` told the candidate where the service is."""


@dataclass(frozen=True, slots=True)
class ReferenceContext:
    """What every part shares: the run's test PKI, the defects switched on, the software's identity."""

    pki_dir: Path
    defects: Defects
    idam: str
    name: str
    version: str

    def ca_pem_for(self, base_url: str | None) -> bytes | None:
        """The test CA to trust for an HTTPS simulator (None for plain HTTP)."""
        return TestCA.load_or_create(self.pki_dir).ca_pem if base_url and base_url.startswith("https:") else None

    def certificate(self, common_name: str) -> ClientCertificate:
        return client_certificate(self.pki_dir, common_name)


class Part:
    """One national service spoken by the reference candidate. Calls are serialised by the app's lock."""

    #: The driver actions this part answers (``insi.lookup_traits``...).
    actions: ClassVar[tuple[str, ...]] = ()
    #: Path prefix of the application's pages the browser can arrive at for this part (``/psc/``), if any.
    callback_prefix: ClassVar[str | None] = None

    def __init__(self, context: ReferenceContext) -> None:
        self.context = context
        self.defects = context.defects

    def reset(self, endpoints: dict[str, str]) -> None:
        """Forget local state and (re)point at ``endpoints`` (simulator name → base URL)."""

    def act(self, action: str, params: dict[str, Any], own_url: str) -> ActionReport:
        raise NotImplementedError

    def callback(self, url: str) -> ActionReport:
        raise NotConfigured(f"{type(self).__name__} has no pages")

    def close(self) -> None:
        """Close connections (the app has no lifespan: ServerHandle runs without one)."""


class Params(BaseModel):
    """Base of action parameter models: unknown fields are the harness's mistake."""

    model_config = ConfigDict(extra="forbid")


class NoParams(Params):
    pass


# -- people and structures, in the driver contract's one shape (whatever the service) ---------------------------
class InsParams(Params):
    nir: str
    key: str
    oid: str

    @property
    def value(self) -> str:
        """The 15-character INS: matricule and key."""
        return self.nir + self.key


class PatientParams(Params):
    id: str
    identity_status: Literal["QUAL", "VALI", "RECUP", "PROV"] = "QUAL"
    ins: InsParams | None = None
    birth_name: str
    used_name: str | None = None
    first_names: list[str] = Field(min_length=1)
    sex: Literal["M", "F"]
    birth_date: str
    birth_place: str | None = None


class StructureParams(Params):
    id: str | None = None
    finess: str = Field(pattern=r"^\d{9}$")
    name: str = Field(min_length=1)
    sector: str | None = None


class ProfessionalParams(Params):
    id: str
    national_id: str = Field(min_length=1)
    rpps: str | None = None
    family_name: str
    given_name: str
    profession_code: str | None = None
    profession_label: str | None = None
    specialty_code: str | None = None
    structure: StructureParams | None = None


def validated(model: type[P], raw: dict[str, Any]) -> P:
    """Parse action params; a bad request is the harness's mistake, reported as 422 with pydantic's reasons."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise HTTPException(422, errors) from None


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    cert_path: Path
    key_path: Path
    ca_pem: bytes


_issued: dict[tuple[Path, str, bytes], ClientCertificate] = {}
_issued_lock = threading.Lock()


def client_certificate(pki_dir: Path, common_name: str) -> ClientCertificate:
    """Issue the candidate's client certificate from the test CA once per process, and keep it on disk.

    Keyed by the CA itself as well as its folder, so a CA re-created in the same folder gets a new certificate.
    """
    ca = TestCA.load_or_create(pki_dir)
    key = (pki_dir.resolve(), common_name, ca.ca_pem)
    with _issued_lock:
        if key not in _issued:
            issued = ca.issue_client(common_name, organisation=STRUCTURE_NAME, ou=STRUCTURE_FINESS)
            stem = "insi-auto" if common_name == "INSI-AUTO" else f"client-{common_name.lower()}"
            cert_path, key_path = issued.write(pki_dir / "reference", stem)
            _issued[key] = ClientCertificate(cert_path, key_path, ca.ca_pem)
        return _issued[key]
