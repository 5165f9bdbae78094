"""What the Pro Santé Connect simulator notes about each call, for the PSC test kit: the operation and the
client (:class:`~esante.simulators.kits.oauth.notes.OAuthNotes`), and what the federator did about it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from esante.simulators.kits.oauth.notes import OAuthNotes


class AuthorizationResponse(BaseModel):
    """The authorization response the browser was sent back with (``tampered``: the behaviours that bent it)."""

    national_id: str
    sid: str
    tampered: list[str]


class TokensIssued(BaseModel):
    """A token answer: the signing key used, the session, the access token's lifetime, the refresh token's
    first characters (enough to follow it, not to use it; none for client credentials)."""

    kid: str
    sid: str
    expires_in: int
    refresh_token_prefix: str | None = None


class TokenExchanged(BaseModel):
    """A token exchange (RFC 8693): the certificate the API token is bound to, and its audience."""

    bound_to: str | None
    audience: str | list[str]


class EndedSession(BaseModel):
    sid: str
    clients: list[str] = Field(description="the clients that had tokens in the session")


class BackchannelDelivery(BaseModel):
    """A logout token posted to a client's back-channel logout URI: its answer, or why it did not arrive."""

    client_id: str
    uri: str
    status: int | None = None
    error: str | None = None


class PscNotes(OAuthNotes):
    """One call to the federator."""

    client_auth: str | None = Field(default=None, description="how the client authenticated (RFC 6749 §2.3)")
    authorization_response: AuthorizationResponse | None = None
    grant_type: str | None = None
    issued: TokensIssued | TokenExchanged | None = None
    rotated_to_kid: str | None = Field(default=None, description="the signing key rotated to before answering")
    ciba_status: str | None = Field(default=None, description="the CIBA request's status when polled")
    ciba_decision: str | None = Field(default=None, description="the professional's answer on the e-CPS app")
    ciba_ping: BackchannelDelivery | None = Field(default=None, description="the ping notification sent to the "
                                                                           "client once the professional answered")
    revoked: str | None = Field(default=None, description="the kind of token revoked (RFC 7009)")
    ended_session: EndedSession | None = None
    backchannel_logout: list[BackchannelDelivery] | None = None
