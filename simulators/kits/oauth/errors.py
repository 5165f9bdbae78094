"""The RFC 6749 §5.2 error answer, as Keycloak (and so Pro Santé Connect) sends it.

JSON ``{"error", "error_description"}``, never cached; 400 for request errors, 401 for client authentication
failures (``WWW-Authenticate: Basic``) and invalid bearer tokens (``WWW-Authenticate: Bearer``, RFC 6750 §3).
"""

from __future__ import annotations

from starlette.responses import JSONResponse

from esante.simulators.kits.oauth.notes import OAuthNotes

#: RFC 6749 §5.1: token answers (and errors) must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An OAuth error answer: ``error`` code (RFC 6749 / 6750 / 8693 / CIBA), description, HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status

    def response(self) -> JSONResponse:
        headers = dict(NO_STORE)
        if self.status == 401:
            scheme = "Bearer" if self.error == "invalid_token" else "Basic"
            headers["WWW-Authenticate"] = f'{scheme} error="{self.error}", error_description="{self.description}"'
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status, headers=headers)

    def note(self, notes: OAuthNotes) -> None:
        """What the journal keeps of the refusal: the error code and its description."""
        notes.error, notes.error_description = self.error, self.description
