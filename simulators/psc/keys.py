"""The federator's signing keys: the published JWKS, rotation, and forged signatures for the defences' tests."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from esante.simulators.psc.protocol import SIGNING_ALG


def _new_key() -> RSAKey:
    kid = secrets.token_urlsafe(16)
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": SIGNING_ALG}, private=True)


class SigningKeys:
    """The current signing key, the keys still published after a rotation, and the original set to reset to.

    The original key is kept for the simulator's lifetime so that every test case starts with the key set a
    candidate may have cached in an earlier case, as with a real federator whose keys rarely change.
    """

    def __init__(self) -> None:
        self._original = _new_key()
        self._lock = threading.Lock()
        self._current = self._original
        self._published = [self._original]

    def reset(self) -> None:
        with self._lock:
            self._current = self._original
            self._published = [self._original]

    def rotate(self) -> str:
        """Sign with a new key from now on; publish it beside the old one (Keycloak keeps the old key passive)."""
        with self._lock:
            self._current = _new_key()
            self._published = [self._current, *self._published][:2]
            return str(self._current.kid)

    @property
    def kid(self) -> str:
        with self._lock:
            return str(self._current.kid)

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            return KeySet(list(self._published)).as_dict(private=False)

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        with self._lock:
            key = self._current
        return jwt.encode({"alg": SIGNING_ALG, "kid": key.kid, "typ": typ}, claims, key)

    def forge(self, claims: dict[str, Any]) -> str:
        """A token that names the current key but is signed by another: its signature cannot verify."""
        impostor = _new_key()
        return jwt.encode({"alg": SIGNING_ALG, "kid": self.kid, "typ": "JWT"}, claims, impostor)

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this federator signed with a published key, or None (no exception leaks)."""
        with self._lock:
            keys = KeySet(list(self._published))
        try:
            return dict(jwt.decode(token, keys, algorithms=[SIGNING_ALG]).claims)
        except (JoseError, ValueError, TypeError):
            return None
