"""Token issuance: ID tokens, access tokens (JWT, as Keycloak issues them), opaque refresh tokens.

Named behaviours (``faults.yaml``) bend what is issued here: a wrong nonce, a forged signature, a weak acr,
another audience, a rotated key, two-second lifetimes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from esante.simulators.dataset import Dataset
from esante.simulators.kits.oauth.server import new_id
from esante.simulators.psc.keys import SigningKeys
from esante.simulators.psc.notes import PscNotes, TokensIssued
from esante.simulators.psc.protocol import (
    ACCESS_TOKEN_LIFETIME,
    ACR_EIDAS1,
    REFRESH_TOKEN_LIFETIME,
    SHORT_ACCESS_TOKEN_LIFETIME,
    subject_of,
)
from esante.simulators.psc.state import FederatorState, Session, Token

OTHER_CLIENT = "esante-other-rp"  # the audience of the ``id_token_wrong_audience`` behaviour


@dataclass(slots=True)
class Issuer:
    """What one call to the federator issues with: its keys, memory, issuer URL and the behaviours that fired."""

    dataset: Dataset
    keys: SigningKeys
    state: FederatorState
    issuer: str
    behaviours: set[str] = field(default_factory=set)
    notes: PscNotes = field(default_factory=PscNotes)

    def access_lifetime(self) -> int:
        return SHORT_ACCESS_TOKEN_LIFETIME if "short_lifetimes" in self.behaviours else ACCESS_TOKEN_LIFETIME

    def tokens(self, client_id: str, session: Session, scope: str, *, nonce: str | None,
               thumbprint: str | None, with_id_token: bool = True) -> dict[str, Any]:
        """The token endpoint's success answer for this session (access, refresh and, with openid, ID token)."""
        if "rotate_signing_key" in self.behaviours:
            self.notes.rotated_to_kid = self.keys.rotate()
        now = time.time()
        access = self.access_token(client_id, session, scope, thumbprint=thumbprint, now=now)
        refresh = Token(id=new_id(32), kind="refresh", client_id=client_id, grant_id=session.sid,
                        national_id=session.national_id, scope=scope, expires=now + REFRESH_TOKEN_LIFETIME)
        self.state.keep(refresh)
        with self.state.lock:
            session.client_ids.add(client_id)
        answer: dict[str, Any] = {
            "access_token": access, "expires_in": self.access_lifetime(),
            "refresh_expires_in": REFRESH_TOKEN_LIFETIME, "refresh_token": refresh.id, "token_type": "Bearer",
            "not-before-policy": 0, "session_state": session.sid, "scope": scope,
        }
        if with_id_token and "openid" in scope.split():
            answer["id_token"] = self.id_token(client_id, session, nonce, now=now)
        self.notes.issued = TokensIssued(kid=self.keys.kid, sid=session.sid, expires_in=answer["expires_in"],
                                         refresh_token_prefix=refresh.id[:6])
        return answer

    def access_token(self, client_id: str, session: Session, scope: str, *, thumbprint: str | None,
                     now: float, audience: str | list[str] = "account") -> str:
        token = Token(id=new_id(16), kind="access", client_id=client_id, grant_id=session.sid,
                      national_id=session.national_id, scope=scope, expires=now + self.access_lifetime(), issued=now,
                      cnf_thumbprint=thumbprint)
        self.state.keep(token)
        claims: dict[str, Any] = {
            "exp": int(token.expires), "iat": int(now), "jti": token.id, "iss": self.issuer, "aud": audience,
            "sub": subject_of(session.national_id), "typ": "Bearer", "azp": client_id, "sid": session.sid,
            "session_state": session.sid, "acr": ACR_EIDAS1, "scope": scope,
            "preferred_username": session.national_id,
        }
        if thumbprint:
            claims["cnf"] = {"x5t#S256": thumbprint}
        return self.keys.sign(claims)

    def id_token(self, client_id: str, session: Session, nonce: str | None, *, now: float) -> str:
        professional = self.dataset.professional_by_national_id(session.national_id)
        audience = OTHER_CLIENT if "id_token_wrong_audience" in self.behaviours else client_id
        claims: dict[str, Any] = {
            "exp": int(now + self.access_lifetime()), "iat": int(now), "auth_time": int(now), "jti": new_id(16),
            "iss": self.issuer, "aud": audience, "sub": subject_of(session.national_id), "typ": "ID",
            "azp": audience, "sid": session.sid, "session_state": session.sid,
            "acr": "0" if "id_token_weak_acr" in self.behaviours else ACR_EIDAS1,
            "preferred_username": session.national_id, "given_name": professional.given_name,
            "family_name": professional.family_name,
        }
        if nonce is not None:
            claims["nonce"] = f"tampered-{new_id(8)}" if "id_token_wrong_nonce" in self.behaviours else nonce
        if "id_token_bad_signature" in self.behaviours:
            return self.keys.forge(claims)
        return self.keys.sign(claims)
