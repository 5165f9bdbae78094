"""Conformance checks of a partner app of Mon espace santé, in the spirit of the referencing's connection
tests, judged on what the simulated MES journaled (each exchange's request and the simulator's notes:
operation, pairing, token state, error, issues, idempotency key, page) and on what the app reported.
Requirement ids are declared in ``scenarios/mes/campaign.yaml``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from esante.harness.suite import (
    MAX_ATTEMPTS,
    ActionOutcome,
    ActionReport,
    CheckContext,
    Exchange,
    Outcome,
    StepObservation,
    check,
    describe,
    fail,
    form_of,
    moment,
    ok,
    required,
    retry_storm,
    stop,
    transport_failed,
    where,
)
from esante.simulators.mes.notes import MesNotes
from esante.simulators.mes.protocol import (
    AUTHORIZE_PATH,
    CONSENT_PATH,
    FHIR_BASE,
    GRANT_CODE,
    GRANT_REFRESH,
    LOINC,
    RETRY_AFTER,
    TOKEN_PATH,
)

MIN_RANDOM_CHARS = 22           # 128 bits as base64url
RETRY_TOLERANCE = 0.1           # seconds of clock and scheduling slack on Retry-After
WRITES = ("transaction", "document", "appointment")
API = (*WRITES, "search", "read", "pairing")
MES = "Mon espace santé"


# -- reading what was observed -----------------------------------------------------------------------------
def notes(exchange: Exchange) -> MesNotes:
    return MesNotes.read(exchange)


def operation(exchange: Exchange) -> str | None:
    """What the call was for: as noted, else by path (an injected fault answers before the handler notes)."""
    noted = notes(exchange).operation
    if noted:
        return noted
    path = exchange.path
    if path == FHIR_BASE:
        return "transaction"
    if path.startswith(f"{FHIR_BASE}/DocumentReference") and exchange.method == "POST":
        return "document"
    if path.startswith(f"{FHIR_BASE}/Appointment") and exchange.method in ("PUT", "POST"):
        return "appointment"
    if path.startswith(f"{FHIR_BASE}/"):
        return "search"
    return {AUTHORIZE_PATH: "authorize", CONSENT_PATH: "consent", TOKEN_PATH: "token"}.get(path)


def calls(ctx: CheckContext, *operations: str) -> list[Exchange]:
    return sorted((e for e in ctx.of("mes") if operation(e) in operations), key=lambda e: e.request_seq)


def _required(ctx: CheckContext, what: str, *operations: str) -> list[Exchange]:
    return required(calls(ctx, *operations), what, MES)


def body_of(exchange: Exchange) -> dict[str, Any]:
    try:
        body = json.loads(exchange.request_body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def location(exchange: Exchange) -> dict[str, str]:
    value = next((v for k, v in exchange.response_headers if k.lower() == "location"), "")
    return dict(parse_qsl(urlsplit(value).query))


def reports(ctx: CheckContext, action: str) -> list[tuple[StepObservation, ActionReport]]:
    return [(s, r) for s, r in ctx.reports("mes.") if s.action == action]


def grants(ctx: CheckContext, grant_type: str) -> list[Exchange]:
    return [e for e in calls(ctx, "token") if form_of(e).get("grant_type") == grant_type]


def issues(exchange: Exchange) -> str:
    return "; ".join(notes(exchange).issues or [])


# -- pairing -----------------------------------------------------------------------------------------------
@check("mes.authorization_request", requirements=["MES-PAIR-01"],
       title="Pairing asks for a code with PKCE S256 and a fresh, unguessable state")
def authorization_request(ctx: CheckContext) -> Outcome:
    seen: dict[str, Exchange] = {}
    requests = _required(ctx, "pairing request", "authorize")
    for exchange in requests:
        form = form_of(exchange)
        if form.get("response_type") != "code":
            return fail(f"pairing request {where(exchange)}: response_type {form.get('response_type')!r}", exchange)
        if form.get("code_challenge_method") != "S256" or not form.get("code_challenge"):
            return fail(f"pairing request {where(exchange)} has no PKCE S256 challenge "
                        f"(method {form.get('code_challenge_method')!r})", exchange)
        state = form.get("state", "")
        if len(state) < MIN_RANDOM_CHARS:
            return fail(f"pairing request {where(exchange)}: state {state!r} is missing or too short to be "
                        f"unguessable (at least {MIN_RANDOM_CHARS} random characters)", exchange)
        if state in seen:
            return fail(f"pairing request {where(exchange)} reuses the state of {where(seen[state])}",
                        seen[state], exchange)
        seen[state] = exchange
        if notes(exchange).error:
            return fail(f"MES refused pairing request {where(exchange)}: {notes(exchange).error}", exchange)
    return ok(f"{len(requests)} pairing request(s), each with PKCE S256 and its own state", *requests)


@check("mes.token_request", requirements=["MES-TOK-01"],
       title="The code is redeemed once, authenticated, with the same redirect_uri and the PKCE verifier")
def token_request(ctx: CheckContext) -> Outcome:
    redemptions = grants(ctx, GRANT_CODE) or stop(fail("no authorization code was redeemed"))
    for exchange in redemptions:
        form = form_of(exchange)
        if not form.get("code_verifier"):
            return fail(f"token request {where(exchange)} has no code_verifier (PKCE)", exchange)
        if exchange.status != 200:
            noted = notes(exchange)
            return fail(f"MES refused token request {where(exchange)}: {noted.error} "
                        f"({noted.error_description})", exchange)
    return ok(f"{len(redemptions)} code(s) redeemed with the PKCE verifier", *redemptions)


@check("mes.state_checked", requirements=["MES-PAIR-02"],
       title="An authorization response with another state is refused: no code is redeemed, the user is told")
def state_checked(ctx: CheckContext) -> Outcome:
    tampered = [e for e in calls(ctx, "consent") if notes(e).tampered] or \
        stop(fail("MES sent no tampered authorization response in this test case"))
    redeemed = [e for e in grants(ctx, GRANT_CODE)
                if any(form_of(e).get("code") == location(t).get("code") for t in tampered)]
    if redeemed:
        return fail(f"the app redeemed the code of an authorization response whose state it never sent "
                    f"({where(redeemed[0])})", redeemed[0])
    answers = [r for _, r in reports(ctx, "mes.pair")]
    if not answers or answers[-1].outcome is not ActionOutcome.REFUSED:
        got = describe(answers[-1]) if answers else "nothing"
        return fail(f"the app must refuse the tampered pairing answer (outcome refused); it reported {got}")
    return ok("the tampered authorization response was refused and its code never redeemed", *tampered)


@check("mes.consent_refusal", requirements=["MES-PAIR-03"],
       title="When the citizen refuses, the app calls no token endpoint and reports access_denied")
def consent_refusal(ctx: CheckContext) -> Outcome:
    refused = [e for e in calls(ctx, "consent") if notes(e).consent == "refused"] or \
        stop(fail("the citizen refused no pairing in this test case"))
    after = [e for e in calls(ctx, "token") if e.request_seq > refused[0].request_seq]
    if after:
        return fail(f"after the citizen's refusal the app still called the token endpoint ({where(after[0])})",
                    after[0])
    answers = [r for _, r in reports(ctx, "mes.pair")]
    last = answers[-1] if answers else None
    if last is None or last.outcome is not ActionOutcome.ERROR or last.error_code != "access_denied":
        return fail(f"the app must report the refusal (outcome error, code access_denied); it reported "
                    f"{describe(last) if last else 'nothing'}")
    return ok("the refusal was reported as access_denied, and no token was asked for", *refused)


@check("mes.refresh_before_expiry", requirements=["MES-TOK-02"],
       title="Access tokens are refreshed before they expire: an expired token is never presented")
def refresh_before_expiry(ctx: CheckContext) -> Outcome:
    api = _required(ctx, "API call", *API)
    expired = [e for e in api if notes(e).token_state == "expired"]
    if expired:
        return fail(f"the app presented an expired access token ({where(expired[0])}, expired "
                    f"{-(notes(expired[0]).token_expires_in or 0):.1f} s before): refresh before expiry", expired[0])
    refreshes = grants(ctx, GRANT_REFRESH)
    if not refreshes:
        return fail("the access tokens of this case expire within seconds, and the app never refreshed one")
    return ok(f"{len(refreshes)} refresh(es), no expired token presented in {len(api)} API call(s)", *refreshes)


@check("mes.stops_after_revocation", requirements=["MES-PAIR-04"],
       title="Once the citizen revoked the pairing, the app stops calling with it and says so")
def stops_after_revocation(ctx: CheckContext) -> Outcome:
    calls_ = calls(ctx, *API, "token")
    revoked = next((e for e in calls_ if notes(e).token_state == "pairing_revoked"), None) or \
        stop(fail("no call met a revoked pairing in this test case"))
    pairing = notes(revoked).pairing_id
    later = [e for e in calls_ if e.request_seq > revoked.request_seq and
             (notes(e).pairing_id == pairing or operation(e) == "token")]
    if later:
        return fail(f"after MES said the pairing was revoked by the user ({where(revoked)}), the app called "
                    f"{len(later)} more time(s), first {where(later[0])}: it must stop and ask the user to pair "
                    "again", revoked, later[0])
    answers = [r for _, r in ctx.reports("mes.") if r.outcome is not ActionOutcome.REDIRECT]
    if not answers or answers[-1].error_code != "PAIRING_REVOKED":
        return fail(f"the app must tell the user the pairing was revoked (error code PAIRING_REVOKED); it "
                    f"reported {describe(answers[-1]) if answers else 'nothing'}", revoked)
    return ok("the app stopped at the revoked pairing and told the user", revoked)


# -- measures ----------------------------------------------------------------------------------------------
def _identifier(entry: dict[str, Any]) -> str | None:
    identifiers = (entry.get("resource") or {}).get("identifier") or [{}]
    first = identifiers[0] if isinstance(identifiers, list) and identifiers else {}
    return f"{first.get('system')}|{first.get('value')}" if isinstance(first, dict) and first.get("value") else None


@check("mes.measure_bundles", requirements=["MES-DATA-01"],
       title="Each measure goes as a valid MesBundleFluxAlimentation and every measure of the step is filed")
def measure_bundles(ctx: CheckContext) -> Outcome:
    sent = _required(ctx, "measure bundle", "transaction")
    refused = [e for e in sent if e.status == 422]
    if refused:
        return fail(f"MES refused the bundle {where(refused[0])}: {issues(refused[0])}", refused[0])
    filed_count = len([e for e in sent if notes(e).created])  # filed, even if the answer was lost
    wanted = sum(len(s.params.get("measures") or []) for s, _ in reports(ctx, "mes.push_measures"))
    if filed_count < wanted:
        return fail(f"the steps gave {wanted} measure(s); MES filed {filed_count}", *sent)
    return ok(f"{filed_count} measure(s) filed, every bundle valid", *sent)


@check("mes.refusal_handled", requirements=["MES-DATA-02"],
       title="A measure MES refuses (422 OperationOutcome) is reported to the user, not sent again")
def refusal_handled(ctx: CheckContext) -> Outcome:
    sent = _required(ctx, "measure bundle", "transaction")
    refused = [e for e in sent if e.status == 422] or stop(fail("MES refused no bundle in this test case"))
    for bad in refused:
        again = [e for e in sent if e.request_seq > bad.request_seq and e.request_body == bad.request_body]
        if again:
            return fail(f"the app sent the refused bundle again unchanged ({where(again[0])}): a 422 is not "
                        "transient", bad, again[0])
    answers = [r for _, r in reports(ctx, "mes.push_measures")]
    if not answers or answers[-1].outcome is not ActionOutcome.ERROR or not answers[-1].message:
        return fail(f"the app must report the refusal with MES's reason (outcome error); it reported "
                    f"{describe(answers[-1]) if answers else 'nothing'}", *refused)
    return ok(f"refusal reported: {answers[-1].message[:120]}", *refused)


@check("mes.idempotent_writes", requirements=["MES-DATA-03"],
       title="Writes carry the app's identifier (conditional create/update) so a retry files nothing twice")
def idempotent_writes(ctx: CheckContext) -> Outcome:
    writes = _required(ctx, "write", *WRITES)
    for exchange in writes:
        body, kind = body_of(exchange), operation(exchange)
        if kind == "transaction":
            entries = body.get("entry") or []
            observation = next((e for e in entries if (e.get("resource") or {}).get("resourceType") ==
                                "Observation"), {})
            condition = (observation.get("request") or {}).get("ifNoneExist")
            if not condition or _identifier(observation) is None:
                return fail(f"measure bundle {where(exchange)}: the Observation entry has no identifier named by "
                            "request.ifNoneExist: a retried bundle would be filed twice", exchange)
        elif kind == "document" and not (body.get("masterIdentifier") or {}).get("value"):
            return fail(f"document {where(exchange)} has no masterIdentifier: a retry would file it twice", exchange)
        elif kind == "appointment" and (exchange.method != "PUT" or "identifier=" not in exchange.query):
            return fail(f"appointment {where(exchange)} is not a conditional update by identifier", exchange)
    created: dict[str, Exchange] = {}
    for exchange in writes:
        key = notes(exchange).idempotency_key
        if key and notes(exchange).created:
            if key in created:
                return fail(f"{key} was filed twice", created[key], exchange)
            created[key] = exchange
    return ok(f"{len(writes)} write(s), each keyed by the app's identifier", *writes)


# -- documents, agenda, reads ------------------------------------------------------------------------------
@check("mes.document_push", requirements=["MES-DOC-01"],
       title="Documents go as DocumentReference with a LOINC type, a matching format and their content")
def document_push(ctx: CheckContext) -> Outcome:
    pushed = _required(ctx, "document", "document")
    for exchange in pushed:
        if exchange.status not in (200, 201):
            return fail(f"MES refused document {where(exchange)}: {issues(exchange)}", exchange)
        codings = (body_of(exchange).get("type") or {}).get("coding") or []
        if not any(c.get("system") == LOINC for c in codings if isinstance(c, dict)):
            return fail(f"document {where(exchange)} has no LOINC type: the DMP could not file it", exchange)
    return ok(f"{len(pushed)} document(s) filed", *pushed)


@check("mes.agenda_sync", requirements=["MES-AGD-01"],
       title="Agenda entries are kept in sync: one entry per appointment, updated in place")
def agenda_sync(ctx: CheckContext) -> Outcome:
    writes = _required(ctx, "appointment", "appointment")
    refused = [e for e in writes if e.status not in (200, 201)]
    if refused:
        return fail(f"MES refused appointment {where(refused[0])}: {issues(refused[0])}", refused[0])
    created = [e for e in writes if notes(e).created]
    wanted = {a.get("id") for s, _ in reports(ctx, "mes.sync_agenda") for a in s.params.get("appointments") or []}
    if len(created) > len(wanted):
        return fail(f"{len(created)} agenda entries were created for {len(wanted)} appointment(s): a changed "
                    "appointment must update its entry, not add one", *created)
    return ok(f"{len(writes)} agenda write(s), {len(created)} entr(y/ies) for {len(wanted)} appointment(s)", *writes)


@check("mes.paged_reads", requirements=["MES-READ-01"],
       title="Reads use search parameters and follow the next links to the last page")
def paged_reads(ctx: CheckContext) -> Outcome:
    pages = [(e, page) for e in _required(ctx, "search", "search") if (page := notes(e).page) is not None]
    if not pages:
        return fail("no search was answered in this test case")
    searches = [e for e, _ in pages]
    last, page = pages[-1]
    if page.has_next:
        return fail(f"the app stopped at {where(last)} (results {page.offset + 1}-{page.offset + page.count}"
                    f" of {page.total}) although a next page was linked", last)
    if not any(k in form_of(s) for s in searches for k in ("code", "date")):
        return fail("the app read without any search parameter (code, date): it must ask for what it needs", *searches)
    return ok(f"{len(searches)} page(s) read to the last of {page.total} result(s)", *searches)


# -- errors --------------------------------------------------------------------------------------------------
@check("mes.respects_retry_after", requirements=["MES-ERR-01"],
       title="After a 429 the app waits as Retry-After says, then retries")
def respects_retry_after(ctx: CheckContext) -> Outcome:
    api = calls(ctx, *API)
    throttled = [e for e in api if e.status == 429] or stop(fail("MES answered no 429 in this test case"))
    for exchange in throttled:
        delay = float(next((v for k, v in exchange.response_headers if k.lower() == "retry-after"), RETRY_AFTER))
        following = [e for e in api if e.request_seq > exchange.request_seq]
        if not following:
            return fail(f"after the 429 at {where(exchange)} the app never retried", exchange)
        waited = (moment(following[0]) - moment(exchange)).total_seconds()
        if waited < delay - RETRY_TOLERANCE:
            return fail(f"after the 429 at {where(exchange)} (Retry-After: {delay:g}) the app called again "
                        f"{waited:.2f} s later ({where(following[0])})", exchange, following[0])
    return ok(f"{len(throttled)} 429(s), each followed by a wait of at least Retry-After", *throttled)


@check("mes.unavailable_handled", requirements=["MES-ERR-02"],
       title="When MES is down the app retries at most twice per call and tells the user")
def unavailable_handled(ctx: CheckContext) -> Outcome:
    api = calls(ctx, *API)
    storm = retry_storm(api)
    if storm:
        return fail(f"{len(storm)} calls in a row met MES down ({where(storm[0])} to {where(storm[-1])}): "
                    f"at most {MAX_ATTEMPTS - 1} retries per call", *storm)
    failed = [e for e in api if transport_failed(e)]
    answers = [r for _, r in ctx.reports("mes.") if r.outcome is not ActionOutcome.REDIRECT]
    if not answers or answers[-1].outcome is not ActionOutcome.UNAVAILABLE:
        return fail(f"the app must tell the user MES is unavailable (outcome unavailable); it reported "
                    f"{describe(answers[-1]) if answers else 'nothing'}", *failed)
    return ok(f"{len(failed)} failed call(s), at most {MAX_ATTEMPTS} in a row per call; unavailability reported",
              *failed)


# -- referencing ---------------------------------------------------------------------------------------------
@check("mes.dossier_admissible", requirements=["MES-REF-01"],
       title="The referencing dossier is admissible: every mandatory criterion answered, with evidence")
def dossier_admissible(ctx: CheckContext) -> Outcome:
    submitted = _required(ctx, "referencing dossier", "dossier_submit")
    last = submitted[-1]
    if notes(last).status != "admissible":
        try:
            findings = json.loads(last.response_body or b"{}").get("findings", [])
        except ValueError:
            findings = []
        shown = "; ".join(f"line {f.get('line')}: {f.get('message')}" for f in findings[:5])
        return fail(f"the dossier submitted at {where(last)} is {notes(last).status or 'not admissible'}: "
                    f"{len(findings)} finding(s): {shown}", last)
    return ok("the dossier is admissible", last)


# -- one patient record: the DMP simulator is in the lab ------------------------------------------------------
@check("mes.document_in_dmp", requirements=["MES-DOC-02"],
       title="A document filed in Mon espace santé is filed in the citizen's DMP too")
def document_in_dmp(ctx: CheckContext) -> Outcome:
    filed = [(e, notes(e).dmp) for e in _required(ctx, "document", "document") if notes(e).created] or \
        stop(fail("MES filed no new document in this test case"))
    for exchange, dmp in filed:
        if dmp is None or dmp.status != 201:
            reason = "no filing noted" if dmp is None else dmp.skipped or dmp.error or \
                f"the DMP answered {dmp.status}: {dmp.answer}"
            return fail(f"document {where(exchange)} did not reach the DMP: {reason}", exchange)
    pushed = [e for e, _ in filed]
    ids = ", ".join(str((dmp.answer or {}).get("unique_id")) for _, dmp in filed if dmp is not None)
    return ok(f"{len(pushed)} document(s) filed in the DMP too (uniqueId {ids})", *pushed)
