"""The admin API, under ``/_admin``: how the harness (or a person) drives a simulator.

Every route but ``/_admin/health`` needs ``Authorization: Bearer <admin token>``. Admin calls are not
candidate traffic and are not journaled as exchanges; the preconditions they set are recorded as
``admin`` evidence records.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict

from esante.simulators.core.evidence.remote import MAX_PAGE_RECORDS, export_page
from esante.simulators.core.faults import FaultKind, FaultRule
from esante.simulators.core.journal import load_exchanges
from esante.simulators.core.runtime import ADMIN_PREFIX, Peer, SimulatorRuntime
from esante.simulators.dataset import dataset_from_mapping, load_dataset


class Context(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str | None = None
    case_id: str | None = None


class DatasetChoice(BaseModel):
    """Either a shipped data set by name, or a whole data set inline."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    data: dict[str, Any] | None = None


class PeerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    admin_token: str | None = None
    ca_pem: str | None = None


def require_admin_token(runtime: SimulatorRuntime) -> Callable[[Request], None]:
    """A dependency refusing a call without ``Authorization: Bearer <admin token>`` (admin and peer routes)."""

    def authorised(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip(),
                                                                   runtime.settings.admin_token):
            raise HTTPException(401, "admin token required", headers={"WWW-Authenticate": "Bearer"})

    return authorised


def admin_router(runtime: SimulatorRuntime) -> APIRouter:
    public = APIRouter(prefix=ADMIN_PREFIX, tags=["admin"])
    router = APIRouter(dependencies=[Depends(require_admin_token(runtime))])

    @public.get("/health")
    def health() -> dict[str, Any]:
        # kind: the registered simulator serving, when it stands for another service (a replay answering as insi)
        return {"simulator": runtime.name, "kind": type(runtime.simulator).name, "status": "ok",
                "dataset": runtime.simulator.dataset.name}

    @router.post("/reset")
    def reset() -> dict[str, str]:
        runtime.simulator.reset()
        runtime.faults.clear()
        runtime.record_admin("reset", {})
        return {"status": "reset"}

    @router.put("/context")
    def set_context(context: Context) -> Context:
        runtime.set_context(context.run_id, context.case_id)
        return context

    @router.put("/dataset")
    def set_dataset(choice: DatasetChoice) -> dict[str, Any]:
        try:
            dataset = dataset_from_mapping(choice.data) if choice.data else load_dataset(choice.name or "default")
        except (KeyError, ValueError, FileNotFoundError) as exc:
            raise HTTPException(422, f"data set refused: {exc}") from None
        runtime.simulator.load_dataset(dataset)
        runtime.record_admin("dataset", {"dataset": dataset.name, "version": dataset.version})
        return {"dataset": dataset.name, "patients": len(dataset.patients)}

    @router.put("/peers")
    def set_peers(peers: dict[str, PeerEntry]) -> dict[str, str]:
        """Where the other simulators of the lab are, for the calls services make to each other."""
        runtime.simulator.peers = {name: Peer(name, p.url, p.admin_token, p.ca_pem) for name, p in peers.items()}
        urls = {name: p.url for name, p in peers.items()}
        runtime.record_admin("peers", {"peers": urls})  # never the tokens
        return urls

    @router.get("/faults")
    def get_faults() -> list[FaultRule]:
        return runtime.faults.rules()

    @router.put("/faults")
    def set_faults(rules: list[FaultRule]) -> list[FaultRule]:
        _check_codes(runtime, rules)
        runtime.faults.set(rules)
        runtime.record_admin("faults", {"rules": [r.model_dump(exclude_none=True) for r in rules]})
        return runtime.faults.rules()

    @router.delete("/faults")
    def clear_faults() -> list[FaultRule]:
        runtime.faults.clear()
        runtime.record_admin("faults", {"rules": []})
        return []

    @router.get("/journal")
    def journal(run_id: str | None = None, case_id: str | None = None,
                since: int = Query(0, ge=0)) -> dict[str, Any]:
        exchanges = load_exchanges(runtime.store, run_id=run_id, case_id=case_id,
                                   simulator=runtime.name, since=since)
        return {"simulator": runtime.name, "exchanges": [e.to_json() for e in exchanges]}

    @router.get("/records")
    def records(since: int = Query(0, ge=0),
                limit: int = Query(MAX_PAGE_RECORDS, ge=0, le=MAX_PAGE_RECORDS)) -> dict[str, Any]:
        """This simulator's evidence records after ``since``, as stored: a harness elsewhere imports them."""
        return export_page(runtime.store, runtime.name, since, limit)

    public.include_router(router)
    return public


def _check_codes(runtime: SimulatorRuntime, rules: list[FaultRule]) -> None:
    catalogue = runtime.simulator.fault_catalogue
    for rule in rules:
        if not catalogue.knows(rule):
            what = "behaviour" if rule.kind == FaultKind.BEHAVIOUR else "fault_code"
            raise HTTPException(422, f"unknown {what} {rule.fault_code!r} for {runtime.name}; "
                                     f"known: {', '.join(catalogue.names(rule.kind)) or 'none'}")
