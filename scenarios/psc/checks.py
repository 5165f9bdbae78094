"""Conformance checks of a software that integrates Pro Santé Connect, judged on what the simulated federator
journaled (each exchange's request and the simulator's notes: operation, client, authentication method,
error, token state) and on what the candidate reported. Requirement ids are declared in the PSC campaign
(``scenarios/psc/campaign.yaml``).

``psc.*`` checks judge the messages sent (discovery, authorization and token requests, CIBA, token
exchange, end session) and what the software did with the answers (refusing what it must not trust,
keying the professional on ``SubjectNameID``, refreshing before expiry, reporting failures).
"""

from __future__ import annotations

import itertools
import re
from urllib.parse import parse_qsl, urlsplit

from esante.harness.suite import (
    MAX_ATTEMPTS,
    ActionOutcome,
    ActionReport,
    CheckContext,
    Exchange,
    Outcome,
    SignInReport,
    StepObservation,
    check,
    describe,
    fail,
    form_of,
    last_report,
    moment,
    ok,
    required,
    retry_storm,
    stop,
    where,
)
from esante.simulators.psc.notes import PscNotes
from esante.simulators.psc.protocol import (
    ACR_EIDAS1,
    AUTHORIZE_PATH,
    CIBA_CHANNELS,
    CIBA_INTERVAL,
    CIBA_PATH,
    GRANT_CIBA,
    GRANT_CODE,
    GRANT_REFRESH,
    GRANT_TOKEN_EXCHANGE,
    INTROSPECT_PATH,
    JWKS_PATH,
    LOGIN_PATH,
    LOGOUT_PATH,
    REQUIRED_SCOPES,
    REVOKE_PATH,
    STANDARD_DISCOVERY_PATH,
    TOKEN_PATH,
    TOKEN_TYPE_ACCESS,
    USERINFO_PATH,
    WALLET_DISCOVERY_PATH,
    subject_of,
)

MIN_RANDOM_CHARS = 22  # 128 bits as base64url; 32 hex characters pass too
_PKCE_VALUE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
PSC = "Pro Santé Connect"


# -- reading what was observed -----------------------------------------------------------------------------
_OPERATIONS = {WALLET_DISCOVERY_PATH: "discovery", STANDARD_DISCOVERY_PATH: "discovery", JWKS_PATH: "jwks",
               AUTHORIZE_PATH: "authorize", LOGIN_PATH: "login", TOKEN_PATH: "token", USERINFO_PATH: "userinfo",
               INTROSPECT_PATH: "introspect", REVOKE_PATH: "revoke", LOGOUT_PATH: "logout", CIBA_PATH: "ciba_auth"}


def notes(exchange: Exchange) -> PscNotes:
    return PscNotes.read(exchange)


def operation(exchange: Exchange) -> str | None:
    """What the call was for: as the simulator noted it, else by its path (an injected fault answers before
    the protocol handler notes anything)."""
    return notes(exchange).operation or _OPERATIONS.get(exchange.path)


def _calls(ctx: CheckContext, *operations: str) -> list[Exchange]:
    return [e for e in ctx.of("psc") if operation(e) in operations]


def _required(ctx: CheckContext, what: str, *operations: str) -> list[Exchange]:
    return required(_calls(ctx, *operations), what, PSC)


def _grant_calls(ctx: CheckContext, grant_type: str) -> list[Exchange]:
    return [e for e in _calls(ctx, "token") if form_of(e).get("grant_type") == grant_type]


def _location_params(exchange: Exchange) -> dict[str, str]:
    location = next((v for k, v in exchange.response_headers if k.lower() == "location"), "")
    return dict(parse_qsl(urlsplit(location).query))


def _reports(ctx: CheckContext, action: str | None = None) -> list[tuple[StepObservation, ActionReport]]:
    return [(s, r) for s, r in ctx.reports("psc.") if action is None or s.action == action]


def _tampered_by(exchange: Exchange) -> list[str]:
    """The behaviours that bent the authorization response this call answered, if any."""
    response = notes(exchange).authorization_response
    return response.tampered if response else []


def _sign_ins(ctx: CheckContext) -> list[tuple[StepObservation, SignInReport]]:
    """The steps after which the software said a professional was signed in, with who."""
    return [(s, r) for s, r in _reports(ctx) if isinstance(r, SignInReport) and r.outcome is ActionOutcome.SIGNED_IN]


# -- discovery and the authorization request ---------------------------------------------------------------
@check("psc.discovery_used", requirements=["PSC-DISC-01"],
       title="Endpoints are read from PSC's discovery document before they are used")
def discovery_used(ctx: CheckContext) -> Outcome:
    calls = [e for e in ctx.of("psc") if operation(e) is not None]
    first_use = next((e for e in calls if operation(e) not in ("discovery", "login")), None)
    if first_use is None:
        asked = [e for e in calls if operation(e) == "discovery"]
        if asked:  # PSC failing: the software went no further than discovery, as it should
            return ok(f"only the discovery document was requested ({len(asked)} time(s))", *asked)
        return fail("the software used no PSC endpoint in this test case")
    discovered = [e for e in calls if operation(e) == "discovery" and e.status == 200
                  and e.request_seq < first_use.request_seq]
    if not discovered:
        return fail(f"the software called {where(first_use)} without having read the discovery document "
                    f"(/.well-known/wallet-openid-configuration) first: its endpoints are hard-coded", first_use)
    return ok(f"discovery read from {discovered[0].path} before the first use of an endpoint", discovered[0])


@check("psc.authorization_request", requirements=["PSC-AUTH-01"],
       title="The authorization request asks for a code, scopes openid and scope_all, and acr_values=eidas1")
def authorization_request(ctx: CheckContext) -> Outcome:
    problems = []
    calls = _required(ctx, "authorization request", "authorize")
    for exchange in calls:
        form = form_of(exchange)
        missing = [s for s in REQUIRED_SCOPES if s not in form.get("scope", "").split()]
        if form.get("response_type") != "code":
            problems.append(f"response_type is {form.get('response_type')!r}, not 'code'")
        if missing:
            problems.append(f"scope {form.get('scope')!r} lacks {' and '.join(missing)}")
        if form.get("acr_values") != ACR_EIDAS1:
            problems.append(f"acr_values is {form.get('acr_values')!r}: PSC requires {ACR_EIDAS1!r}")
        if notes(exchange).error:
            problems.append(f"PSC refused it with {notes(exchange).error}")
        if problems:
            return fail(f"authorization request {where(exchange)}: {'; '.join(problems)}", exchange)
    return ok(f"{len(calls)} authorization request(s) with response_type=code, scope openid scope_all, "
              f"acr_values={ACR_EIDAS1}", *calls)


@check("psc.pkce_s256", requirements=["PSC-AUTH-02"],
       title="Every authorization request uses PKCE with the S256 method")
def pkce_s256(ctx: CheckContext) -> Outcome:
    calls = _required(ctx, "authorization request", "authorize")
    for exchange in calls:
        form = form_of(exchange)
        method, challenge = form.get("code_challenge_method"), form.get("code_challenge")
        if challenge is None:
            return fail(f"authorization request {where(exchange)} has no code_challenge (PKCE)", exchange)
        if method != "S256":
            return fail(f"authorization request {where(exchange)} uses code_challenge_method {method or 'plain'}"
                        f" instead of S256: a plain challenge gives the verifier away", exchange)
        if not _PKCE_VALUE.match(challenge):
            return fail(f"authorization request {where(exchange)}: code_challenge is not a base64url SHA-256",
                        exchange)
    return ok(f"{len(calls)} authorization request(s) with a PKCE S256 challenge", *calls)


@check("psc.state_and_nonce", requirements=["PSC-AUTH-03"],
       title="Every authorization request carries a fresh, unguessable state and nonce")
def state_and_nonce(ctx: CheckContext) -> Outcome:
    calls = _required(ctx, "authorization request", "authorize")
    seen: dict[str, Exchange] = {}
    for exchange in calls:
        form = form_of(exchange)
        for name in ("state", "nonce"):
            value = form.get(name, "")
            if len(value) < MIN_RANDOM_CHARS:
                return fail(f"authorization request {where(exchange)}: {name} {value!r} is missing or too short "
                            f"to be unguessable (at least {MIN_RANDOM_CHARS} random characters)", exchange)
            if value in seen:
                return fail(f"authorization request {where(exchange)} reuses the {name} {value!r} of "
                            f"{where(seen[value])}: state and nonce must be new for every sign-in",
                            seen[value], exchange)
            seen[value] = exchange
    return ok(f"{len(calls)} authorization request(s), each with its own state and nonce", *calls)


@check("psc.token_request", requirements=["PSC-TOK-01"],
       title="The code is redeemed once, with client authentication, the same redirect_uri and the PKCE verifier")
def token_request(ctx: CheckContext) -> Outcome:
    calls = _grant_calls(ctx, GRANT_CODE) or stop(fail("no authorization code was redeemed at the token endpoint"))
    authorize = {form_of(e).get("redirect_uri") for e in _calls(ctx, "authorize")}
    codes: dict[str, Exchange] = {}
    for exchange in calls:
        form = form_of(exchange)
        noted = notes(exchange)
        if noted.error == "invalid_client" or not noted.client_auth:
            return fail(f"token request {where(exchange)}: the client did not authenticate as registered", exchange)
        if form.get("redirect_uri") not in authorize:
            return fail(f"token request {where(exchange)}: redirect_uri {form.get('redirect_uri')!r} is not the "
                        "one of the authorization request (RFC 6749 §4.1.3)", exchange)
        if not form.get("code_verifier"):
            return fail(f"token request {where(exchange)} has no code_verifier", exchange)
        code = form.get("code", "")
        if code in codes:
            return fail(f"token request {where(exchange)} redeems again the code of {where(codes[code])}",
                        codes[code], exchange)
        codes[code] = exchange
    methods = sorted({str(notes(e).client_auth) for e in calls})
    return ok(f"{len(calls)} code(s) redeemed once each ({', '.join(methods)}), with redirect_uri and verifier",
              *calls)


# -- what the software does with the answers ---------------------------------------------------------------
@check("psc.refuses_tampered_response", requirements=["PSC-SEC-01"],
       title="An authorization response or ID token that cannot be trusted is refused; no session is opened")
def refuses_tampered_response(ctx: CheckContext) -> Outcome:
    _, report = last_report(ctx, "psc.login")
    tampered = [e for e in _calls(ctx, "login", "authorize") if _tampered_by(e)]
    for exchange in tampered:
        code = _location_params(exchange).get("code")
        redeemed = [e for e in _grant_calls(ctx, GRANT_CODE)
                    if e.request_seq > exchange.request_seq and form_of(e).get("code") == code]
        if redeemed:
            return fail(f"the software redeemed the code of a tampered authorization response "
                        f"({', '.join(_tampered_by(exchange))}) at "
                        f"{where(redeemed[0])}: state and iss must be checked first", exchange, redeemed[0])
    if report.outcome is ActionOutcome.SIGNED_IN:
        evidence = tampered or _grant_calls(ctx, GRANT_CODE)
        return fail("the software opened a session from an answer it had to refuse "
                    f"(reported {describe(report)})", *evidence[-1:])
    if report.outcome not in (ActionOutcome.REFUSED, ActionOutcome.ERROR):
        return fail(f"the sign-in should be refused; the software reported {describe(report)}")
    return ok(f"the software refused the sign-in: {describe(report)}", *tampered)


@check("psc.identifier_is_subject_name_id", requirements=["PSC-ID-01"],
       title="The professional is identified by SubjectNameID, not by sub or e-mail")
def identifier_is_subject_name_id(ctx: CheckContext) -> Outcome:
    signed_in = _sign_ins(ctx)
    if not signed_in:
        return fail("the software reported no open session, so the identifier it keys on cannot be judged")
    for step, report in signed_in:
        expected = (step.params.get("professional") or {}).get("national_id")
        got = report.professional.user_id if report.professional else None
        if expected is None:
            continue
        if got != expected:
            professional = ctx.dataset.professional_by_national_id(expected)
            kind = ("PSC's sub" if got == subject_of(expected) else "the e-mail address"
                    if got == professional.email else "another value")
            return fail(f"step {step.index + 1}: the software keys the professional on {kind} ({got!r}); it must "
                        f"key on SubjectNameID {expected!r}")
    return ok(f"{len(signed_in)} session(s) keyed on SubjectNameID")


@check("psc.jwks_refreshed_on_rotation", requirements=["PSC-KEY-01"],
       title="After PSC rotates its signing key, the software fetches the JWKS again and accepts the new key")
def jwks_refreshed_on_rotation(ctx: CheckContext) -> Outcome:
    rotation = next((e for e in _calls(ctx, "token") if notes(e).rotated_to_kid), None)
    if rotation is None:
        return fail("PSC did not rotate its key in this test case: nothing to judge (check the preconditions)")
    refetched = [e for e in _calls(ctx, "jwks") if e.request_seq > rotation.request_seq]
    # the sign-in that met the new key is the last one (step records and exchanges are not comparable by seq:
    # a container's exchanges are imported into the run's store after the steps)
    _, last = last_report(ctx, "psc.login")
    if not refetched:
        return fail(f"PSC signed with a new key (kid {notes(rotation).rotated_to_kid}) at {where(rotation)}, "
                    "and the software never fetched the JWKS again", rotation)
    if last.outcome is not ActionOutcome.SIGNED_IN:
        return fail(f"the software fetched the new keys but did not complete the sign-in: {describe(last)}",
                    rotation, refetched[0])
    return ok(f"JWKS fetched again at {where(refetched[0])} after the rotation; sign-in completed",
              rotation, refetched[0])


@check("psc.jwks_cached", requirements=["PSC-KEY-02"],
       title="The JWKS is cached: it is not fetched again for every sign-in while its keys do not change")
def jwks_cached(ctx: CheckContext) -> Outcome:
    fetches = _calls(ctx, "jwks")
    sign_ins = _sign_ins(ctx)
    rotations = sum(1 for e in _calls(ctx, "token") if notes(e).rotated_to_kid)
    if len(sign_ins) < 2:
        return fail(f"judging the cache needs two sign-ins; the software completed {len(sign_ins)}")
    allowed = 1 + rotations
    if len(fetches) > allowed:
        return fail(f"the software fetched the JWKS {len(fetches)} times for {len(sign_ins)} sign-ins with "
                    f"unchanged keys (at most {allowed} expected)", *fetches)
    return ok(f"JWKS fetched {len(fetches)} time(s) for {len(sign_ins)} sign-ins", *fetches)


@check("psc.refresh_before_expiry", requirements=["PSC-TOK-02"],
       title="The access token is refreshed before it expires; an expired token is never presented")
def refresh_before_expiry(ctx: CheckContext) -> Outcome:
    uses = _calls(ctx, "userinfo")
    expired = [e for e in uses if notes(e).token_state == "expired"]
    if expired:
        late = -float(notes(expired[0]).token_expires_in or 0)
        return fail(f"the software presented an access token {late:.1f} s after it expired at "
                    f"{where(expired[0])}: it must refresh before the expiry it was told (expires_in)", expired[0])
    refreshes = _grant_calls(ctx, GRANT_REFRESH)
    if not refreshes:
        return fail("the access token expired during the test case and the software never refreshed it")
    _, report = last_report(ctx, "psc.show_profile")
    if report.outcome is not ActionOutcome.SIGNED_IN:
        return fail(f"after refreshing, the software should still show the profile; it reported {describe(report)}")
    return ok(f"refreshed at {where(refreshes[0])}; no expired token presented", *refreshes)


@check("psc.reported_outcome", requirements=["PSC-ERR-01"],
       title="The software tells the user what happened (unavailable service, refusal, session over)")
def reported_outcome(ctx: CheckContext) -> Outcome:
    expected = str(ctx.params.get("outcome", ""))
    action = ctx.params.get("action")
    step, report = last_report(ctx, str(action)) if action else last_report(ctx, "psc.", "any PSC action")
    if report.outcome.value != expected:
        return fail(f"step {step.index + 1} ({step.action}): expected outcome {expected}, the software reported "
                    f"{describe(report)}")
    code = ctx.params.get("error_code")
    if code and report.error_code != code:
        return fail(f"step {step.index + 1} ({step.action}): expected error code {code}, got {report.error_code}")
    return ok(f"step {step.index + 1} ({step.action}) reported {describe(report)}")


@check("psc.no_retry_storm", requirements=["PSC-ERR-02"],
       title="When PSC fails, the software retries at most twice per call")
def no_retry_storm(ctx: CheckContext) -> Outcome:
    calls = ctx.of("psc") or stop(fail("the software did not try to reach PSC"))
    run = retry_storm(calls)
    if run:
        return fail(f"the software called {run[0].path} {len(run)} times in a row while PSC failed "
                    f"(at most {MAX_ATTEMPTS}: one call and two retries)", *run)
    return ok(f"{len(calls)} call(s) to PSC, no retry storm")


@check("psc.logout_both", requirements=["PSC-OUT-01"],
       title="On a user's click, the software ends its session and PSC's (end session with id_token_hint)")
def logout_both(ctx: CheckContext) -> Outcome:
    _, report = last_report(ctx, "psc.logout")
    calls = _calls(ctx, "logout")
    if not calls:
        return fail(f"no end-session request reached PSC: the software closed only its own session "
                    f"(reported {describe(report)}); the professional stays signed in at PSC")
    exchange = calls[-1]
    form = form_of(exchange)
    noted = notes(exchange)
    if not form.get("id_token_hint") or noted.error:
        return fail(f"end session {where(exchange)}: {noted.error or 'no id_token_hint'}; PSC "
                    "cannot tell which session to end", exchange)
    if not noted.ended_session:
        return fail(f"end session {where(exchange)} ended no PSC session", exchange)
    if report.outcome is not ActionOutcome.SIGNED_OUT:
        return fail(f"PSC's session ended, but the software reported {describe(report)}", exchange)
    return ok(f"PSC session ended at {where(exchange)} and the software signed out", exchange)


# -- CIBA and token exchange -------------------------------------------------------------------------------
@check("psc.ciba_request", requirements=["PSC-CIBA-01"],
       title="The CIBA request names the professional, shows a binding message, and authenticates the client")
def ciba_request(ctx: CheckContext) -> Outcome:
    calls = _required(ctx, "CIBA authentication request", "ciba_auth")
    steps = _reports(ctx, "psc.ciba_login")
    expected = (steps[-1][0].params.get("professional") or {}).get("national_id") if steps else None
    for exchange in calls:
        form = form_of(exchange)
        problems = []
        if expected and form.get("login_hint") != expected:
            problems.append(f"login_hint {form.get('login_hint')!r} is not the professional's national id "
                            f"{expected!r}")
        if not form.get("binding_message"):
            problems.append("no binding_message: the professional cannot tell this request from another")
        if form.get("channel") not in CIBA_CHANNELS:
            problems.append(f"channel {form.get('channel')!r} is not one of {', '.join(CIBA_CHANNELS)}")
        if not {"openid", "scope_all"} <= set(form.get("scope", "").split()):
            problems.append(f"scope {form.get('scope')!r} lacks openid scope_all")
        if form.get("acr_values") != ACR_EIDAS1:
            problems.append(f"acr_values is {form.get('acr_values')!r}, not {ACR_EIDAS1}")
        if not notes(exchange).client_auth:
            problems.append("the intermediary server did not authenticate as a client")
        if problems:
            return fail(f"CIBA request {where(exchange)}: {'; '.join(problems)}", exchange)
    return ok(f"{len(calls)} CIBA request(s) well formed", *calls)


@check("psc.ciba_polling", requirements=["PSC-CIBA-02"],
       title="CIBA polling respects the interval and stops at the final answer")
def ciba_polling(ctx: CheckContext) -> Outcome:
    polls = _grant_calls(ctx, GRANT_CIBA) or stop(fail("the software never polled the token endpoint for CIBA"))
    for previous, current in itertools.pairwise(polls):
        gap = (moment(current) - moment(previous)).total_seconds()
        if gap < CIBA_INTERVAL * 0.8:
            return fail(f"poll at {where(current)} came {gap:.2f} s after the previous one; the interval is "
                        f"{CIBA_INTERVAL} s", previous, current)
        if notes(previous).error not in ("authorization_pending", "slow_down"):
            return fail(f"the software polled again at {where(current)} after the final answer "
                        f"({notes(previous).error or 'tokens'})", previous, current)
    return ok(f"{len(polls)} poll(s), spaced by the interval, ending at the final answer", *polls)


@check("psc.token_exchange", requirements=["PSC-API-01"],
       title="API Pro Santé connectées: the PSC token is exchanged (RFC 8693) over mTLS with a structure certificate")
def token_exchange(ctx: CheckContext) -> Outcome:
    calls = _grant_calls(ctx, GRANT_TOKEN_EXCHANGE) or stop(fail("the software made no token exchange"))
    exchange = calls[-1]
    form = form_of(exchange)
    if exchange.client_cert_subject is None:
        return fail(f"token exchange {where(exchange)} was made without a client certificate: the API token "
                    "must be bound to the structure's certificate (RFC 8705)", exchange)
    if form.get("subject_token_type") != TOKEN_TYPE_ACCESS or not form.get("subject_token"):
        return fail(f"token exchange {where(exchange)}: subject_token must be the PSC access token, typed "
                    f"{TOKEN_TYPE_ACCESS}", exchange)
    if exchange.status != 200:
        noted = notes(exchange)
        return fail(f"PSC refused the token exchange {where(exchange)}: {noted.error} "
                    f"{noted.error_description or ''}", exchange)
    _, report = last_report(ctx, "psc.call_api")
    if report.outcome is not ActionOutcome.COMPLETED:
        return fail(f"the exchange succeeded but the software reported {describe(report)}", exchange)
    return ok(f"token exchanged at {where(exchange)} with certificate {exchange.client_cert_subject}", exchange)
