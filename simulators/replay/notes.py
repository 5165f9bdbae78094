"""What the replay simulator notes about each call: the recording that answered it, or why none did."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from esante.simulators.core.notes import Notes


class ReplayNotes(Notes):
    """One replayed call: its matching keys, and the recording answering it (``None``: unmatched)."""

    match: dict[str, Any] = Field(default_factory=dict, description="the keys computed from the request")
    recording: str | None = Field(default=None, description="the file of the recorded answer sent back")
    unmatched: bool = Field(default=False, description="no recording matches: the service's error form was sent")
    ignored_behaviours: list[str] = Field(default_factory=list, description="misbehaviours asked of the service, "
                                                                            "which a replay cannot play")
