"""The Mon espace santé simulator: pairing (OAuth 2.0 code + PKCE with the citizen's login and consent),
REST-FHIR R4 data exchange (measures, documents, agenda), the service catalogue and the referencing window
(paths in :mod:`simulators.mes.protocol`; design choices in ``DESIGN.md``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from esante.simulators.core.journal import behaviours_of, notes_of
from esante.simulators.core.runtime import ServiceError, Simulator
from esante.simulators.dataset import Dataset
from esante.simulators.dataset.models import MesPartner, Patient
from esante.simulators.kits.oauth import (
    NO_STORE,
    OAuthError,
    basic_credentials,
    check_pkce,
    pkce_matches,
    read_form,
    secrets_equal,
    uri_registered,
)
from esante.simulators.mes import agenda, catalogue, documents, measures
from esante.simulators.mes.fhir import FhirError, fhir_response, parse_json, read_resource, search_bundle
from esante.simulators.mes.protocol import (
    ACCESS_LIFETIME,
    AUTHORIZE_PATH,
    CATALOGUE_PATH,
    CODE_LIFETIME,
    CONSENT_PATH,
    CRITERIA_PATH,
    DOSSIERS_PATH,
    FHIR_BASE,
    GRANT_CODE,
    GRANT_REFRESH,
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    PAIRING_LIFETIME,
    PAIRING_PATH,
    RETRY_AFTER,
    REVOKE_PATH,
    SCOPE_OFFLINE,
    SHORT_ACCESS_LIFETIME,
    TOKEN_PATH,
    USER_PAIRINGS_PATH,
    mes_patient_id,
)
from esante.simulators.mes.state import Code, MesState, Pairing, Token, Transaction, new_id

DMP_TIMEOUT = 10.0



_pages = Environment(loader=PackageLoader("esante.simulators.mes", "templates"), autoescape=select_autoescape())


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_pages.get_template(template).render(**context), status_code=status, headers=NO_STORE)


Handler = Callable[[Request], Awaitable[Response]]


def answered(operation: str, handler: Handler) -> Handler:
    """Name the operation for the journal; answer OAuth errors as JSON and FHIR errors as OperationOutcome."""

    async def wrapped(request: Request) -> Response:
        notes = notes_of(request)
        notes["operation"] = operation
        try:
            return await handler(request)
        except OAuthError as error:
            notes["error"], notes["error_description"] = error.error, error.description
            return error.response()
        except FhirError as error:
            notes["error"] = getattr(error, "details", None) or error.code
            notes["issues"] = [i["diagnostics"] for i in getattr(error, "issues", [error.issue()])][:20]
            return error.response()

    return wrapped


class MesSimulator(Simulator):
    """Mon espace santé as a partner app meets it.

    Options: ``rate_limit`` — calls per second per pairing before 429 (default 50).
    """

    name: ClassVar[str] = "mes"
    title: ClassVar[str] = "Mon espace santé"

    def __init__(self, dataset: Dataset, *, rate_limit: int = 50) -> None:
        super().__init__(dataset)
        self.rate_limit = int(rate_limit)
        self.state = MesState()

    def reset(self) -> None:
        self.state.reset()

    def error_response(self, error: ServiceError) -> Response:
        spec = self.injected_fault(error)
        if spec is not None:
            return FhirError(spec.status, spec.answer["issue"], spec.description,
                             headers={"Retry-After": str(RETRY_AFTER)}).response()
        if error.kind == "too_large":
            return FhirError(413, "too-costly", error.message).response()
        return FhirError(500, "exception", error.message).response()

    # -- routes ------------------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        router = APIRouter()
        routes: list[tuple[str, list[str], str, Handler]] = [
            (AUTHORIZE_PATH, ["GET"], "authorize", self.authorize),
            (CONSENT_PATH, ["POST"], "consent", self.consent),
            (TOKEN_PATH, ["POST"], "token", self.token),
            (REVOKE_PATH, ["POST"], "revoke", self.revoke),
            (PAIRING_PATH, ["GET", "DELETE"], "pairing", self.pairing),
            (USER_PAIRINGS_PATH + "/{pairing_id}/revoke", ["POST"], "user_revoke", self.user_revoke),
            (FHIR_BASE, ["POST"], "transaction", self.transaction),
            (FHIR_BASE + "/DocumentReference", ["POST"], "document", self.document),
            (FHIR_BASE + "/Appointment", ["PUT", "POST"], "appointment", self.appointment),
            (FHIR_BASE + "/{resource_type}", ["GET"], "search", self.search),
            (FHIR_BASE + "/{resource_type}/{resource_id}", ["GET"], "read", self.read),
            (CATALOGUE_PATH, ["GET"], "catalogue", self.catalogue),
            (CRITERIA_PATH, ["GET"], "criteria", self.criteria),
            (DOSSIERS_PATH, ["POST"], "dossier_submit", self.submit_dossier),
            (DOSSIERS_PATH + "/{dossier_id}", ["GET"], "dossier", self.dossier),
            (DOSSIERS_PATH + "/{dossier_id}/advance", ["POST"], "dossier_advance", self.advance_dossier),
        ]
        for path, methods, operation, handler in routes:
            router.add_api_route(path, answered(operation, handler), methods=methods, include_in_schema=False)
        return router

    # -- pairing: authorization, the citizen's login and consent, tokens -------------------------------
    def _partner(self, client_id: str) -> MesPartner:
        try:
            partner = self.dataset.mes_partner(client_id)
        except KeyError:
            raise OAuthError("invalid_client", f"unknown partner app {client_id!r}", 401) from None
        if partner.status == "suspended" or not partner.data_exchange:
            raise OAuthError("unauthorized_client", f"{partner.name} may not pair (status {partner.status}, "
                                                    f"data exchange {partner.data_exchange})")
        return partner

    async def authorize(self, request: Request) -> Response:
        form = await read_form(request)
        notes_of(request)["client_id"] = form.get("client_id")
        try:
            partner = self._partner(form.get("client_id", ""))
        except OAuthError as error:
            return page("message.html", 400, heading="Erreur", message=error.description, error=True)
        redirect_uri = form.get("redirect_uri", "")
        if not uri_registered(redirect_uri, partner.redirect_uris):
            return page("message.html", 400, heading="Erreur", message="redirect_uri non enregistrée", error=True)
        try:
            transaction = self._transaction(form, partner, redirect_uri)
        except OAuthError as error:
            notes_of(request)["error"] = error.error
            return _redirect(redirect_uri, {"error": error.error, "error_description": error.description,
                                            "state": form.get("state")})
        return page("consent.html", client_name=partner.name, scopes=transaction.scope.split(),
                    transaction=transaction.id, action=CONSENT_PATH, patients=self.dataset.patients)

    def _transaction(self, form: dict[str, str], partner: MesPartner, redirect_uri: str) -> Transaction:
        if form.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code")
        if not form.get("code_challenge") or form.get("code_challenge_method") != "S256":
            raise OAuthError("invalid_request", "PKCE with code_challenge_method=S256 is required")
        check_pkce("S256", form["code_challenge"])
        scopes = form.get("scope", "").split()
        refused = [s for s in scopes if s not in partner.scopes]
        if not scopes or refused:
            raise OAuthError("invalid_scope", f"scopes not granted to {partner.name}: {' '.join(refused) or '(none)'}")
        transaction = Transaction(new_id(), partner.client_id, redirect_uri, form.get("state"), " ".join(scopes),
                                  form["code_challenge"])
        with self.state.lock:
            self.state.transactions[transaction.id] = transaction
        return transaction

    async def consent(self, request: Request) -> Response:
        form = await read_form(request)
        notes = notes_of(request)
        with self.state.lock:
            transaction = self.state.transactions.pop(form.get("transaction", ""), None)
        if transaction is None or time.time() - transaction.created > 30 * 60:
            return page("message.html", 400, heading="Erreur", message="Demande expirée : recommencez depuis "
                                                                      "l'application.", error=True)
        state = new_id(24) if "tamper_state" in behaviours_of(request) else transaction.state
        notes["client_id"], notes["tampered"] = transaction.client_id, state != transaction.state
        if form.get("decision") != "accept":
            notes["consent"] = "refused"
            return _redirect(transaction.redirect_uri, {"error": "access_denied", "state": state,
                                                         "error_description": "the citizen refused the pairing"})
        try:
            patient = self.dataset.patient(form.get("patient", ""))
        except KeyError:
            return page("message.html", 400, heading="Erreur", message="Identifiant inconnu.", error=True)
        now = time.time()
        pairing = Pairing(new_id(12), transaction.client_id, patient.id, transaction.scope, now,
                          now + PAIRING_LIFETIME)
        code = Code(new_id(32), transaction, pairing.id, now + CODE_LIFETIME)
        with self.state.lock:
            self.state.pairings[pairing.id] = pairing
            self.state.codes[code.value] = code
        notes["consent"], notes["pairing_id"], notes["patient"] = "given", pairing.id, patient.id
        return _redirect(transaction.redirect_uri, {"code": code.value, "state": state})

    def _client(self, request: Request, form: dict[str, str]) -> MesPartner:
        """A confidential partner authenticates with HTTP Basic; a public one (no secret) names itself."""
        header = request.headers.get("authorization")
        if header and header.lower().startswith("basic "):
            client_id, secret = basic_credentials(header)
            partner = self._partner(client_id)
            if not partner.secret or not secrets_equal(secret, partner.secret):
                raise OAuthError("invalid_client", "client authentication failed", 401)
        else:
            partner = self._partner(form.get("client_id", ""))
            if partner.secret:
                raise OAuthError("invalid_client", f"{partner.client_id} is confidential: use HTTP Basic", 401)
        notes_of(request)["client_id"] = partner.client_id
        return partner

    async def token(self, request: Request) -> Response:
        form = await read_form(request)
        partner = self._client(request, form)
        grant = form.get("grant_type")
        if grant == GRANT_CODE:
            pairing = self._redeem(partner, form)
        elif grant == GRANT_REFRESH:
            pairing = self._refresh(partner, form)
        else:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported")
        lifetime = SHORT_ACCESS_LIFETIME if "short_lifetimes" in behaviours_of(request) else ACCESS_LIFETIME
        access, refresh = self.state.issue(pairing, lifetime, SCOPE_OFFLINE in pairing.scope.split())
        patient = self.dataset.patient(pairing.patient_id)
        notes_of(request)["pairing_id"] = pairing.id
        answer = {"access_token": access.value, "token_type": "Bearer", "expires_in": int(lifetime),
                  "scope": pairing.scope, "patient": mes_patient_id(patient.ins.nir), "pairing_id": pairing.id}
        if refresh is not None:
            answer["refresh_token"] = refresh.value
        return JSONResponse(answer, headers=NO_STORE)

    def _redeem(self, partner: MesPartner, form: dict[str, str]) -> Pairing:
        with self.state.lock:
            code = self.state.codes.get(form.get("code", ""))
            if code is None or code.transaction.client_id != partner.client_id:
                raise OAuthError("invalid_grant", "unknown authorization code")
            if code.used or code.expires < time.time():
                self.state.end_pairing(self.state.pairings[code.pairing_id], "replay")  # RFC 6749 §4.1.2
                raise OAuthError("invalid_grant", "authorization code already used or expired")
            code.used = True
        if form.get("redirect_uri") != code.transaction.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request's")
        if not pkce_matches("S256", code.transaction.challenge, form.get("code_verifier", "")):
            raise OAuthError("invalid_grant", "PKCE verification failed (code_verifier)")
        return self.state.pairings[code.pairing_id]

    def _refresh(self, partner: MesPartner, form: dict[str, str]) -> Pairing:
        """Refresh tokens rotate: each is good once; the pairing must still be active."""
        with self.state.lock:
            token = self.state.tokens.get(form.get("refresh_token", ""))
            if token is None or token.kind != "refresh":
                raise OAuthError("invalid_grant", "unknown refresh token")
            pairing = self.state.pairings[token.pairing_id]
            if pairing.client_id != partner.client_id:
                raise OAuthError("invalid_grant", "refresh token issued to another app")
            status = pairing.status()
            if status != "active":
                raise OAuthError("invalid_grant", f"the pairing is {status}"
                                                  f"{' by the user' if pairing.revoked_by == 'user' else ''}")
            if not token.active:
                self.state.end_pairing(pairing, "replay")  # a reused rotated token: assume it was stolen
                raise OAuthError("invalid_grant", "refresh token already used")
            token.active = False
        return pairing

    async def revoke(self, request: Request) -> Response:
        form = await read_form(request)
        partner = self._client(request, form)
        token = self.state.tokens.get(form.get("token", ""))
        if token is not None and self.state.pairings[token.pairing_id].client_id == partner.client_id:
            token.active = False
        return Response(status_code=200, headers=NO_STORE)

    async def pairing(self, request: Request) -> Response:
        _, pairing, _ = self._bearer(request, check_pairing=False)
        if request.method == "DELETE":
            self.state.end_pairing(pairing, "partner")
            return Response(status_code=204)
        return JSONResponse({"pairing_id": pairing.id, "status": pairing.status(), "scope": pairing.scope,
                             "created": int(pairing.created), "expires": int(pairing.expires),
                             "revoked_by": pairing.revoked_by}, headers=NO_STORE)

    async def user_revoke(self, request: Request) -> Response:
        """The citizen ends a pairing from their space (the simulated "Applications connectées" page)."""
        pairing = self.state.pairings.get(request.path_params["pairing_id"])
        if pairing is None:
            return page("message.html", 404, heading="Erreur", message="Appariement inconnu.", error=True)
        self.state.end_pairing(pairing, "user")
        notes_of(request)["pairing_id"] = pairing.id
        return page("message.html", heading="Appariement révoqué", message="L'application n'a plus accès.")

    # -- bearer tokens on the API ----------------------------------------------------------------------
    def _bearer(self, request: Request, *, check_pairing: bool = True) -> tuple[Token, Pairing, Patient]:
        notes = notes_of(request)
        header = request.headers.get("authorization", "")
        value = header[7:].strip() if header.lower().startswith("bearer ") else ""
        token = self.state.tokens.get(value)
        if token is None or token.kind != "access":
            notes["token_state"] = "missing" if not value else "unknown"
            raise _unauthorized("login", "no valid access token", "TOKEN_INVALID")
        pairing = self.state.pairings[token.pairing_id]
        notes["pairing_id"], notes["client_id"] = pairing.id, pairing.client_id
        behaviours = behaviours_of(request)
        if "revoke_pairing" in behaviours:
            self.state.end_pairing(pairing, "user")
        if "revoke_token" in behaviours:
            token.active = False
        if "expire_pairing" in behaviours:
            pairing.expires = min(pairing.expires, time.time())
        expired_by = time.time() - token.expires
        notes["token_expires_in"] = round(-expired_by, 3)
        status = pairing.status()
        if check_pairing and status != "active":
            notes["token_state"] = f"pairing_{status}"
            raise _unauthorized("security", f"the pairing is {status}"
                                            f"{' by the user' if pairing.revoked_by == 'user' else ''}",
                                f"PAIRING_{status.upper()}")
        if expired_by > 0:
            notes["token_state"] = "expired"
            raise _unauthorized("expired", "the access token has expired", "TOKEN_EXPIRED")
        if not token.active and (check_pairing or status == "active"):  # ending a pairing revokes its tokens:
            notes["token_state"] = "revoked"                                # its status can still be read
            raise _unauthorized("security", "the access token was revoked", "TOKEN_REVOKED")
        notes["token_state"] = "valid"
        return token, pairing, self.dataset.patient(pairing.patient_id)

    def _api(self, request: Request, scope: str) -> tuple[Pairing, Patient, str]:
        """Authorise an API call: a valid token of an active pairing, the scope, the rate limit."""
        token, pairing, patient = self._bearer(request)
        if scope not in token.scope.split():
            raise FhirError(403, "forbidden", f"the pairing does not grant {scope}", details="SCOPE")
        if "rate_limited" in behaviours_of(request) or self.state.over_limit(pairing.id, self.rate_limit):
            raise FhirError(429, "throttled", "too many requests: retry after the delay given",
                            headers={"Retry-After": str(RETRY_AFTER)}, details="RATE_LIMIT")
        return pairing, patient, f"Patient/{mes_patient_id(patient.ins.nir)}"

    # -- FHIR writes ------------------------------------------------------------------------------------
    def _lost(self, request: Request) -> None:
        """The lose_response behaviour: the write was filed, the answer does not reach the app."""
        if "lose_response" in behaviours_of(request):
            notes_of(request)["response_lost"] = True
            raise FhirError(503, "transient", "the answer was lost on the way back (gateway)",
                            headers={"Retry-After": str(RETRY_AFTER)})

    def _file(self, patient: Patient, resource_type: str, resource: dict[str, Any], key: str | None
              ) -> tuple[dict[str, Any], bool]:
        """Store ``resource`` once per idempotency ``key``; True when it was new."""
        record = self.state.record(patient.id)
        with self.state.lock:
            if key is not None and (known := record.keys.get(f"{resource_type}|{key}")):
                return record.resources[resource_type][known], False
            stored = {**resource, "id": new_id(9),
                      "meta": {**resource.get("meta", {}), "versionId": "1",
                               "lastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
            record.resources[resource_type][stored["id"]] = stored
            if key is not None:
                record.keys[f"{resource_type}|{key}"] = stored["id"]
        return stored, True

    async def transaction(self, request: Request) -> Response:
        _, patient, reference = self._api(request, "patient/Observation.write")
        bundle = measures.bundle_or_error(await read_resource(request, "Bundle"))
        entry = measures.validate_bundle(bundle, reference)
        stored, created = self._file(patient, "Observation", entry.observation, entry.key)
        notes = notes_of(request)
        notes |= {"measure": entry.kind, "created": created, "idempotency_key": entry.key}
        results = []
        if entry.device is not None and created:  # a retried bundle files neither its measure nor its device again
            device, _ = self._file(patient, "Device", entry.device, None)
            stored["device"] = {"reference": f"Device/{device['id']}"}  # transaction: urn:uuid resolved
            results.append({"response": {"status": "201 Created", "location": f"Device/{device['id']}/_history/1"}})
        results.append({"response": {"status": "201 Created" if created else "200 OK",
                                     "location": f"Observation/{stored['id']}/_history/1"}})
        self._lost(request)
        return fhir_response({"resourceType": "Bundle", "type": "transaction-response", "entry": results})

    async def document(self, request: Request) -> Response:
        _, patient, reference = self._api(request, "patient/DocumentReference.write")
        resource = await read_resource(request, "DocumentReference")
        key, data = documents.validate_document(resource, reference)
        stored, created = self._file(patient, "DocumentReference", resource, key)
        notes = notes_of(request)
        notes |= {"created": created, "idempotency_key": key}
        if created:  # the DMP call blocks: off the event loop
            notes["dmp"] = await run_in_threadpool(self._file_in_dmp, resource, patient, data)
        self._lost(request)
        return fhir_response(stored, 201 if created else 200,
                             {"Location": f"{FHIR_BASE}/DocumentReference/{stored['id']}/_history/1"})

    def _file_in_dmp(self, resource: dict[str, Any], patient: Patient, data: bytes) -> dict[str, Any]:
        """One patient record: the document goes to the citizen's DMP too, when the lab has a DMP simulator.
        What the DMP answered is the evidence (kept in this exchange's notes)."""
        peer = self.peer("dmp")
        if peer is None:
            return {"skipped": "no DMP simulator in this lab"}
        body = documents.dmp_filing(resource, patient, data)
        if body is None:
            return {"skipped": "the document has no LOINC type: the DMP files documents by type"}
        try:
            with peer.client(timeout=DMP_TIMEOUT) as http:
                answer = http.post("/_peer/documents", json=body)
        except httpx.HTTPError as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        try:
            detail = answer.json()
        except ValueError:
            detail = {"text": answer.text[:300]}
        return {"status": answer.status_code, "answer": detail}

    async def appointment(self, request: Request) -> Response:
        """POST creates; PUT ?identifier=system|value is a conditional update (create or replace)."""
        _, patient, reference = self._api(request, "patient/Appointment.write")
        resource = await read_resource(request, "Appointment")
        key = agenda.validate_appointment(resource, reference)
        notes = notes_of(request)
        if request.method == "POST":
            stored, created = self._file(patient, "Appointment", resource, None)
        else:
            condition = request.query_params.get("identifier")
            if condition != key:
                raise FhirError(412, "invalid", f"PUT ?identifier={condition} must name the appointment's own "
                                                f"identifier {key}", expression=["Appointment.identifier"])
            stored, created = self._upsert(patient, resource, key)
        notes |= {"created": created, "idempotency_key": key if request.method == "PUT" else None}
        self._lost(request)
        return fhir_response(stored, 201 if created else 200)

    def _upsert(self, patient: Patient, resource: dict[str, Any], key: str) -> tuple[dict[str, Any], bool]:
        record = self.state.record(patient.id)
        with self.state.lock:
            known = record.keys.get(f"Appointment|{key}")
            if known is None:
                return self._file(patient, "Appointment", resource, key)
            previous = record.resources["Appointment"][known]
            version = str(int(previous["meta"]["versionId"]) + 1)
            stored = {**resource, "id": known, "meta": {**resource.get("meta", {}), "versionId": version,
                      "lastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
            record.resources["Appointment"][known] = stored
        return stored, False

    # -- FHIR reads -------------------------------------------------------------------------------------
    def _readable(self, request: Request, resource_type: str) -> tuple[Patient, str]:
        if resource_type not in ("Observation", "DocumentReference", "Appointment", "Device", "Patient"):
            raise FhirError(404, "not-supported", f"resource type {resource_type} is not served")
        scope_type = "Observation" if resource_type in ("Device", "Patient") else resource_type
        _, patient, reference = self._api(request, f"patient/{scope_type}.read")
        return patient, reference

    async def read(self, request: Request) -> Response:
        resource_type, resource_id = request.path_params["resource_type"], request.path_params["resource_id"]
        patient, reference = self._readable(request, resource_type)
        if resource_type == "Patient":
            if f"Patient/{resource_id}" != reference:
                raise FhirError(403, "forbidden", "the account is not paired with this patient", details="PAIRING_NONE")
            return fhir_response(_patient_resource(patient))
        found = self.state.record(patient.id).resources[resource_type].get(resource_id)
        if found is None:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")
        return fhir_response(found)

    async def search(self, request: Request) -> Response:
        resource_type = request.path_params["resource_type"]
        patient, reference = self._readable(request, resource_type)
        params = dict(request.query_params)
        count, offset = _int(params.pop("_count", PAGE_SIZE), "_count"), _int(params.pop("_offset", 0), "_offset")
        if not 1 <= count <= MAX_PAGE_SIZE:
            raise FhirError(400, "invalid", f"_count must be 1..{MAX_PAGE_SIZE}", expression=["_count"])
        subject = params.pop("patient", None) or params.pop("subject", None)
        if subject not in (None, reference, reference.split("/")[1]):
            raise FhirError(403, "forbidden", "the account is not paired with this patient", details="PAIRING_NONE")
        unknown = sorted(set(params) - {"code", "date", "status", "type"})
        if unknown:
            raise FhirError(400, "not-supported", f"search parameter(s) {', '.join(unknown)} not supported")
        with self.state.lock:
            rows = list(self.state.record(patient.id).resources[resource_type].values())
        matches = sorted((r for r in rows if _matches(r, params)), key=_when, reverse=True)
        if not 0 <= offset <= len(matches):
            raise FhirError(400, "invalid", "_offset is outside the results", expression=["_offset"])
        bundle = search_bundle(str(request.base_url).rstrip("/"), f"{FHIR_BASE}/{resource_type}", params, matches,
                               offset, count)
        notes_of(request)["page"] = {"offset": offset, "count": count, "total": len(matches),
                                     "has_next": offset + count < len(matches)}
        return fhir_response(bundle)

    # -- catalogue and referencing window -----------------------------------------------------------------
    async def catalogue(self, request: Request) -> Response:
        category = request.query_params.get("category")
        services = [{"client_id": p.client_id, "name": p.name, "editor": p.editor, "categories": p.categories,
                     "data_exchange": p.data_exchange, "status": p.status}
                    for p in self.dataset.mes_partners if category is None or category in p.categories]
        return JSONResponse({"total": len(services), "services": services})

    async def criteria(self, request: Request) -> Response:
        return JSONResponse({"criteria": [asdict(c) for c in catalogue.criteria().values()]})

    async def submit_dossier(self, request: Request) -> Response:
        result = catalogue.check_dossier(await request.body())
        dossier = catalogue.Dossier(new_id(9), result.service, "submitted", result.findings)
        dossier.step("submitted")
        dossier.step("admissible" if result.admissible else "inadmissible",
                     f"{len(result.findings)} finding(s)" if result.findings else "complete")
        with self.state.lock:
            self.state.dossiers[dossier.id] = dossier
        notes_of(request).update({"dossier": dossier.id, "status": dossier.status, "findings": len(result.findings)})
        return JSONResponse(dossier.as_json(), status_code=201 if result.admissible else 422)

    def _dossier(self, request: Request) -> catalogue.Dossier:
        dossier = self.state.dossiers.get(request.path_params["dossier_id"])
        if dossier is None:
            raise FhirError(404, "not-found", "no such dossier")
        return dossier

    async def dossier(self, request: Request) -> Response:
        return JSONResponse(self._dossier(request).as_json())

    async def advance_dossier(self, request: Request) -> Response:
        """The ANS moves the dossier on (evaluation, commission opinion, agreement, connection tests...)."""
        dossier = self._dossier(request)
        body = parse_json(await request.body())
        if not isinstance(body, dict) or not isinstance(body.get("to"), str):
            raise FhirError(400, "structure", 'the body is {"to": <next status>, "note": <text>}')
        try:
            with self.state.lock:
                dossier.advance(body["to"], str(body.get("note", ""))[:500])
        except ValueError as exc:
            raise FhirError(409, "business-rule", str(exc)) from None
        notes_of(request)["status"] = dossier.status
        return JSONResponse(dossier.as_json())


def _unauthorized(code: str, message: str, details: str) -> FhirError:
    return FhirError(401, code, message, details=details,
                     headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'})


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise FhirError(400, "invalid", f"{name} must be an integer", expression=[name]) from None


def _when(resource: dict[str, Any]) -> str:
    return str(resource.get("effectiveDateTime") or resource.get("start") or resource.get("date")
               or resource["meta"]["lastUpdated"])


def _matches(resource: dict[str, Any], params: dict[str, str]) -> bool:
    """The search parameters we serve: code (token, [system|]code), type, status and date (ge/le/eq)."""
    for name in ("code", "type"):
        if name in params:
            wanted = params[name].split("|")[-1]
            codings = (resource.get(name) or {}).get("coding") or []
            if not any(c.get("code") == wanted for c in codings):
                return False
    if "status" in params and resource.get("status") != params["status"]:
        return False
    if "date" in params:
        prefix, value = (params["date"][:2], params["date"][2:]) if params["date"][:2] in ("ge", "le", "eq") \
            else ("eq", params["date"])
        when = _when(resource)[:len(value)]
        if (prefix == "ge" and when < value) or (prefix == "le" and when > value) or (prefix == "eq" and when != value):
            return False
    return True


def _patient_resource(patient: Patient) -> dict[str, Any]:
    """The citizen as FR Core Patient, with the INS as identifier."""
    return {"resourceType": "Patient", "id": mes_patient_id(patient.ins.nir),
            "identifier": [{"use": "official", "system": f"urn:oid:{patient.ins.oid}",
                            "value": patient.ins.nir + patient.ins.key}],
            "name": [{"use": "official", "family": patient.birth_name, "given": patient.first_names}],
            "gender": {"M": "male", "F": "female"}[patient.sex], "birthDate": patient.birth_date}


def _redirect(uri: str, params: dict[str, str | None]) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{query}", status_code=302, headers=NO_STORE)
