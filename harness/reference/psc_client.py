"""The reference candidate's Pro Santé Connect client: what a correct relying party does.

* endpoints come from PSC's discovery document (``/.well-known/wallet-openid-configuration``), never built;
* every sign-in has a fresh ``state``, ``nonce`` (64 hex characters, as the ANS connector expects) and PKCE
  S256 verifier; ``acr_values=eidas1``, scopes ``openid scope_all``;
* the authorization response is checked (``iss`` per RFC 9207, ``state``) *before* the code is redeemed;
* the ID token's signature is verified with the JWKS key of its ``kid`` (the JWKS is cached and fetched
  again once for an unknown ``kid``), then ``iss``, ``aud``/``azp``, ``exp``, ``nonce`` and ``acr``;
* the professional is keyed on userinfo's ``SubjectNameID``;
* the access token is refreshed before it expires; a refused refresh ends the session;
* logout ends PSC's session too (end session with ``id_token_hint`` and a post-logout URI);
* CIBA polls at the interval PSC gives; the token exchange of the "API Pro Santé connectées" is made over
  mutual TLS with the structure's certificate;
* a PSC that fails is retried once, then reported unavailable.

Each named defect (``defects.yaml``, campaign ``psc``) bends exactly one of these rules. The client shares no
code with the checks that judge it: a candidate must not reuse the judge's parser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from harness.reference.defects import Defects
from simulators.core.pki import client_ssl_context

REALM_PATH = "/auth/realms/esante-wallet"
SCOPE = "openid scope_all"
ACR = "eidas1"
REFRESH_MARGIN = 10.0  # seconds; also at least a quarter of the lifetime
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class PscUnavailable(Exception):
    """PSC could not be reached, or answered 5xx, after the retry."""


class PscRefused(Exception):
    """An answer the software must not trust (tampered response, invalid ID token)."""


class PscError(Exception):
    """PSC answered an OAuth error."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error


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
    expires_at: float
    lifetime: float
    claims: dict[str, Any] = field(default_factory=dict)  # userinfo


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class PscClient:
    """One relying party registration (client id + secret) talking to one PSC."""

    def __init__(self, base_url: str, *, client_id: str, secret: str, ca_pem: bytes | None,
                 defects: Defects, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id, self.secret, self.defects = client_id, secret, defects
        self.ca_pem = ca_pem
        verify = client_ssl_context(ca_pem) if ca_pem is not None else True
        self.http = httpx.Client(verify=verify, timeout=timeout)
        self._discovery: dict[str, Any] | None = None
        self._jwks: KeySet | None = None

    def close(self) -> None:
        self.http.close()

    # -- transport -------------------------------------------------------------------------------------------
    def _send(self, method: str, url: str, *, client: httpx.Client | None = None, **kwargs: Any) -> httpx.Response:
        """One call, retried once on failure (ten times, at once, under the retry-storm defect)."""
        attempts = 10 if self.defects.on("psc_retry_storm") else 2
        problem = ""
        for attempt in range(attempts):
            if attempt and not self.defects.on("psc_retry_storm"):
                time.sleep(0.5)
            try:
                response = (client or self.http).request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 500:
                return response
            problem = f"HTTP {response.status_code} from {url}"
        raise PscUnavailable(f"Pro Santé Connect is unavailable ({problem})")

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise PscError("invalid_response", f"PSC answered something that is not JSON (HTTP "
                                               f"{response.status_code})") from None
        if response.status_code >= 400 or not isinstance(data, dict):
            error = data.get("error", "invalid_response") if isinstance(data, dict) else "invalid_response"
            raise PscError(str(error), str(data.get("error_description", "")) if isinstance(data, dict) else "")
        return data

    def _token_call(self, form: dict[str, str], client: httpx.Client | None = None) -> dict[str, Any]:
        auth = (self.client_id, self.secret)
        return self._json(self._send("POST", self.endpoint("token_endpoint"), data=form, auth=auth, client=client))

    # -- discovery and keys -----------------------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            if self.defects.on("psc_hardcoded_endpoints"):
                self._discovery = self._hardcoded()
            else:
                url = f"{self.base_url}{REALM_PATH}/.well-known/wallet-openid-configuration"
                self._discovery = self._json(self._send("GET", url))
        return self._discovery

    def _hardcoded(self) -> dict[str, Any]:
        """The psc_hardcoded_endpoints defect: the right URLs, but written in the code."""
        oidc = f"{self.base_url}{REALM_PATH}/protocol/openid-connect"
        return {"issuer": f"{self.base_url}{REALM_PATH}", "authorization_endpoint": f"{self.base_url}/wallet/auth",
                "token_endpoint": f"{oidc}/token", "userinfo_endpoint": f"{oidc}/userinfo",
                "jwks_uri": f"{oidc}/certs", "end_session_endpoint": f"{oidc}/logout",
                "backchannel_authentication_endpoint": f"{oidc}/ext/ciba/auth"}

    def endpoint(self, name: str) -> str:
        value = self.discovery().get(name)
        if not isinstance(value, str):
            raise PscError("invalid_discovery", f"the discovery document has no {name}")
        return value

    def _keys(self, kid: str | None) -> KeySet:
        known = self._jwks is not None and any(k.kid == kid for k in self._jwks.keys)
        refetch = self._jwks is None or self.defects.on("psc_jwks_every_login") or \
            (not known and not self.defects.on("psc_jwks_never_refreshed"))
        if refetch:
            data = self._json(self._send("GET", self.endpoint("jwks_uri")))
            self._jwks = KeySet.import_key_set(data)  # type: ignore[arg-type]
        assert self._jwks is not None
        return self._jwks

    # -- authorization code flow -----------------------------------------------------------------------------
    def begin_login(self, redirect_uri: str) -> tuple[str, PendingLogin]:
        static = self.defects.on("psc_static_state_nonce")
        verifier = secrets.token_urlsafe(48)
        pending = PendingLogin(state="esante-reference-state-0001" if static else secrets.token_urlsafe(32),
                               nonce="esante-reference-nonce-0001" if static else secrets.token_hex(32),
                               verifier=verifier, redirect_uri=redirect_uri)
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
                  "scope": SCOPE, "state": pending.state, "nonce": pending.nonce}
        if not self.defects.on("psc_no_acr_values"):
            params["acr_values"] = ACR
        if self.defects.on("psc_pkce_plain"):
            params |= {"code_challenge": verifier, "code_challenge_method": "plain"}
        else:
            params |= {"code_challenge": _s256(verifier), "code_challenge_method": "S256"}
        return f"{self.endpoint('authorization_endpoint')}?{urlencode(params)}", pending

    def complete_login(self, callback_url: str, pending: dict[str, PendingLogin]) -> Session:
        """Check the authorization response, redeem the code, verify the ID token, read userinfo."""
        answer = dict(parse_qsl(urlsplit(callback_url).query))
        if "error" in answer:
            raise PscError(answer["error"], answer.get("error_description", ""))
        if not self.defects.on("psc_ignores_iss") and answer.get("iss") != self.endpoint("issuer"):
            raise PscRefused(f"the authorization response comes from issuer {answer.get('iss')!r}, not "
                             f"{self.endpoint('issuer')!r} (mix-up)")
        login = pending.pop(answer.get("state", ""), None)
        if login is None:
            if not self.defects.on("psc_ignores_state") or not pending:
                raise PscRefused("the authorization response's state matches no sign-in in progress")
            login = pending.pop(next(iter(pending)))
        if not answer.get("code"):
            raise PscError("invalid_response", "the authorization response has no code")
        form = {"grant_type": "authorization_code", "code": answer["code"], "code_verifier": login.verifier}
        if not self.defects.on("psc_token_without_redirect_uri"):
            form["redirect_uri"] = login.redirect_uri
        tokens = self._token_call(form)
        self._check_id_token(str(tokens.get("id_token", "")), login.nonce)
        return self._session(tokens)

    def _session(self, tokens: dict[str, Any], id_token: str | None = None) -> Session:
        lifetime = float(tokens.get("expires_in", 60))
        session = Session(access_token=str(tokens["access_token"]), refresh_token=tokens.get("refresh_token"),
                          id_token=str(tokens.get("id_token") or id_token or ""), lifetime=lifetime,
                          expires_at=time.time() + lifetime)
        session.claims = self.userinfo(session)
        return session

    def _check_id_token(self, token: str, nonce: str | None) -> dict[str, Any]:
        try:
            header = _header(token)
            claims = dict(jwt.decode(token, self._keys(header.get("kid")), algorithms=["RS256"]).claims)
        except (JoseError, ValueError) as exc:
            if not self.defects.on("psc_no_signature_check"):
                raise PscRefused(f"the ID token's signature does not verify with PSC's keys: {exc}") from None
            claims = _unverified_claims(token)
        now = time.time()
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if claims.get("iss") != self.endpoint("issuer"):
            raise PscRefused(f"the ID token's iss {claims.get('iss')!r} is not PSC's issuer")
        if not self.defects.on("psc_ignores_audience") and (
                self.client_id not in audiences or claims.get("azp", self.client_id) != self.client_id):
            raise PscRefused(f"the ID token is issued to {audience!r}, not to this software")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now - 30:
            raise PscRefused("the ID token is expired")
        if nonce is not None and not self.defects.on("psc_ignores_nonce") and claims.get("nonce") != nonce:
            raise PscRefused("the ID token's nonce is not the one of this sign-in (replay)")
        if not self.defects.on("psc_ignores_acr") and claims.get("acr") != ACR:
            raise PscRefused(f"the ID token's acr is {claims.get('acr')!r}: PSC sign-ins must reach {ACR}")
        return claims

    # -- using the session ----------------------------------------------------------------------------------
    def userinfo(self, session: Session) -> dict[str, Any]:
        response = self._send("GET", self.endpoint("userinfo_endpoint"),
                              headers={"Authorization": f"Bearer {session.access_token}"})
        return self._json(response)

    def needs_refresh(self, session: Session) -> bool:
        margin = max(REFRESH_MARGIN, session.lifetime / 4)
        return time.time() > session.expires_at - margin

    def refresh(self, session: Session) -> Session:
        if not session.refresh_token:
            raise PscError("invalid_grant", "no refresh token")
        tokens = self._token_call({"grant_type": "refresh_token", "refresh_token": session.refresh_token})
        return self._session(tokens, id_token=session.id_token)

    def logout_url(self, session: Session, post_logout_uri: str, state: str) -> str:
        params = {"id_token_hint": session.id_token, "post_logout_redirect_uri": post_logout_uri, "state": state}
        return f"{self.endpoint('end_session_endpoint')}?{urlencode(params)}"

    # -- CIBA and token exchange -----------------------------------------------------------------------------
    def ciba_login(self, national_id: str, channel: str) -> Session:
        form = {"scope": SCOPE, "acr_values": ACR, "login_hint": national_id, "channel": channel}
        if not self.defects.on("psc_ciba_no_binding_message"):
            form["binding_message"] = f"{secrets.randbelow(100):02d}"
        started = self._json(self._send("POST", self.endpoint("backchannel_authentication_endpoint"),
                                        data=form, auth=(self.client_id, self.secret)))
        interval = float(started.get("interval", 5))
        deadline = time.time() + float(started.get("expires_in", 120))
        fast = self.defects.on("psc_ciba_fast_poll")
        while time.time() < deadline:
            time.sleep(0.1 if fast else interval)
            try:
                tokens = self._token_call({"grant_type": CIBA_GRANT, "auth_req_id": str(started["auth_req_id"])})
            except PscError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += 0 if fast else 5
                    continue
                raise
            self._check_id_token(str(tokens.get("id_token", "")), None)
            return self._session(tokens)
        raise PscError("expired_token", "the professional did not answer in time")

    def token_exchange(self, session: Session, cert: tuple[Path, Path] | None) -> dict[str, Any]:
        form = {"grant_type": TOKEN_EXCHANGE_GRANT, "subject_token": session.access_token,
                "subject_token_type": ACCESS_TOKEN_TYPE}
        if cert is None or self.ca_pem is None:
            return self._token_call(form)
        context = client_ssl_context(self.ca_pem, (cert[0], cert[1]))
        with httpx.Client(verify=context, timeout=self.http.timeout) as mtls:
            return self._token_call(form, client=mtls)


def _b64json(part: str) -> dict[str, Any]:
    data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("the ID token is not a signed JWT")
    return _b64json(parts[0])


def _unverified_claims(token: str) -> dict[str, Any]:
    """The psc_no_signature_check defect: trusting the payload when the signature does not verify."""
    return _b64json(token.split(".")[1])
