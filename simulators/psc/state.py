"""The federator's memory between calls: besides the pending logins, codes and tokens every authorization
server keeps (:class:`~esante.simulators.kits.oauth.server.AuthorizationState`), the professionals' sessions,
CIBA requests, each client's last authorization response and the client assertions already used.

Everything is forgotten by ``reset`` (each test case starts clean). Lifetimes are real seconds: a code expires
after a minute, an access token after two, as at PSC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from esante.simulators.kits.oauth.server import AuthorizationState, IssuedToken


@dataclass(slots=True)
class Session:
    """The professional's session at the federator (what end-session closes)."""

    sid: str
    national_id: str
    active: bool = True
    client_ids: set[str] = field(default_factory=set)


@dataclass(slots=True, kw_only=True)
class Token(IssuedToken):
    """A token issued to a client for a professional; ``grant_id`` is the session's sid."""

    client_id: str
    national_id: str
    issued: float = field(default_factory=time.time)
    cnf_thumbprint: str | None = None  # RFC 8705: the certificate an access token is bound to


CibaStatus = Literal["pending", "approved", "denied", "redeemed"]


@dataclass(slots=True)
class CibaRequest:
    auth_req_id: str
    client_id: str
    national_id: str
    scope: str
    binding_message: str | None
    channel: str
    expires: float
    interval: int
    created: float = field(default_factory=time.time)
    status: CibaStatus = "pending"
    deny: bool = False  # the simulated professional will refuse (``ciba_deny`` behaviour)
    last_poll: float | None = None


class FederatorState(AuthorizationState):
    """All of the above, behind the one lock of the authorization state."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, Session] = {}
        self.ciba: dict[str, CibaRequest] = {}
        #: Each client's last authorization response (code, state): what ``replay_response`` sends again.
        self.last_response: dict[str, tuple[str, str | None]] = {}
        #: jti of every private_key_jwt client assertion accepted (RFC 7523 §3: single use)
        self.assertion_jtis: set[str] = set()

    def reset(self) -> None:
        with self.lock:
            super().reset()
            for table in (self.sessions, self.ciba, self.last_response, self.assertion_jtis):
                table.clear()

    def access_token(self, token_id: str) -> Token | None:
        token = self.token(token_id, "access")
        return token if isinstance(token, Token) else None

    def refresh_token(self, token_id: str) -> Token | None:
        token = self.token(token_id, "refresh")
        return token if isinstance(token, Token) else None

    def end_session(self, sid: str) -> Session | None:
        """Close the session and deactivate every token issued in it."""
        with self.lock:
            session = self.sessions.get(sid)
            if session is None:
                return None
            session.active = False
            self.revoke_grant(sid)
            return session
