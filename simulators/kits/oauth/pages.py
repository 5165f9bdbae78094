"""The pages an authorization server shows the user (login, consent, messages), from the service's own
Jinja templates (``templates/`` beside it, ``message.html`` taking ``heading``, ``message`` and ``error``)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from esante.simulators.kits.oauth.errors import NO_STORE


class Pages:
    """One service's templates; pages are never cached (they carry one-time transaction ids)."""

    def __init__(self, package: str) -> None:
        self.env = Environment(loader=PackageLoader(package, "templates"), autoescape=select_autoescape())

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(template).render(**context), status_code=status,
                            headers=NO_STORE)

    def message(self, heading: str, message: str, status: int = 200) -> HTMLResponse:
        """A message to the user; an error from status 400 on."""
        return self.page("message.html", status, heading=heading, message=message, error=status >= 400)
