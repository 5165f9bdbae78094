"""How the reference candidate talks to Pro Santé Connect: HTTPS trusting the run's test CA, one retry after a
pause when PSC fails, and OAuth error answers turned into :class:`PscError` (RFC 6749 §5.2, RFC 6750 §3)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from esante.harness.reference.psc.tokens import PscError, PscUnavailable
from esante.simulators.core.pki import client_ssl_context

RETRY_PAUSE = 0.5  # seconds before the one retry of a failed call
STORM_ATTEMPTS = 11  # the psc_retry_storm defect: one call and ten retries, without pause


def json_answer(response: httpx.Response) -> dict[str, Any]:
    """A JSON object answer, or the OAuth error it carries."""
    try:
        data = response.json()
    except ValueError:
        if response.status_code == 401:  # a bearer refusal may say so in WWW-Authenticate only
            raise PscError("invalid_token", response.headers.get("www-authenticate", "")) from None
        raise PscError("invalid_response", f"PSC answered something that is not JSON (HTTP "
                                           f"{response.status_code})") from None
    if not isinstance(data, dict):
        raise PscError("invalid_response", "PSC answered JSON that is not an object")
    if response.status_code >= 400:
        raise PscError(str(data.get("error", "invalid_response")), str(data.get("error_description", "")))
    return data


class PscHttp:
    """The connections to one PSC; ``storm`` is the psc_retry_storm defect."""

    def __init__(self, ca_pem: bytes | None, *, storm: bool = False, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.ca_pem, self.storm, self.timeout = ca_pem, storm, timeout
        verify = client_ssl_context(ca_pem) if ca_pem is not None else True
        self.client = httpx.Client(verify=verify, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.client.close()

    def get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        return json_answer(self._send(self.client, "GET", url, **kwargs))

    def post_json(self, url: str, form: dict[str, str], auth: tuple[str, str],
                  cert: tuple[Path, Path] | None = None) -> dict[str, Any]:
        """A form POST with HTTP Basic client authentication; over mutual TLS with ``cert`` when given."""
        if cert is None or self.ca_pem is None:
            return json_answer(self._send(self.client, "POST", url, data=form, auth=auth))
        with httpx.Client(verify=client_ssl_context(self.ca_pem, cert), timeout=self.timeout) as mtls:
            return json_answer(self._send(mtls, "POST", url, data=form, auth=auth))

    def _send(self, client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call, retried once after a pause when it fails (unreachable, timeout, 5xx)."""
        problem = ""
        for attempt in range(STORM_ATTEMPTS if self.storm else 2):
            if attempt and not self.storm:
                time.sleep(RETRY_PAUSE)
            try:
                response = client.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code < 500:
                return response
            problem = f"HTTP {response.status_code} from {url}"
        raise PscUnavailable(f"Pro Santé Connect is unavailable ({problem})")
