"""The federator's memory between calls: pending logins, codes, sessions, tokens, CIBA requests.

Everything is in memory and forgotten by ``reset`` (each test case starts clean). Lifetimes are real
seconds: a code expires after a minute, an access token after two, as at PSC.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Literal


def new_id(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


@dataclass(slots=True)
class Transaction:
    """An authorization request waiting for the professional to sign in on the login page."""

    id: str
    client_id: str
    redirect_uri: str
    state: str | None
    nonce: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    created: float = field(default_factory=time.time)


@dataclass(slots=True)
class Code:
    """An authorization code, single use."""

    value: str
    transaction: Transaction
    sid: str
    national_id: str
    expires: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)  # token ids issued with it, revoked on reuse


@dataclass(slots=True)
class Session:
    """The professional's session at the federator (what end-session closes)."""

    sid: str
    national_id: str
    active: bool = True
    client_ids: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Token:
    """An access token (by its jti) or a refresh token (by its opaque value)."""

    id: str
    kind: Literal["access", "refresh"]
    client_id: str
    sid: str
    national_id: str
    scope: str
    expires: float
    issued: float = field(default_factory=time.time)
    cnf_thumbprint: str | None = None
    nonce: str | None = None
    active: bool = True


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
    sid: str | None = None


class FederatorState:
    """All of the above, behind one lock (handlers run concurrently on the server's event loop threads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.transactions: dict[str, Transaction] = {}
        self.codes: dict[str, Code] = {}
        self.sessions: dict[str, Session] = {}
        self.tokens: dict[str, Token] = {}
        self.ciba: dict[str, CibaRequest] = {}
        #: Each client's last authorization response (code, state): what ``replay_response`` sends again.
        self.last_response: dict[str, tuple[str, str | None]] = {}
        #: jti of every private_key_jwt client assertion accepted (RFC 7523 §3: single use)
        self.assertion_jtis: set[str] = set()

    def reset(self) -> None:
        with self.lock:
            for table in (self.transactions, self.codes, self.sessions, self.tokens, self.ciba, self.last_response,
                          self.assertion_jtis):
                table.clear()

    def token(self, token_id: str, kind: str) -> Token | None:
        with self.lock:
            token = self.tokens.get(token_id)
            return token if token is not None and token.kind == kind else None

    def end_session(self, sid: str) -> Session | None:
        """Close the session and deactivate every token issued in it."""
        with self.lock:
            session = self.sessions.get(sid)
            if session is None:
                return None
            session.active = False
            for token in self.tokens.values():
                if token.sid == sid:
                    token.active = False
            return session
