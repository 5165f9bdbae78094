"""The harness side of the driver contract treats a candidate's answers as untrusted input."""

from __future__ import annotations

import httpx
import pytest

from esante.harness.driver import MAX_DRIVER_ANSWER_BYTES, DriverClient, DriverError


def _client(handler) -> DriverClient:
    client = DriverClient("http://candidate.test/esante/v1")
    client._http = httpx.Client(transport=httpx.MockTransport(handler))
    return client


@pytest.mark.parametrize(("response", "message"), [
    (httpx.Response(500, text="boom"), "answered HTTP 500"),
    (httpx.Response(200, text="<html>"), "not JSON"),
    (httpx.Response(200, content=b"[" + b" " * MAX_DRIVER_ANSWER_BYTES + b"]"), "over the"),
    (httpx.Response(200, json={"outcome": "maybe"}), "malformed report"),
])
def test_bad_driver_answers_are_driver_errors(response: httpx.Response, message: str) -> None:
    client = _client(lambda request: response)
    with pytest.raises(DriverError, match=message):
        client.act("insi.lookup_traits", {}, "C-1")


def test_unreachable_driver_is_a_driver_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(DriverError, match="failed"):
        _client(refuse).info()
