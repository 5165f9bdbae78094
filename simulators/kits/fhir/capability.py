"""What a FHIR server says it does: the CapabilityStatement of ``GET [base]/metadata`` (R4 §3.1.0.11, a SHALL)
and, for a SMART-on-FHIR protected server, ``[base]/.well-known/smart-configuration`` (SMART App Launch
2.0 §"Conformance") with the same OAuth endpoints as the statement's ``oauth-uris`` extension.

Both are generated from the :class:`ResourceType` table the server routes (:mod:`.rest`), so what is
stated cannot drift from what is served."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from esante.simulators.kits.fhir.media import FHIR_JSON, FHIR_VERSION
from esante.simulators.kits.fhir.search import COMMON, SearchParam

#: Interactions on a resource type (R4 TypeRestfulInteraction) this kit implements.
TYPE_INTERACTIONS = ("read", "vread", "update", "history-instance", "create", "search-type")
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One resource type as a server serves it: its interactions, search parameters (``_id`` and
    ``_lastUpdated`` are added), conditional behaviours, profiles and default order."""

    name: str
    interactions: tuple[str, ...]
    search: tuple[SearchParam, ...] = ()
    profiles: tuple[str, ...] = ()
    conditional_create: bool = False
    conditional_update: bool = False
    default_sort: str | None = None
    documentation: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.interactions) - set(TYPE_INTERACTIONS)
        if unknown:
            raise ValueError(f"{self.name}: interactions {sorted(unknown)} are not implemented by the FHIR kit")

    @property
    def params(self) -> dict[str, SearchParam]:
        return {p.name: p for p in (*self.search, *COMMON)} if "search-type" in self.interactions else {}

    def statement(self) -> dict[str, Any]:
        """This type's ``CapabilityStatement.rest.resource``."""
        entry: dict[str, Any] = {"type": self.name}
        if self.profiles:
            entry["supportedProfile"] = list(self.profiles)
        if self.documentation:
            entry["documentation"] = self.documentation
        entry["interaction"] = [{"code": code} for code in TYPE_INTERACTIONS if code in self.interactions]
        entry |= {"versioning": "versioned", "readHistory": "history-instance" in self.interactions,
                  "updateCreate": False, "conditionalCreate": self.conditional_create,
                  "conditionalRead": "full-support" if "read" in self.interactions else "not-supported",
                  "conditionalUpdate": self.conditional_update, "conditionalDelete": "not-supported"}
        if self.params:
            entry["searchParam"] = [_param(p) for p in self.params.values()]
        return entry


def _param(param: SearchParam) -> dict[str, Any]:
    stated: dict[str, Any] = {"name": param.name, "type": param.type}
    if param.definition:
        stated["definition"] = param.definition
    if param.documentation:
        stated["documentation"] = param.documentation
    return stated


@dataclass(frozen=True, slots=True)
class SmartEndpoints:
    """The OAuth 2.0 endpoints protecting a FHIR server (absolute URLs are made from the request's base),
    and what its authorization server supports."""

    authorize: str
    token: str
    revoke: str | None = None
    scopes: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ("launch-standalone", "client-public", "client-confidential-symmetric",
                                     "context-standalone-patient", "permission-patient", "permission-offline")
    code_challenge_methods: tuple[str, ...] = ("S256",)
    auth_methods: tuple[str, ...] = ("client_secret_basic", "none")
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")

    def configuration(self, origin: str) -> dict[str, Any]:
        """``.well-known/smart-configuration``."""
        document: dict[str, Any] = {
            "authorization_endpoint": origin + self.authorize, "token_endpoint": origin + self.token,
            "token_endpoint_auth_methods_supported": list(self.auth_methods),
            "grant_types_supported": list(self.grant_types), "scopes_supported": list(self.scopes),
            "response_types_supported": ["code"], "capabilities": list(self.capabilities),
            "code_challenge_methods_supported": list(self.code_challenge_methods)}
        if self.revoke:
            document["revocation_endpoint"] = origin + self.revoke
        return document

    def security(self, origin: str) -> dict[str, Any]:
        """``CapabilityStatement.rest.security``: SMART-on-FHIR, and the ``oauth-uris`` extension."""
        uris = [("authorize", self.authorize), ("token", self.token), ("revoke", self.revoke)]
        return {"extension": [{"url": OAUTH_URIS, "extension": [{"url": name, "valueUri": origin + path}
                                                                for name, path in uris if path]}],
                "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "SMART-on-FHIR"}],
                             "text": "OAuth 2.0 authorization code with PKCE (SMART App Launch)"}]}


@dataclass(frozen=True, slots=True)
class ServerDescription:
    """What a CapabilityStatement says beyond the resource types: who serves, and how it is protected."""

    title: str
    software: str
    version: str
    date: str
    documentation: str = ""
    system_interactions: tuple[str, ...] = ()
    smart: SmartEndpoints | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def capability_statement(description: ServerDescription, types: Sequence[ResourceType], origin: str, base: str
                         ) -> dict[str, Any]:
    """The server's CapabilityStatement (an ``instance`` statement: this server, at ``origin + base``)."""
    rest: dict[str, Any] = {"mode": "server"}
    if description.documentation:
        rest["documentation"] = description.documentation
    if description.smart is not None:
        rest["security"] = description.smart.security(origin)
    rest["resource"] = [t.statement() for t in types]
    if description.system_interactions:
        rest["interaction"] = [{"code": code} for code in description.system_interactions]
    return {"resourceType": "CapabilityStatement", "status": "active", "date": description.date,
            "publisher": "esante-conformance", "kind": "instance",
            "software": {"name": description.software, "version": description.version},
            "implementation": {"description": description.title, "url": origin + base},
            "fhirVersion": FHIR_VERSION, "format": ["json", FHIR_JSON], **description.extra, "rest": [rest]}
