"""What every simulated authorization server notes about a call, for the judge (extended by each service)."""

from __future__ import annotations

from pydantic import Field

from esante.simulators.core.notes import Notes


class OAuthNotes(Notes):
    """A call to an authorization server or to the resources it protects."""

    client_id: str | None = Field(default=None, description="the client the call was made for, once known")
    error: str | None = Field(default=None, description="the error answered (RFC 6749 code, or the service's)")
    error_description: str | None = None
    token_state: str | None = Field(default=None, description="the bearer token presented: valid, expired, "
                                                              "revoked, unknown, missing...")
    token_expires_in: float | None = Field(default=None, description="seconds the presented token had left "
                                                                     "(negative: expired that long ago)")
