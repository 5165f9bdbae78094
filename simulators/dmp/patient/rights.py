"""The DMP's functional rights matrix (PDT-INF-526 v1.8), kept as data in ``data/rights.yaml``: may this
actor, authenticated this way, in this access mode, perform this transaction?

The actor comes from the VIHF: indirect authentication is the structure's certificate; in direct
authentication a national id that is not RPPS-based (``8``...) or a role outside TRE_G15 is a CPE holder; a
doctor (profession 10) is the patient's médecin traitant when the caller says so, a médecin du travail when
their savoir-faire says so (SM25), else a doctor; any other profession is a "PS non médecin". The mode is the
VIHF's purpose of use (normal, centre_15 = régulation, bris_de_glace).

A refusal carries the DMP's public error code ``DMPAccessDeniedByRightsService``. A conditional cell
(``oui (n)``) is allowed; its note (e.g. "own documents only") is in the reason for the caller to enforce.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from esante.simulators.dataset import Dataset
from esante.simulators.dmp.transport.vihf import PROFESSION_SYSTEM, Vihf

ACCESS_DENIED = "DMPAccessDeniedByRightsService"
_RIGHTS_FILE = Path(__file__).parent.parent / "data" / "rights.yaml"


@dataclass(frozen=True)
class Decision:
    """The matrix's answer; ``reason`` names the cell (transaction, action, actor, mode, sheet value)."""

    allowed: bool
    reason: str
    actor: str
    mode: str
    cell: str | None
    code: str | None  # ACCESS_DENIED when refused


@cache
def matrix(path: Path = _RIGHTS_FILE) -> dict[str, Any]:
    """The matrix as loaded from YAML (read once)."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def actor_of(vihf: Vihf, *, is_treating_doctor: bool = False, dataset: Dataset | None = None) -> str:
    """The sheet's actor category for this VIHF (see the module docstring)."""
    data = matrix()
    indirect = vihf.auth_mode == "INDIRECTE" or (
        vihf.auth_mode == "INDIRECTE_RENFORCEE" and data["renforcee_uses"] != "professional")
    if indirect:
        return "structure"
    if not vihf.national_id.startswith("8") or vihf.profession.system != PROFESSION_SYSTEM:
        return "cpe"
    if vihf.profession.code != "10":
        return "ps_non_medecin"
    if is_treating_doctor:
        return "medecin_traitant"
    savoir_faire = vihf.savoir_faire.code if vihf.savoir_faire else None
    if savoir_faire is None and dataset is not None:
        try:
            savoir_faire = dataset.professional_by_national_id(vihf.national_id).specialty_code
        except KeyError:
            savoir_faire = None
    return "medecin_du_travail" if savoir_faire in data["occupational_health_savoir_faire"] else "medecin"


def _column(actor: str, mode: str) -> int | None:
    for index, column in enumerate(matrix()["columns"]):
        if column["actor"] == actor and column["mode"] in (mode, "any"):
            return index
    return None


def _note_text(cell: str) -> str:
    notes = matrix()["notes"]
    if "(" not in cell:
        return ""
    number = cell[cell.index("(") + 1:cell.index(")")]
    return f"; note ({number}): {notes.get(number, 'unknown note')}"


def decide(transaction: str, vihf: Vihf, *, action: str | None = None, is_treating_doctor: bool = False,
           dataset: Dataset | None = None) -> Decision:
    """May the VIHF's actor perform ``transaction`` (``TD3.2``...) in the VIHF's mode? ``action`` picks a
    row of a transaction with several (``TD3.2`` ``masques``); the first row is the default."""
    data = matrix()
    actor = actor_of(vihf, is_treating_doctor=is_treating_doctor, dataset=dataset)
    mode = vihf.purpose.code
    where = f"{data['source']} {transaction}"
    if transaction in data["unlisted"]:
        return Decision(True, f"{where} ({data['unlisted'][transaction]}) has no row in the matrix: not restricted",
                        actor, mode, None, None)
    rows = data["transactions"].get(transaction)
    if rows is None:
        return Decision(False, f"{where}: unknown transaction", actor, mode, None, ACCESS_DENIED)
    name = action or next(iter(rows))
    if name not in rows:
        return Decision(False, f"{where}: unknown action {name!r} (known: {', '.join(rows)})", actor, mode, None,
                        ACCESS_DENIED)
    row = rows[name]
    who = f"{data['actors'][actor]} / {data['modes'].get(mode, mode)}"
    column = _column(actor, mode)
    if column is None:
        return Decision(False, f"{where} '{row['title']}' × {who}: the sheet has no such column (this mode is "
                        "not open to this actor)", actor, mode, None, ACCESS_DENIED)
    cell = row["cells"][column]
    allowed = cell.startswith("oui")
    star = f"; note (*): {data['notes']['*']}" if "(*)" in row["title"] else ""
    reason = f"{where} '{row['title']}' × {who}: {cell}{_note_text(cell)}{star}"
    return Decision(allowed, reason, actor, mode, cell, None if allowed else ACCESS_DENIED)
