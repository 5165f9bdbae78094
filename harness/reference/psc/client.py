"""The reference candidate's Pro Santé Connect client: what a correct relying party does.

* endpoints come from PSC's discovery document (``/.well-known/wallet-openid-configuration``), never built,
  and the document must name the issuer it was fetched for;
* every sign-in has a fresh ``state`` and ``nonce`` (64 hex characters, as the ANS connector expects) and a
  PKCE S256 verifier; ``acr_values=eidas1``, scopes ``openid scope_all``;
* the authorization response is checked (``iss`` per RFC 9207, ``state``) *before* the code is redeemed;
* the ID token's signature is verified with the JWKS key of its ``kid`` (the JWKS is cached, and fetched
  again once for an unknown ``kid``), then its claims and its ``at_hash`` (:mod:`.tokens`);
* userinfo must speak of the ID token's ``sub`` and name the professional's ``SubjectNameID``;
* the access token is refreshed before it expires; a refused refresh ends the session;
* logout ends PSC's session too (end session with ``id_token_hint`` and a post-logout URI);
* CIBA polls at the interval PSC gives; the token exchange of the "API Pro Santé connectées" is made over
  mutual TLS with the structure's certificate;
* a PSC that fails is retried once, then reported unavailable.

Each named defect (``defects.yaml``, campaign ``psc``) bends exactly one of these rules. The client shares no
code with the checks that judge it: a candidate must not reuse the judge's parser.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from joserfc.jwk import KeySet

from esante.harness.reference.defects import Defects
from esante.harness.reference.psc.tokens import (
    ACR,
    IdTokenRules,
    PscError,
    PscRefused,
    check_id_token_claims,
    jwt_header,
    new_verifier,
    s256_challenge,
    unverified_claims,
    verified_claims,
)
from esante.harness.reference.psc.transport import PscHttp

REALM_PATH = "/auth/realms/esante-wallet"
DISCOVERY_PATH = f"{REALM_PATH}/.well-known/wallet-openid-configuration"
SCOPE = "openid scope_all"
REFRESH_MARGIN = 10.0  # seconds; also at least a quarter of the lifetime
CIBA_DEFAULT_INTERVAL = 5.0  # CIBA Core §7.3, when PSC gives none
CIBA_SLOW_DOWN = 5.0  # CIBA Core §11: slow_down adds 5 s to the interval
MAX_PENDING_LOGINS = 16  # a user who opens many sign-in tabs; older ones are forgotten
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(slots=True)
class PendingLogin:
    state: str
    nonce: str
    verifier: str
    redirect_uri: str


@dataclass(slots=True)
class Session:
    access_token: str
    refresh_token: str | None
    id_token: str
    subject: str  # the ID token's sub: every later answer must be about the same person
    expires_at: float
    lifetime: float
    claims: dict[str, Any] = field(default_factory=dict)  # userinfo


class PscClient:
    """One relying party registration (client id + secret) talking to one PSC."""

    def __init__(self, base_url: str, *, client_id: str, secret: str, ca_pem: bytes | None, defects: Defects,
                 timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id, self.secret, self.defects = client_id, secret, defects
        self.http = PscHttp(ca_pem, storm=defects.on("psc_retry_storm"), timeout=timeout, transport=transport)
        self._discovery: dict[str, Any] | None = None
        self._jwks: KeySet | None = None

    def close(self) -> None:
        self.http.close()

    def _token_call(self, form: dict[str, str], cert: tuple[Path, Path] | None = None) -> dict[str, Any]:
        """The token endpoint, with client_secret_basic as registered."""
        return self.http.post_json(self.endpoint("token_endpoint"), form, (self.client_id, self.secret), cert)

    # -- discovery and keys -----------------------------------------------------------------------------------
    @property
    def expected_issuer(self) -> str:
        return f"{self.base_url}{REALM_PATH}"

    def discovery(self) -> dict[str, Any]:
        """The discovery document, read once per reset; its issuer must be the one it was fetched for (OpenID
        Connect Discovery §4.3), or an impostor's document could redirect every call."""
        if self._discovery is None:
            if self.defects.on("psc_hardcoded_endpoints"):
                self._discovery = self._hardcoded()
                return self._discovery
            document = self.http.get_json(f"{self.base_url}{DISCOVERY_PATH}")
            if document.get("issuer") != self.expected_issuer:
                raise PscRefused(f"the discovery document names issuer {document.get('issuer')!r}, not "
                                 f"{self.expected_issuer!r}")
            self._discovery = document
        return self._discovery

    def _hardcoded(self) -> dict[str, Any]:
        """The psc_hardcoded_endpoints defect: the right URLs, but written in the code."""
        oidc = f"{self.expected_issuer}/protocol/openid-connect"
        return {"issuer": self.expected_issuer, "authorization_endpoint": f"{self.base_url}/wallet/auth",
                "token_endpoint": f"{oidc}/token", "userinfo_endpoint": f"{oidc}/userinfo",
                "jwks_uri": f"{oidc}/certs", "end_session_endpoint": f"{oidc}/logout",
                "backchannel_authentication_endpoint": f"{oidc}/ext/ciba/auth"}

    def endpoint(self, name: str) -> str:
        value = self.discovery().get(name)
        if not isinstance(value, str) or not value:
            raise PscError("invalid_discovery", f"the discovery document has no {name}")
        return value

    def keys_for(self, kid: str | None) -> KeySet:
        """The cached JWKS, fetched on first use and once more when it lacks ``kid`` (PSC rotated its key)."""
        cached = self._jwks
        known = cached is not None and (kid is None or any(k.kid == kid for k in cached.keys))
        if cached is None or self.defects.on("psc_jwks_every_login") or \
                (not known and not self.defects.on("psc_jwks_never_refreshed")):
            data = self.http.get_json(self.endpoint("jwks_uri"))
            try:
                self._jwks = KeySet.import_key_set(data)  # type: ignore[arg-type]
            except (ValueError, KeyError, TypeError) as exc:
                raise PscError("invalid_response", f"PSC's JWKS cannot be read: {exc}") from None
        assert self._jwks is not None
        return self._jwks

    # -- authorization code flow -----------------------------------------------------------------------------
    def begin_login(self, redirect_uri: str) -> tuple[str, PendingLogin]:
        static = self.defects.on("psc_static_state_nonce")
        pending = PendingLogin(state="esante-reference-state-0001" if static else secrets.token_hex(32),
                               nonce="esante-reference-nonce-0001" if static else secrets.token_hex(32),
                               verifier=new_verifier(), redirect_uri=redirect_uri)
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                  "scope": SCOPE, "state": pending.state, "nonce": pending.nonce}
        if not self.defects.on("psc_no_acr_values"):
            params["acr_values"] = ACR
        if self.defects.on("psc_pkce_plain"):
            params |= {"code_challenge": pending.verifier, "code_challenge_method": "plain"}
        else:
            params |= {"code_challenge": s256_challenge(pending.verifier), "code_challenge_method": "S256"}
        return f"{self.endpoint('authorization_endpoint')}?{urlencode(params)}", pending

    def complete_login(self, callback_url: str, pending: dict[str, PendingLogin]) -> Session:
        """Check the authorization response, redeem the code, verify the ID token, read userinfo."""
        answer = dict(parse_qsl(urlsplit(callback_url).query))
        login = self._matching_login(answer, pending)
        if "error" in answer:
            raise PscError(answer["error"], answer.get("error_description", ""))
        if not answer.get("code"):
            raise PscError("invalid_response", "the authorization response has no code")
        form = {"grant_type": "authorization_code", "code": answer["code"], "code_verifier": login.verifier}
        if not self.defects.on("psc_token_without_redirect_uri"):
            form["redirect_uri"] = login.redirect_uri
        requested_at = time.time()
        tokens = self._token_call(form)
        claims = self.check_id_token(tokens, login.nonce)
        return self._session(tokens, requested_at, subject=str(claims.get("sub")))

    def _matching_login(self, answer: dict[str, str], pending: dict[str, PendingLogin]) -> PendingLogin:
        """RFC 9207 then CSRF: the answer must come from PSC's issuer and belong to a sign-in in progress."""
        if not self.defects.on("psc_ignores_iss") and answer.get("iss") != self.endpoint("issuer"):
            raise PscRefused(f"the authorization response comes from issuer {answer.get('iss')!r}, not "
                             f"{self.endpoint('issuer')!r} (mix-up attack?)")
        login = pending.pop(answer.get("state", ""), None)
        if login is not None:
            return login
        if self.defects.on("psc_ignores_state") and pending:
            return pending.pop(next(iter(pending)))
        raise PscRefused("the authorization response's state matches no sign-in in progress (forged or replayed)")

    def check_id_token(self, tokens: dict[str, Any], nonce: str | None) -> dict[str, Any]:
        """The ID token of a token answer: signature (by kid, RS256), then claims, at_hash included; the
        defects switch single rules off."""
        token = str(tokens.get("id_token") or "")
        if not token:
            raise PscRefused("PSC's token answer holds no ID token")
        try:
            claims = verified_claims(token, self.keys_for(jwt_header(token).get("kid")))
        except (PscRefused, ValueError) as exc:
            if not self.defects.on("psc_no_signature_check"):
                raise PscRefused(str(exc)) from None
            claims = self._trusted_anyway(token)
        rules = IdTokenRules(issuer=self.endpoint("issuer"), client_id=self.client_id, nonce=nonce,
                             access_token=str(tokens.get("access_token") or ""),
                             check_audience=not self.defects.on("psc_ignores_audience"),
                             check_nonce=not self.defects.on("psc_ignores_nonce"),
                             check_acr=not self.defects.on("psc_ignores_acr"),
                             check_at_hash=not self.defects.on("psc_ignores_at_hash"))
        check_id_token_claims(claims, rules, time.time())
        return claims

    @staticmethod
    def _trusted_anyway(token: str) -> dict[str, Any]:
        """The psc_no_signature_check defect: the payload is believed whatever its signature."""
        try:
            return unverified_claims(token)
        except ValueError as exc:
            raise PscRefused(f"the ID token cannot be read: {exc}") from None

    def _session(self, tokens: dict[str, Any], requested_at: float, *, subject: str,
                 id_token: str = "") -> Session:
        """A session from a token answer; its expiry counts from the request, to err on the early side."""
        if not tokens.get("access_token"):
            raise PscError("invalid_response", "PSC's token answer holds no access token")
        lifetime = float(tokens.get("expires_in", 60))
        session = Session(access_token=str(tokens["access_token"]), refresh_token=tokens.get("refresh_token"),
                          id_token=str(tokens.get("id_token") or id_token), subject=subject, lifetime=lifetime,
                          expires_at=requested_at + lifetime)
        session.claims = self.userinfo(session)
        return session

    # -- using the session ----------------------------------------------------------------------------------
    def userinfo(self, session: Session) -> dict[str, Any]:
        """Userinfo as JSON; it must be about the ID token's subject (OpenID Connect Core §5.3.2)."""
        claims = self.http.get_json(self.endpoint("userinfo_endpoint"),
                                    headers={"Authorization": f"Bearer {session.access_token}",
                                             "Accept": "application/json"})
        if claims.get("sub") != session.subject:
            raise PscRefused(f"userinfo speaks of {claims.get('sub')!r}, not of the signed-in {session.subject!r}")
        if not claims.get("SubjectNameID"):
            raise PscRefused("userinfo does not name the professional (no SubjectNameID)")
        return claims

    def needs_refresh(self, session: Session) -> bool:
        margin = max(REFRESH_MARGIN, session.lifetime / 4)
        return time.time() > session.expires_at - margin

    def refresh(self, session: Session) -> Session:
        """A refresh grant; a new ID token, if any, is checked like the first (OpenID Connect Core §12.2)."""
        if not session.refresh_token:
            raise PscError("invalid_grant", "no refresh token")
        requested_at = time.time()
        tokens = self._token_call({"grant_type": "refresh_token", "refresh_token": session.refresh_token})
        if tokens.get("id_token"):
            claims = self.check_id_token(tokens, None)
            if claims.get("sub") != session.subject:
                raise PscRefused("the refreshed ID token is about another professional")
        return self._session(tokens, requested_at, subject=session.subject, id_token=session.id_token)

    def logout_url(self, session: Session, post_logout_uri: str, state: str) -> str:
        params = {"id_token_hint": session.id_token, "post_logout_redirect_uri": post_logout_uri, "state": state}
        return f"{self.endpoint('end_session_endpoint')}?{urlencode(params)}"

    # -- CIBA and token exchange -----------------------------------------------------------------------------
    def ciba_login(self, national_id: str, channel: str) -> Session:
        """CIBA in poll mode: the professional approves on the e-CPS app while we poll the token endpoint."""
        form = {"scope": SCOPE, "acr_values": ACR, "login_hint": national_id, "channel": channel}
        if not self.defects.on("psc_ciba_no_binding_message"):
            form["binding_message"] = f"{secrets.randbelow(100):02d}"  # shown on the app and in the software
        started = self.http.post_json(self.endpoint("backchannel_authentication_endpoint"), form,
                                      (self.client_id, self.secret))
        if not started.get("auth_req_id"):
            raise PscError("invalid_response", "PSC's CIBA answer holds no auth_req_id")
        tokens, requested_at = self._poll(str(started["auth_req_id"]),
                                          float(started.get("interval") or CIBA_DEFAULT_INTERVAL),
                                          time.time() + float(started.get("expires_in") or 120))
        claims = self.check_id_token(tokens, None)
        return self._session(tokens, requested_at, subject=str(claims.get("sub")))

    def _poll(self, auth_req_id: str, interval: float, deadline: float) -> tuple[dict[str, Any], float]:
        fast = self.defects.on("psc_ciba_fast_poll")
        while time.time() < deadline:
            time.sleep(0.1 if fast else interval)
            requested_at = time.time()
            try:
                return self._token_call({"grant_type": CIBA_GRANT, "auth_req_id": auth_req_id}), requested_at
            except PscError as exc:
                if exc.error == "slow_down" and not fast:
                    interval += CIBA_SLOW_DOWN
                elif exc.error not in ("authorization_pending", "slow_down"):
                    raise
        raise PscError("expired_token", "the professional did not answer in time")

    def token_exchange(self, session: Session, cert: tuple[Path, Path] | None) -> dict[str, Any]:
        """RFC 8693 at the token endpoint, over mutual TLS with ``cert`` so that the API token is bound to it."""
        form = {"grant_type": TOKEN_EXCHANGE_GRANT, "subject_token": session.access_token,
                "subject_token_type": ACCESS_TOKEN_TYPE}
        return self._token_call(form, cert)
