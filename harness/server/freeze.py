"""What an official session freezes, so that it is reproducible: the campaign file (digest and version), the
harness version, each simulator's version (the package version and the SHA-256 of its code and data), the
data sets' digests and the candidate's version. A run of the session recomputes them where it runs and refuses
to start if anything differs.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import entry_points
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from esante.harness import __version__
from esante.harness.campaign import LoadedCampaign
from esante.simulators.core.app import SIMULATORS_GROUP, simulator_names

_SKIPPED = ("__pycache__",)


def _tree_digest(root: Traversable | Path) -> str:
    """SHA-256 over every file under ``root`` (relative name and content, in name order)."""
    digest = hashlib.sha256()
    for name, item in sorted(_walk(root, "")):
        digest.update(name.encode() + b"\0" + item.read_bytes() + b"\0")
    return digest.hexdigest()


def _walk(folder: Traversable | Path, prefix: str) -> list[tuple[str, Traversable | Path]]:
    found: list[tuple[str, Traversable | Path]] = []
    for item in folder.iterdir():
        if item.name in _SKIPPED or item.name.endswith(".pyc"):
            continue
        name = f"{prefix}{item.name}"
        found += _walk(item, name + "/") if item.is_dir() else [(name, item)]
    return found


def simulator_version(name: str) -> dict[str, str]:
    [point] = [ep for ep in entry_points(group=SIMULATORS_GROUP) if ep.name == name]
    package = point.value.split(":")[0]
    return {"version": __version__, "sha256": _tree_digest(files(package))}


def dataset_digest(name: str) -> str:
    folder = Path(name)
    if not folder.is_dir():
        folder = files("esante.simulators.dataset").joinpath("data", name)  # type: ignore[assignment]
    return _tree_digest(folder)


def freeze(loaded: LoadedCampaign, candidate: dict[str, Any]) -> dict[str, Any]:
    """The versions and digests a session is bound to."""
    header = loaded.campaign.campaign
    datasets = sorted({header.dataset, *(c.preconditions.dataset for c in loaded.campaign.cases
                                         if c.preconditions.dataset)})
    known = set(simulator_names())
    return {
        "campaign": {"id": header.id, "version": header.version, "sha256": loaded.sha256},
        "harness_version": __version__,
        "simulators": {name: simulator_version(name) for name in header.simulators if name in known},
        "datasets": {name: dataset_digest(name) for name in datasets},
        "candidate": candidate,
    }


def candidate_identity(candidate: Any) -> dict[str, Any]:
    """What a session freezes of its candidate (a :class:`~.models.Candidate`)."""
    return {"name": candidate.name, "version": candidate.version, "vendor": candidate.vendor,
            "mode": candidate.mode}


def differences(frozen: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """What differs between two freezes, named by path (``campaign.sha256``)."""
    found = []
    for key in sorted(set(frozen) | set(current)):
        then, now = frozen.get(key), current.get(key)
        if isinstance(then, dict) and isinstance(now, dict):
            found += differences(then, now, f"{prefix}{key}.")
        elif then != now:
            found.append(f"{prefix}{key}: frozen {then!r}, now {now!r}")
    return found
