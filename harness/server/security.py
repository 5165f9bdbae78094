"""Who is asking: local accounts with argon2 password hashes (argon2-cffi), API tokens for CI (stored as their
SHA-256 only), a CSRF token per browser session, and login throttling.

Throttling counts failed attempts per account in the database (so that every server of a shared lab sees
them): after ``MAX_FAILURES`` within ``WINDOW``, the account's sign-in is refused until the window has passed,
even with the right password, and the answer says when to retry.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esante.harness.server.models import ApiToken, LoginAttempt, User, aware, now

MAX_FAILURES = 5
WINDOW = timedelta(minutes=15)
TOKEN_PREFIX = "esl_"
_hasher = PasswordHasher()
#: verified against when the account does not exist, so that a wrong e-mail costs what a wrong password does
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} s")
        self.retry_after = retry_after


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _password_matches(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _retry_after(db: Session, email: str, moment: datetime) -> int:
    since = moment - WINDOW
    failures = db.execute(select(func.count(), func.min(LoginAttempt.at)).where(
        LoginAttempt.email == email, LoginAttempt.succeeded.is_(False), LoginAttempt.at > since)).one()
    if failures[0] < MAX_FAILURES:
        return 0
    oldest = aware(failures[1]) or moment
    return max(1, int((oldest + WINDOW - moment).total_seconds()))


def authenticate(db: Session, email: str, password: str, client: str = "") -> User | None:
    """The active account with this e-mail and password, or None; raises :class:`Throttled` while the account
    is locked out. Every attempt is recorded."""
    email = email.strip().lower()
    moment = now()
    wait = _retry_after(db, email, moment)
    if wait:
        raise Throttled(wait)
    user = db.scalar(select(User).where(User.email == email))
    ok = _password_matches(user.password_hash if user else _DUMMY_HASH, password) and bool(user and user.active)
    db.add(LoginAttempt(email=email, client=client[:100], succeeded=ok, at=moment))
    return user if ok else None


def new_api_token(db: Session, user: User, label: str) -> str:
    """A fresh token for ``user``; only its digest is kept, so it is shown once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(ApiToken(user_id=user.id, token_sha256=_digest(token), label=label[:200]))
    return token


def token_user(db: Session, token: str) -> User | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    found = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == _digest(token)))
    return found.user if found is not None and found.user.active else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))
