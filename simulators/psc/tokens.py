"""Token issuance: ID tokens, access tokens (JWT, as Keycloak issues them), opaque refresh tokens.

Every ID token says when the professional signed in (``auth_time``, the session's: a refreshed one keeps it,
OpenID Connect Core §12.2), carries the ``at_hash`` of the access token answered beside it (§3.1.3.6, as
Keycloak always does) and the claims the ``claims`` request parameter asked for it (§5.5). A client's service
account (client credentials) has a subject of its own and no professional.

Named behaviours (``faults.yaml``) bend what is issued here: a wrong nonce or at_hash, a forged signature, a
weak acr, another audience, a rotated key, two-second lifetimes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from esante.simulators.dataset import Dataset
from esante.simulators.kits.oauth.oidc import token_hash
from esante.simulators.kits.oauth.server import new_id
from esante.simulators.psc.claims import userinfo_claims
from esante.simulators.psc.keys import SigningKeys
from esante.simulators.psc.notes import PscNotes, TokensIssued
from esante.simulators.psc.protocol import (
    ACCESS_TOKEN_LIFETIME,
    ACR_EIDAS1,
    REFRESH_TOKEN_LIFETIME,
    SHORT_ACCESS_TOKEN_LIFETIME,
    SIGNING_ALG,
    subject_of,
)
from esante.simulators.psc.state import FederatorState, Session, Token

OTHER_CLIENT = "esante-other-rp"  # the audience of the ``id_token_wrong_audience`` behaviour


def subject_and_username(session: Session, client_id: str) -> tuple[str, str]:
    """``sub`` and ``preferred_username``: the professional's, or the client's service account (Keycloak's
    ``service-account-<client>`` user, whose id is ours)."""
    if session.national_id:
        return subject_of(session.national_id), session.national_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"service-account:{client_id}")), f"service-account-{client_id}"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token answer is for: the client, the session, the scope, the certificate the tokens are bound to
    (RFC 8705), the nonce and the claims of the authorization request (ID token)."""

    client_id: str
    session: Session
    scope: str
    thumbprint: str | None = None
    nonce: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Issuer:
    """What one call to the federator issues with: its keys, memory, issuer URL and the behaviours that fired."""

    dataset: Dataset
    keys: SigningKeys
    state: FederatorState
    issuer: str
    behaviours: set[str] = field(default_factory=set)
    notes: PscNotes = field(default_factory=PscNotes)
    ciba_auto: bool = True  # the simulated professional approves CIBA requests by themself

    def access_lifetime(self) -> int:
        return SHORT_ACCESS_TOKEN_LIFETIME if "short_lifetimes" in self.behaviours else ACCESS_TOKEN_LIFETIME

    def tokens(self, grant: Grant, *, with_refresh: bool = True) -> dict[str, Any]:
        """The token endpoint's success answer for this grant: an access token, a refresh token (unless
        ``with_refresh`` is off) and, for a professional's session with the openid scope, an ID token."""
        if "rotate_signing_key" in self.behaviours:
            self.notes.rotated_to_kid = self.keys.rotate()
        now = time.time()
        access = self.access_token(grant, now=now)
        answer: dict[str, Any] = {"access_token": access, "expires_in": self.access_lifetime(),
                                  "refresh_expires_in": 0, "token_type": "Bearer", "not-before-policy": 0,
                                  "session_state": grant.session.sid, "scope": grant.scope}
        refresh = None
        if with_refresh:
            refresh = Token(id=new_id(32), kind="refresh", client_id=grant.client_id, grant_id=grant.session.sid,
                            national_id=grant.session.national_id, scope=grant.scope,
                            expires=now + REFRESH_TOKEN_LIFETIME, cnf_thumbprint=grant.thumbprint)
            self.state.keep(refresh)
            answer |= {"refresh_expires_in": REFRESH_TOKEN_LIFETIME, "refresh_token": refresh.id}
        with self.state.lock:
            grant.session.client_ids.add(grant.client_id)
        if grant.session.national_id and "openid" in grant.scope.split():
            answer["id_token"] = self.id_token(grant, access, now=now)
        self.notes.issued = TokensIssued(kid=self.keys.kid, sid=grant.session.sid, expires_in=answer["expires_in"],
                                         refresh_token_prefix=refresh.id[:6] if refresh else None)
        return answer

    def access_token(self, grant: Grant, *, now: float, audience: str | list[str] = "account") -> str:
        session = grant.session
        token = Token(id=new_id(16), kind="access", client_id=grant.client_id, grant_id=session.sid,
                      national_id=session.national_id, scope=grant.scope, expires=now + self.access_lifetime(),
                      issued=now, cnf_thumbprint=grant.thumbprint)
        self.state.keep(token)
        subject, username = subject_and_username(session, grant.client_id)
        claims: dict[str, Any] = {
            "exp": int(token.expires), "iat": int(now), "jti": token.id, "iss": self.issuer, "aud": audience,
            "sub": subject, "typ": "Bearer", "azp": grant.client_id, "sid": session.sid,
            "session_state": session.sid, "acr": ACR_EIDAS1, "scope": grant.scope, "preferred_username": username,
        }
        if grant.thumbprint:
            claims["cnf"] = {"x5t#S256": grant.thumbprint}
        return self.keys.sign(claims)

    def id_token(self, grant: Grant, access_token: str, *, now: float) -> str:
        session = grant.session
        professional = self.dataset.professional_by_national_id(session.national_id)
        audience = OTHER_CLIENT if "id_token_wrong_audience" in self.behaviours else grant.client_id
        hashed = new_id(16) if "id_token_wrong_at_hash" in self.behaviours else access_token
        claims: dict[str, Any] = {
            "exp": int(now + self.access_lifetime()), "iat": int(now), "auth_time": int(session.auth_time),
            "jti": new_id(16), "iss": self.issuer, "aud": audience, "sub": subject_of(session.national_id),
            "typ": "ID", "azp": audience, "sid": session.sid, "session_state": session.sid,
            "at_hash": token_hash(hashed, SIGNING_ALG),
            "acr": "0" if "id_token_weak_acr" in self.behaviours else ACR_EIDAS1,
            "preferred_username": session.national_id, "given_name": professional.given_name,
            "family_name": professional.family_name,
        }
        asked = grant.claims.get("id_token") or {}
        if asked:  # §5.5: the claims asked for the ID token, as userinfo has them
            known = userinfo_claims(self.dataset, professional)
            claims |= {name: known[name] for name in asked if name in known and name not in claims}
        if grant.nonce is not None:
            wrong = "id_token_wrong_nonce" in self.behaviours
            claims["nonce"] = f"tampered-{new_id(8)}" if wrong else grant.nonce
        if "id_token_bad_signature" in self.behaviours:
            return self.keys.forge(claims)
        return self.keys.sign(claims)
