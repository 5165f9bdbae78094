"""Typed, immutable models of the shared fictitious data set.

Every simulator (INSi, DMP, PSC, MSSanté...) answers from the same people, professionals, structures and
software authorisations, so that a scenario can chain services. The models are frozen and refuse unknown
fields: a typo in a YAML file must fail loudly at load time, not silently change a test's outcome.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from esante.simulators.dataset.identifiers import is_valid_finess, is_valid_nir, is_valid_rpps

__all__ = [
    "Dataset",
    "InsRecord",
    "LocalTraits",
    "Lps",
    "Patient",
    "Professional",
    "Structure",
    "VitaleCard",
]

# sex(1: 1-8, 7/8 being provisional NIA-style numbers) year(2) month(2) department(2 or 2A/2B) commune(3)
# order(3) = 13 chars.
NIR_PATTERN = r"^[1-8]\d{4}(?:\d{2}|2[AB])\d{6}$"
KEY_PATTERN = r"^\d{2}$"
# INSEE COG code: 5 digits, Corsica 2A/2B + 3 digits, born abroad 99 + country.
COG_PATTERN = r"^(?:\d{5}|2[AB]\d{3})$"

Nir = Annotated[str, Field(pattern=NIR_PATTERN)]
NirKey = Annotated[str, Field(pattern=KEY_PATTERN)]
NonEmpty = Annotated[str, Field(min_length=1)]


def _check_civil_date(value: str) -> str:
    """Accept YYYY-MM-DD where an unknown day or month is 00 ("lunar" date); refuse impossible dates.

    Kept a string on purpose: a lunar date is not a calendar date, and converting it would lose it.
    """
    if len(value) != 10 or value[4] != "-" or value[7] != "-" or not value.replace("-", "").isdigit():
        raise ValueError(f"date {value!r} must look like YYYY-MM-DD (00 for an unknown day or month)")
    year, month, day = int(value[:4]), int(value[5:7]), int(value[8:])
    if month == 0 or day == 0:
        if month > 12 or day > 31:
            raise ValueError(f"date {value!r} has an impossible day or month")
        return value
    try:
        dt.date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"date {value!r} is not a calendar date: {exc}") from exc
    return value


class _Frozen(BaseModel):
    """Base: immutable, strict about field names."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class InsRecord(_Frozen):
    """One INS (Identifiant National de Santé): a NIR, its key and the OID of the numbering system."""

    nir: Nir
    key: NirKey
    oid: NonEmpty
    start: dt.date | None = None
    end: dt.date | None = None


class VitaleCard(_Frozen):
    """The carte Vitale a patient presents: the insured holder's NIR and the patient's birth rank on it."""

    holder_nir: Nir
    holder_key: NirKey
    rank: int = Field(default=1, ge=1)


class LocalTraits(_Frozen):
    """Traits as a hospital typed them locally, when they differ from civil status (scenario input)."""

    birth_name: str | None = None
    used_name: str | None = None
    first_names: list[NonEmpty] | None = None
    sex: Literal["M", "F"] | None = None
    birth_date: str | None = None
    birth_place: Annotated[str, Field(pattern=COG_PATTERN)] | None = None

    @field_validator("birth_date")
    @classmethod
    def _birth_date_shape(cls, value: str | None) -> str | None:
        return None if value is None else _check_civil_date(value)


class Patient(_Frozen):
    """A fictitious person, with civil-status traits, INS (active and history) and carte Vitale."""

    id: NonEmpty
    birth_name: NonEmpty
    used_name: str | None = None
    first_names: list[NonEmpty] = Field(min_length=1)
    sex: Literal["M", "F"]
    birth_date: str
    birth_place: Annotated[str, Field(pattern=COG_PATTERN)]
    ins: InsRecord
    ins_history: list[InsRecord] = Field(default_factory=list)
    deceased: bool = False
    death_date: str | None = None
    vitale: VitaleCard | None = None
    local_traits: LocalTraits | None = None
    notes: str = ""

    @field_validator("birth_date", "death_date")
    @classmethod
    def _civil_date_shape(cls, value: str | None) -> str | None:
        return None if value is None else _check_civil_date(value)

    @model_validator(mode="after")
    def _death_is_consistent(self) -> Patient:
        if self.death_date is not None and not self.deceased:
            raise ValueError(f"patient {self.id}: death_date set but deceased is false")
        return self

    @property
    def first_names_list(self) -> str:
        """The civil-status first names as one space-separated string (INSi ``ListePrenom``)."""
        return " ".join(self.first_names)


class Professional(_Frozen):
    """A fictitious health professional, identified by an RPPS number."""

    id: NonEmpty
    rpps: Annotated[str, Field(pattern=r"^\d{11}$")]
    family_name: NonEmpty
    given_name: NonEmpty
    profession_code: NonEmpty
    profession_label: NonEmpty
    specialty_code: str | None = None
    structure_ids: list[str] = Field(default_factory=list)
    email: str | None = None
    mssante: str | None = None

    @property
    def national_id(self) -> str:
        """The national professional identifier (idNat_PS): "8" followed by the RPPS for an RPPS holder.

        This is PSC's ``SubjectNameID``, the identifier relying parties must key a professional on.
        """
        return f"8{self.rpps}"


class Structure(_Frozen):
    """A fictitious health structure (hospital, practice, pharmacy, lab), identified by FINESS."""

    id: NonEmpty
    finess: Annotated[str, Field(pattern=r"^\d{9}$")]
    finess_legal: Annotated[str, Field(pattern=r"^\d{9}$")] | None = None
    siret: Annotated[str, Field(pattern=r"^\d{14}$")] | None = None
    name: NonEmpty
    sector_code: Annotated[str, Field(pattern=r"^SA\d{2}$")]
    city: NonEmpty


class Lps(_Frozen):
    """A software product (LPS) and its CNDA authorisation number (IDAM); simulators refuse unknown ones."""

    idam: NonEmpty
    name: NonEmpty
    version: NonEmpty
    authorised: bool


ClientAuthMethod = Literal["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt",
                           "tls_client_auth"]


class OidcClient(_Frozen):
    """A relying party registered with the Pro Santé Connect federator (what an editor declares to the ANS).

    Redirect and post-logout URIs on a loopback host match on any port (RFC 8252 §7.3), so that a
    candidate serving on a random local port needs no new registration.
    """

    client_id: NonEmpty
    name: NonEmpty
    secret: str | None = Field(default=None, min_length=16)
    auth_methods: list[ClientAuthMethod] = Field(min_length=1)
    redirect_uris: list[NonEmpty] = Field(min_length=1)
    post_logout_redirect_uris: list[NonEmpty] = Field(default_factory=list)
    backchannel_logout_uri: str | None = None
    #: PEM public key for private_key_jwt client assertions.
    public_key_pem: str | None = None
    #: Certificate subject CN accepted for tls_client_auth and token exchange (RFC 8705 tls_client_auth).
    tls_client_auth_cn: str | None = None
    #: Structure on whose behalf a token-exchange (API Pro Santé connectées) client acts.
    structure_id: str | None = None
    grant_types: list[str] = Field(default_factory=lambda: ["authorization_code", "refresh_token"])
    #: A resource server of the realm (the MSSanté messaging servers): it may introspect any user's token.
    resource_server: bool = False
    #: CIBA token delivery (CIBA Core §4): ``poll``, or ``ping`` to the client's notification endpoint.
    backchannel_token_delivery_mode: Literal["poll", "ping"] = "poll"
    backchannel_client_notification_endpoint: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> OidcClient:
        secret_methods = {"client_secret_basic", "client_secret_post", "client_secret_jwt"} & set(self.auth_methods)
        if secret_methods and not self.secret:
            raise ValueError(f"client {self.client_id}: {', '.join(sorted(secret_methods))} needs a secret")
        if "private_key_jwt" in self.auth_methods and not self.public_key_pem:
            raise ValueError(f"client {self.client_id}: private_key_jwt needs public_key_pem")
        if "tls_client_auth" in self.auth_methods and not self.tls_client_auth_cn:
            raise ValueError(f"client {self.client_id}: tls_client_auth needs tls_client_auth_cn")
        if self.backchannel_token_delivery_mode == "ping" and not self.backchannel_client_notification_endpoint:
            raise ValueError(f"client {self.client_id}: CIBA ping needs backchannel_client_notification_endpoint")
        return self


class DmpRecord(_Frozen):
    """A patient's DMP (shared medical record) as the simulated DMP holds it when a test case starts.

    A patient with no entry has no DMP. Authorisations are the professionals (data set ids) the patient
    allowed or blocked; the treating doctor ("médecin traitant DMP") is always allowed.
    """

    patient_id: NonEmpty
    status: Literal["open", "closed"] = "open"
    internal_id: Annotated[str, Field(pattern=r"^\d{22}$")]  # the DMP's own number (OID 1.2.250.1.213.1.4.2)
    treating_doctor: str | None = None
    authorised: list[str] = Field(default_factory=list)
    blocked: list[str] = Field(default_factory=list)
    opposition_bris_de_glace: bool = False
    opposition_urgence: bool = False
    web_account: bool = False
class MesPartner(_Frozen):
    """A partner app registered with Mon espace santé (referenced in its catalogue): it pairs with a citizen's
    space through OAuth 2.0 + PKCE and exchanges data over REST-FHIR within its scopes. A public client
    (a mobile app) has no secret; a confidential one authenticates with HTTP Basic (client_secret_basic)."""

    client_id: NonEmpty
    name: NonEmpty
    editor: NonEmpty
    categories: list[NonEmpty] = Field(min_length=1)
    data_exchange: bool = True
    status: Literal["referenced", "suspended", "in_referencing"] = "referenced"
    secret: str | None = Field(default=None, min_length=16)
    redirect_uris: list[NonEmpty] = Field(min_length=1)
    scopes: list[NonEmpty] = Field(default_factory=list)


class Mailbox(_Frozen):
    """An MSSanté mailbox besides the professionals' personal ones (``Professional.mssante``): an organisational
    mailbox (ORG, CAB) a professional signs in to with Pro Santé Connect, or an application mailbox (APP) a
    software opens with its certificate (subject CN ``certificate_cn``)."""

    address: Annotated[str, Field(pattern=r"^[^@\s]+@[A-Za-z0-9.-]+$")]
    type: Literal["ORG", "APP", "CAB"]
    description: NonEmpty
    structure_id: NonEmpty
    #: Professionals (ids) who may open an ORG or CAB mailbox.
    members: list[str] = Field(default_factory=list)
    certificate_cn: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Mailbox:
        if self.type == "APP" and not self.certificate_cn:
            raise ValueError(f"mailbox {self.address}: an application mailbox needs certificate_cn")
        return self


def _duplicates(values: Iterable[str]) -> list[str]:
    """Values that occur more than once, sorted, for an error message."""
    return sorted(value for value, count in Counter(values).items() if count > 1)


def _check_unique(kind: str, values: Iterable[str]) -> None:
    """Raise naming the repeated ids: lookups by id would otherwise pick one silently."""
    repeated = _duplicates(values)
    if repeated:
        raise ValueError(f"duplicate {kind}: {', '.join(repeated)}")


def _check_patient_keys(patient: Patient) -> None:
    """Every INS (active and history) and the Vitale holder NIR must carry their right key."""
    records = [("ins", patient.ins)]
    records += [(f"ins_history[{index}]", old) for index, old in enumerate(patient.ins_history)]
    for label, record in records:
        if not is_valid_nir(record.nir, record.key):
            raise ValueError(f"patient {patient.id}: {label} key {record.key} is wrong for NIR {record.nir}")
    card = patient.vitale
    if card is not None and not is_valid_nir(card.holder_nir, card.holder_key):
        problem = f"vitale holder key {card.holder_key} is wrong for {card.holder_nir}"
        raise ValueError(f"patient {patient.id}: {problem}")


class Dataset(_Frozen):
    """The whole data set, validated as a whole: unique ids, valid keys, cross-references that resolve."""

    name: NonEmpty
    version: NonEmpty
    patients: list[Patient] = Field(default_factory=list)
    professionals: list[Professional] = Field(default_factory=list)
    structures: list[Structure] = Field(default_factory=list)
    lps: list[Lps] = Field(default_factory=list)
    oidc_clients: list[OidcClient] = Field(default_factory=list)
    dmp_records: list[DmpRecord] = Field(default_factory=list)
    mes_partners: list[MesPartner] = Field(default_factory=list)
    mailboxes: list[Mailbox] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_integrity(self) -> Dataset:
        self._check_ids()
        for patient in self.patients:
            _check_patient_keys(patient)
        self._check_professionals()
        self._check_dmp_records()
        for structure in self.structures:
            for number in filter(None, (structure.finess, structure.finess_legal)):
                if not is_valid_finess(number):
                    raise ValueError(f"structure {structure.id}: FINESS {number} fails its Luhn key")
        return self

    def _check_ids(self) -> None:
        _check_unique("patient id", (p.id for p in self.patients))
        _check_unique("professional id", (p.id for p in self.professionals))
        _check_unique("structure id", (s.id for s in self.structures))
        _check_unique("LPS idam", (lps.idam for lps in self.lps))
        _check_unique("active INS NIR", (p.ins.nir for p in self.patients))
        _check_unique("OIDC client id", (c.client_id for c in self.oidc_clients))
        _check_unique("mailbox", (m.address.lower() for m in self.mailboxes))

    def _check_professionals(self) -> None:
        known = {s.id for s in self.structures}
        for professional in self.professionals:
            who = f"professional {professional.id}"
            if not is_valid_rpps(professional.rpps):
                raise ValueError(f"{who}: RPPS {professional.rpps} fails its Luhn key")
            missing = [sid for sid in professional.structure_ids if sid not in known]
            if missing:
                raise ValueError(f"{who}: unknown structure id(s) {', '.join(missing)}")

    def _check_dmp_records(self) -> None:
        _check_unique("DMP record patient id", (r.patient_id for r in self.dmp_records))
        patients = {p.id for p in self.patients}
        professionals = {p.id for p in self.professionals}
        for record in self.dmp_records:
            if record.patient_id not in patients:
                raise ValueError(f"DMP record: unknown patient id {record.patient_id}")
            people = [record.treating_doctor, *record.authorised, *record.blocked]
            missing = [pid for pid in people if pid is not None and pid not in professionals]
            if missing:
                raise ValueError(f"DMP record of {record.patient_id}: unknown professional id(s) {', '.join(missing)}")

    def patient(self, patient_id: str) -> Patient:
        """The patient with this id; KeyError names the id when there is none."""
        for patient in self.patients:
            if patient.id == patient_id:
                return patient
        raise KeyError(f"no patient with id {patient_id!r} in data set {self.name!r}")

    def professional(self, professional_id: str) -> Professional:
        """The professional with this id; KeyError names the id when there is none."""
        for professional in self.professionals:
            if professional.id == professional_id:
                return professional
        raise KeyError(f"no professional with id {professional_id!r} in data set {self.name!r}")

    def professional_by_national_id(self, national_id: str) -> Professional:
        """The professional whose national identifier (``8`` + RPPS) this is; KeyError when none."""
        for professional in self.professionals:
            if professional.national_id == national_id:
                return professional
        raise KeyError(f"no professional with national id {national_id!r} in data set {self.name!r}")

    def oidc_client(self, client_id: str) -> OidcClient:
        """The registered relying party with this client_id; KeyError when none."""
        for client in self.oidc_clients:
            if client.client_id == client_id:
                return client
        raise KeyError(f"no OIDC client {client_id!r} registered in data set {self.name!r}")

    def structure(self, structure_id: str) -> Structure:
        """The structure with this id; KeyError names the id when there is none."""
        for structure in self.structures:
            if structure.id == structure_id:
                return structure
        raise KeyError(f"no structure with id {structure_id!r} in data set {self.name!r}")

    def lps_by_idam(self, idam: str) -> Lps:
        """The software with this IDAM, authorised or not (callers check ``authorised``); KeyError if none."""
        for lps in self.lps:
            if lps.idam == idam:
                return lps
        raise KeyError(f"no LPS with IDAM {idam!r} in data set {self.name!r}")

    def mes_partner(self, client_id: str) -> MesPartner:
        """The partner app registered with Mon espace santé under this client_id; KeyError when none."""
        for partner in self.mes_partners:
            if partner.client_id == client_id:
                return partner
        raise KeyError(f"no Mon espace santé partner {client_id!r} in data set {self.name!r}")
