"""The shared fictitious test data set: patients, professionals, structures and software authorisations.

Data lives in YAML files (``data/<name>/``) so that testers can read and extend it without touching code;
this package only loads and validates it. Every person in it is fictitious.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from esante.simulators.dataset.models import (
    Dataset,
    InsRecord,
    LocalTraits,
    Lps,
    Patient,
    Professional,
    Structure,
    VitaleCard,
)

__all__ = [
    "Dataset",
    "InsRecord",
    "LocalTraits",
    "Lps",
    "Patient",
    "Professional",
    "Structure",
    "VitaleCard",
    "dataset_from_mapping",
    "load_dataset",
]

# Each list of the data set lives in its own file, under a top-level key of the same name: the model's list
# fields are the files. The people and structures every service shares must be there; a service's own lists
# (PSC's relying parties, the DMP's records...) may be absent from an older or smaller data set.
_LIST_FILES = ("patients", "professionals", "structures", "lps")
_OPTIONAL_LIST_FILES = tuple(name for name, field in Dataset.model_fields.items()
                             if name not in _LIST_FILES and getattr(field.annotation, "__origin__", None) is list)


def dataset_from_mapping(data: dict[str, Any]) -> Dataset:
    """Build and validate a data set from plain data (what the YAML files hold, merged in one mapping).

    Raises pydantic's ValidationError (a ValueError) naming the offending id when the data is inconsistent.
    """
    return Dataset.model_validate(data)


def _read_yaml(folder: Traversable | Path, filename: str) -> Any:
    """Parse one YAML file of a data-set folder with the safe loader."""
    entry = folder / filename
    if not entry.is_file():
        raise FileNotFoundError(f"data set folder {folder} has no {filename}")
    return yaml.safe_load(entry.read_text(encoding="utf-8"))


def _list_from(folder: Traversable | Path, key: str) -> list[Any]:
    """Read ``<key>.yaml``, holding either a bare list or a mapping with the list under ``key``."""
    content = _read_yaml(folder, f"{key}.yaml")
    if isinstance(content, dict):
        content = content.get(key)
    if content is None:
        return []
    if not isinstance(content, list):
        raise ValueError(f"{key}.yaml in {folder} must hold a list under '{key}'")
    return content


def _mapping_from_folder(folder: Traversable | Path) -> dict[str, Any]:
    """Merge ``dataset.yaml`` (name, version) and the list files into one mapping."""
    header = _read_yaml(folder, "dataset.yaml")
    if not isinstance(header, dict):
        raise ValueError(f"dataset.yaml in {folder} must be a mapping with name and version")
    lists = {key: _list_from(folder, key) for key in _LIST_FILES}
    lists |= {key: _list_from(folder, key) for key in _OPTIONAL_LIST_FILES if (folder / f"{key}.yaml").is_file()}
    return {**header, **lists}


def _packaged_folder(name: str) -> Traversable | None:
    """The packaged ``data/<name>`` folder, when ``name`` is a bare name that has one."""
    if "/" in name or os.sep in name or name in ("", ".", ".."):
        return None
    packaged = resources.files("esante.simulators.dataset").joinpath("data", name)
    return packaged if packaged.is_dir() else None


@cache
def _load_packaged(name: str) -> Dataset:
    # Packaged data never changes while the process runs, and a Dataset is immutable: parse it once.
    folder = _packaged_folder(name)
    assert folder is not None
    return dataset_from_mapping(_mapping_from_folder(folder))


def load_dataset(name: str | os.PathLike[str] = "default") -> Dataset:
    """Load and validate a data set: a packaged one by name (parsed once per process), or any folder holding
    the same five YAML files (read afresh each time)."""
    name_str = os.fspath(name)
    if _packaged_folder(name_str) is not None:
        return _load_packaged(name_str)
    candidate = Path(name_str)
    if candidate.is_dir():
        return dataset_from_mapping(_mapping_from_folder(candidate))
    raise FileNotFoundError(f"no data set {name_str!r}: neither a packaged name (simulators/dataset/data/) "
                            "nor a folder")
