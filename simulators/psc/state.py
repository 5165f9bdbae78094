"""The federator's memory between calls: besides the pending logins, codes and tokens every authorization
server keeps (:class:`~esante.simulators.kits.oauth.server.AuthorizationState`), the professionals' sessions,
CIBA requests and each client's last authorization response.

Everything is forgotten by ``reset`` (each test case starts clean), and what has expired is forgotten on the
way (:meth:`FederatorState.purge`). Lifetimes are real seconds: a code expires after a minute, an access token
after two, a session after four hours or thirty idle minutes, as at PSC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from esante.simulators.kits.oauth.server import EXPIRED_KEPT, AuthorizationState, IssuedToken
from esante.simulators.psc.notes import BackchannelDelivery
from esante.simulators.psc.protocol import SESSION_IDLE_LIFETIME, SESSION_MAX_LIFETIME


@dataclass(slots=True)
class Session:
    """The professional's session at the federator (what end-session closes); ``national_id`` is empty for a
    client's service account (client credentials). ``auth_time`` is when the professional signed in: every ID
    token of the session says so (OpenID Connect Core §12.2)."""

    sid: str
    national_id: str
    active: bool = True
    client_ids: set[str] = field(default_factory=set)
    auth_time: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)

    def live(self, now: float) -> bool:
        """Not ended, and neither past its maximum lifetime nor idle for too long."""
        return self.active and now - self.auth_time < SESSION_MAX_LIFETIME and \
            now - self.last_used < SESSION_IDLE_LIFETIME


@dataclass(slots=True, kw_only=True)
class Token(IssuedToken):
    """A token issued to a client for a professional; ``grant_id`` is the session's sid. A refresh token keeps
    the certificate its grant is bound to, so that the refreshed tokens stay bound to it."""

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
    notification_token: str | None = None  # ping mode: the bearer token of the client's notification
    ping: BackchannelDelivery | None = None  # ping mode: the notification sent, and what the client answered


class FederatorState(AuthorizationState):
    """All of the above, behind the one lock of the authorization state."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: dict[str, Session] = {}
        self.ciba: dict[str, CibaRequest] = {}
        #: Each client's last authorization response (code, state): what ``replay_response`` sends again.
        self.last_response: dict[str, tuple[str, str | None]] = {}

    def reset(self) -> None:
        with self.lock:
            super().reset()
            for table in (self.sessions, self.ciba, self.last_response):
                table.clear()

    def purge(self, now: float) -> None:
        super().purge(now)
        forget = now - EXPIRED_KEPT
        for sid in [sid for sid, s in self.sessions.items() if not s.live(forget)]:
            del self.sessions[sid]
        for req_id in [r for r, c in self.ciba.items() if c.expires < forget]:
            del self.ciba[req_id]

    def open_session(self, session: Session) -> Session:
        self._stored(self.sessions, session.sid, session)
        return session

    def hold_ciba(self, request: CibaRequest) -> CibaRequest:
        self._stored(self.ciba, request.auth_req_id, request)
        return request

    def session(self, sid: str, now: float, *, touch: bool = True) -> Session | None:
        """The live session ``sid`` (its use noted when ``touch``: introspection by another service is no use by
        the professional), or None when unknown, ended or expired."""
        with self.lock:
            session = self.sessions.get(sid)
            if session is None or not session.live(now):
                return None
            if touch:
                session.last_used = now
            return session

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
