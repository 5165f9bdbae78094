"""A versioned resource store (FHIR R4 §3.1.0.4 "update", §3.1.0.6 "vread", §3.1.0.12 "history"): every
version of every resource kept, each with ``meta.versionId`` and ``meta.lastUpdated``; logical ids from
``[A-Za-z0-9\\-\\.]`` (the R4 ``id`` type). In memory, behind one re-entrant lock that a service may hold
around several operations (a transaction)."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from esante.simulators.kits.fhir.errors import FhirError


def new_resource_id() -> str:
    """A server-assigned logical id: 16 hex digits (the R4 id pattern, unguessable)."""
    return secrets.token_hex(8)


def instant(moment: datetime | None = None) -> str:
    """An R4 ``instant`` (milliseconds, UTC)."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def etag(resource: dict[str, Any]) -> str:
    """The weak ETag of a version (R4 §3.1.0.5: ``W/"<versionId>"``)."""
    return f'W/"{resource["meta"]["versionId"]}"'


class ResourceStore:
    """Resources by type and id, every version kept (the last one current)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._versions: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def current(self, resource_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [versions[-1] for (kind, _), versions in self._versions.items() if kind == resource_type]

    def get(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        with self.lock:
            versions = self._versions.get((resource_type, resource_id))
            return versions[-1] if versions else None

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        found = self.get(resource_type, resource_id)
        if found is None:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")
        return found

    def history(self, resource_type: str, resource_id: str) -> list[dict[str, Any]]:
        """Every version, the newest first."""
        with self.lock:
            versions = self._versions.get((resource_type, resource_id))
        if not versions:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known")
        return list(reversed(versions))

    def vread(self, resource_type: str, resource_id: str, version: str) -> dict[str, Any]:
        for resource in self.history(resource_type, resource_id):
            if resource["meta"]["versionId"] == version:
                return resource
        raise FhirError(404, "not-found", f"{resource_type}/{resource_id} has no version {version}")

    def create(self, resource: dict[str, Any], resource_id: str | None = None) -> dict[str, Any]:
        """Store a new resource (the server assigns its id unless given), version 1."""
        stored = _versioned(resource, resource_id or new_resource_id(), 1)
        with self.lock:
            self._versions[(stored["resourceType"], stored["id"])] = [stored]
        return stored

    def update(self, resource: dict[str, Any], resource_id: str) -> dict[str, Any]:
        """Store the next version of an existing resource."""
        kind = resource["resourceType"]
        with self.lock:
            versions = self._versions[(kind, resource_id)]
            stored = _versioned(resource, resource_id, int(versions[-1]["meta"]["versionId"]) + 1)
            versions.append(stored)
        return stored


def _versioned(resource: dict[str, Any], resource_id: str, version: int) -> dict[str, Any]:
    meta = {**resource.get("meta", {}), "versionId": str(version), "lastUpdated": instant()}
    return {"resourceType": resource["resourceType"], "id": resource_id, "meta": meta,
            **{k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}}
