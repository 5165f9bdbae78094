"""The reference candidate's Mon espace santé part: the driver's ``mes.*`` actions on a fresh app session
(:class:`~.application.MesApp`) per ``/reset``, and the editor's referencing dossier (``dossier.yaml``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

import httpx
import yaml

from esante.harness.driver import ActionOutcome
from esante.harness.reference.mes.application import MesApp, guarded, report
from esante.harness.reference.mes.models import (
    AgendaParams,
    DocumentParams,
    MeasuresParams,
    MesReport,
    PairParams,
    ReadParams,
)
from esante.harness.reference.parts import NoParams, NotConfigured, Part, ReferenceContext, validated
from esante.simulators.mes.protocol import DOSSIERS_PATH


class MesPart(Part):
    """The ``mes.*`` actions on a fresh app session per ``/reset``."""

    actions = ("mes.pair", "mes.push_measures", "mes.push_document", "mes.sync_agenda", "mes.read_measures",
               "mes.submit_dossier")
    callback_prefix = "/mes/"

    def __init__(self, context: ReferenceContext) -> None:
        super().__init__(context)
        self.app: MesApp | None = None

    def reset(self, endpoints: dict[str, str]) -> None:
        self.close()
        base = endpoints.get("mes")
        if base:
            self.app = MesApp(base, self.context.ca_pem_for(base), self.defects)

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.app = None

    def _app(self) -> MesApp:
        if self.app is None:
            raise NotConfigured("no Mon espace santé endpoint was given on /reset")
        return self.app

    def act(self, action: str, params: dict[str, Any], own_url: str) -> MesReport:
        work = _work(action, params, own_url, self)
        app = self._app()
        return guarded(lambda: work(app))

    def callback(self, url: str) -> MesReport:
        app = self._app()
        return guarded(lambda: app.callback(url))

    def submit_dossier(self, app: MesApp) -> MesReport:
        """The editor's dossier (data shipped beside this module) sent to the referencing window."""
        text = files("esante.harness.reference.mes").joinpath("dossier.yaml").read_text(encoding="utf-8")
        if self.defects.on("mes_dossier_without_evidence"):
            dossier = yaml.safe_load(text)
            for answer in dossier["dossier"]["answers"]:
                answer["evidence"] = []
            text = yaml.safe_dump(dossier, allow_unicode=True, sort_keys=False)
        try:
            response = app.client.http.post(DOSSIERS_PATH, content=text.encode(),
                                            headers={"Content-Type": "application/yaml"})
        except httpx.HTTPError as exc:  # as every other call to MES: the user is told it is unavailable
            return report(ActionOutcome.UNAVAILABLE, f"Mon espace santé unreachable: {exc}")
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 201:
            findings = len(body.get("findings", []))
            return report(ActionOutcome.ERROR, f"dossier {body.get('status', response.status_code)}: "
                                                f"{findings} finding(s)", error_code="inadmissible")
        return report(ActionOutcome.COMPLETED, f"dossier {body['id']} is {body['status']}")


def _work(action: str, raw: dict[str, Any], own_url: str, part: MesPart) -> Callable[[MesApp], MesReport]:
    if action == "mes.pair":
        validated(PairParams, raw)
        return lambda app: app.pair(own_url)
    if action == "mes.push_measures":
        measures = validated(MeasuresParams, raw).measures
        return lambda app: app.push_measures(measures)
    if action == "mes.push_document":
        document = validated(DocumentParams, raw).document
        return lambda app: app.push_document(document)
    if action == "mes.sync_agenda":
        entries = validated(AgendaParams, raw).appointments
        return lambda app: app.sync_agenda(entries)
    if action == "mes.read_measures":
        code = validated(ReadParams, raw).code
        return lambda app: app.read_measures(code)
    validated(NoParams, raw)
    return part.submit_dossier
