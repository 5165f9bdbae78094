"""An authorization server's memory between calls (RFC 6749 §4.1): the authorization requests waiting for the
user, the codes issued, the tokens issued; and the redemption of a code (§4.1.3, with PKCE, RFC 7636 §4.6).

Everything is in memory, behind one re-entrant lock (handlers run concurrently), forgotten by ``reset`` (each
test case starts clean). Nothing outlives its time: what has expired is forgotten a while later
(:data:`EXPIRED_KEPT`, so that a late presentation is still told "expired", not "unknown"), and no table holds
more than :data:`MAX_ENTRIES` (the oldest go first), so memory stays bounded under any load. A service extends
:class:`AuthorizationState` with what it remembers besides (sessions, pairings...), forgets it in
:meth:`~AuthorizationState.purge`, and says in a :class:`CodeWording` how it words a refused code.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from esante.simulators.kits.oauth.errors import OAuthError
from esante.simulators.kits.oauth.pkce import pkce_matches

#: How long a user may stay on the login or consent page (Keycloak's login timeout): then they start again.
PENDING_LIFETIME = 30 * 60
#: How long an expired code, token or request is still known (and answered "expired") before it is forgotten.
EXPIRED_KEPT = 5 * 60
#: The most entries one table holds: beyond, the oldest are forgotten first (bounded memory under any load).
MAX_ENTRIES = 20_000
#: Expired entries are looked for at most this often (seconds), on the next write.
PURGE_INTERVAL = 1.0


def new_id(nbytes: int = 24) -> str:
    """An unguessable identifier (codes, tokens, transactions): ``nbytes`` random bytes, base64url."""
    return secrets.token_urlsafe(nbytes)


@dataclass(slots=True, kw_only=True)
class PendingAuthorization:
    """An authorization request waiting for the user to sign in (and consent) on the server's page."""

    id: str
    client_id: str
    redirect_uri: str
    state: str | None
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None = None
    response_mode: str = "query"
    #: OpenID Connect Core §5.5: the claims requested by name ({"id_token": {...}, "userinfo": {...}})
    claims: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


@dataclass(slots=True, kw_only=True)
class AuthorizationCode:
    """An authorization code, single use, bound to its request and to the grant it opens (a session, a
    pairing); ``tokens`` are those issued with it, revoked if it is presented again."""

    value: str
    pending: PendingAuthorization
    grant_id: str
    expires: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class IssuedToken:
    """An access or refresh token, by its id (an access token's ``jti``, a refresh token's opaque value), issued
    to ``client_id``; ``grant_id`` is the session or pairing it was issued in: ending that revokes it."""

    id: str
    kind: Literal["access", "refresh"]
    client_id: str
    grant_id: str
    scope: str
    expires: float
    active: bool = True


@dataclass(frozen=True, slots=True)
class CodeWording:
    """How a server words the ``invalid_grant`` refusals of a code (RFC 6749 §5.2), in its own language.

    ``expired`` None: an expired code is treated as a replayed one (and its grant ended)."""

    unknown: str
    reused: str
    expired: str | None
    redirect_uri: str
    verifier_missing: str
    verifier_unexpected: str
    verifier_failed: str


class AuthorizationState:
    """The pending authorizations, codes and tokens of one authorization server."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pending: dict[str, PendingAuthorization] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: dict[str, IssuedToken] = {}
        #: jti of every client assertion accepted, with its expiry (RFC 7523 §3: single use until then)
        self.assertion_jtis: dict[str, float] = {}
        self._last_purge = 0.0

    def reset(self) -> None:
        with self.lock:
            for table in (self.pending, self.codes, self.tokens, self.assertion_jtis):
                table.clear()

    # -- forgetting what has expired ----------------------------------------------------------------------
    def purge(self, now: float) -> None:
        """Forget what expired more than :data:`EXPIRED_KEPT` ago (a subclass adds its own tables)."""
        forget = now - EXPIRED_KEPT
        _drop(self.pending, lambda p: p.created + PENDING_LIFETIME < forget)
        _drop(self.codes, lambda c: c.expires < forget)
        _drop(self.tokens, lambda t: t.expires < forget)
        _drop(self.assertion_jtis, lambda expires: expires < now)  # an expired assertion is refused anyway

    def _stored(self, table: MutableMapping[str, Any], key: str, value: Any) -> None:
        """Keep ``value``; purge when due; forget the oldest entries beyond :data:`MAX_ENTRIES`."""
        with self.lock:
            table[key] = value
            now = time.time()
            if now - self._last_purge >= PURGE_INTERVAL:
                self._last_purge = now
                self.purge(now)
            while len(table) > MAX_ENTRIES:
                del table[next(iter(table))]  # dicts keep insertion order: the oldest first

    # -- the user on the server's page ----------------------------------------------------------------------
    def hold(self, pending: PendingAuthorization) -> PendingAuthorization:
        """Keep an authorization request until the user answers on the page."""
        self._stored(self.pending, pending.id, pending)
        return pending

    def take(self, pending_id: str) -> PendingAuthorization | None:
        """The request the page was for, once (None when unknown or older than :data:`PENDING_LIFETIME`)."""
        with self.lock:
            pending = self.pending.pop(pending_id, None)
        if pending is None or time.time() - pending.created > PENDING_LIFETIME:
            return None
        return pending

    def issue_code(self, pending: PendingAuthorization, grant_id: str, lifetime: float) -> AuthorizationCode:
        code = AuthorizationCode(value=new_id(32), pending=pending, grant_id=grant_id,
                                 expires=time.time() + lifetime)
        self._stored(self.codes, code.value, code)
        return code

    # -- the token endpoint -----------------------------------------------------------------------------------
    def redeem(self, form: dict[str, str], client_id: str, wording: CodeWording,
               on_replay: Callable[[AuthorizationCode], None]) -> AuthorizationCode:
        """The code of a token request (RFC 6749 §4.1.3): issued to this client, used once (a replay calls
        ``on_replay``, which revokes what it gave, §4.1.2), not expired, for the same redirect_uri, and
        answering the request's PKCE challenge."""
        with self.lock:
            code = self.codes.get(form.get("code", ""))
            if code is None or code.pending.client_id != client_id:
                raise OAuthError("invalid_grant", wording.unknown)
            expired = code.expires < time.time()
            if code.used or (expired and wording.expired is None):
                on_replay(code)
                raise OAuthError("invalid_grant", wording.reused)
            code.used = True
        if expired and wording.expired is not None:
            raise OAuthError("invalid_grant", wording.expired)
        if form.get("redirect_uri") != code.pending.redirect_uri:
            raise OAuthError("invalid_grant", wording.redirect_uri)
        _check_verifier(code.pending, form.get("code_verifier"), wording)
        return code

    # -- tokens -----------------------------------------------------------------------------------------------
    def keep(self, *tokens: IssuedToken | None) -> None:
        for token in tokens:
            if token is not None:
                self._stored(self.tokens, token.id, token)

    def token(self, token_id: str, kind: str) -> IssuedToken | None:
        """The token of this id when it is of this kind (an access token is no refresh token)."""
        with self.lock:
            token = self.tokens.get(token_id)
            return token if token is not None and token.kind == kind else None

    def revoke_grant(self, grant_id: str) -> None:
        """Deactivate every token issued in a session or pairing that ends."""
        with self.lock:
            for token in self.tokens.values():
                if token.grant_id == grant_id:
                    token.active = False

    def revoke(self, token_ids: list[str]) -> None:
        with self.lock:
            for token_id in token_ids:
                if (token := self.tokens.get(token_id)) is not None:
                    token.active = False

    def revoke_token(self, token: IssuedToken) -> None:
        """RFC 7009 §2.1: an access token alone; a refresh token with every token its client holds in the same
        grant (Keycloak ends the client's session: the access tokens issued beside it stop too)."""
        with self.lock:
            token.active = False
            if token.kind == "refresh":
                for other in self.tokens.values():
                    if other.grant_id == token.grant_id and other.client_id == token.client_id:
                        other.active = False


def _drop(table: MutableMapping[str, Any], expired: Callable[[Any], bool]) -> None:
    for key in [k for k, v in table.items() if expired(v)]:
        del table[key]


def _check_verifier(pending: PendingAuthorization, verifier: str | None, wording: CodeWording) -> None:
    if pending.code_challenge is None:
        if verifier is not None:
            raise OAuthError("invalid_grant", wording.verifier_unexpected)
        return
    if verifier is None:
        raise OAuthError("invalid_grant", wording.verifier_missing)
    if not pkce_matches(pending.code_challenge_method or "plain", pending.code_challenge, verifier):
        raise OAuthError("invalid_grant", wording.verifier_failed)
