"""Agenda entries a partner app keeps in sync in the citizen's space: FHIR R4 ``Appointment``.

Sync is by the app's own ``identifier`` (our design): ``PUT /fhir/Appointment?identifier=<system>|<value>``
is a conditional update (RFC-style upsert, FHIR R4 §3.1.0.4.3): it creates the entry the first time and
replaces it afterwards, so a moved or cancelled appointment updates the one entry instead of adding one.
"""

from __future__ import annotations

from typing import Any

from esante.simulators.kits.fhir.errors import Invalid, problem
from esante.simulators.kits.fhir.values import date_range

TIMED = ("booked", "arrived", "fulfilled", "checked-in", "pending", "proposed", "cancelled", "noshow")


def validate_appointment(resource: dict[str, Any], patient_ref: str) -> str:
    """The (valid R4) appointment's ``system|value`` identifier, or :class:`Invalid` with every problem."""
    problems: list[dict[str, Any]] = []
    identifiers = [i for i in resource.get("identifier") or [] if i.get("system") and i.get("value")]
    if not identifiers:
        problems.append(problem("required", "the appointment has no identifier (system and value): the app's id "
                                            "keeps the agenda in sync", "Appointment.identifier"))
    actors = [(p.get("actor") or {}).get("reference") for p in resource.get("participant") or []]
    if patient_ref not in actors:
        problems.append(problem("forbidden", f"the paired citizen ({patient_ref}) must be a participant",
                                "Appointment.participant"))
    if resource.get("status") in TIMED:
        start, end = resource.get("start"), resource.get("end")
        if not start or not end:
            problems.append(problem("required", "start and end are required for a scheduled appointment",
                                    "Appointment.start"))
        elif date_range(end).low <= date_range(start).low:  # instants, as the kit validated them
            problems.append(problem("value", "end is not after start", "Appointment.end"))
    if problems:
        raise Invalid(problems)
    return f"{identifiers[0]['system']}|{identifiers[0]['value']}"
