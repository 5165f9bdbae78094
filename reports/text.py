"""Text as the human reports show it: bodies made readable (JSON indented; XML already is, by the runner)."""

from __future__ import annotations

import json

MAX_REINDENT = 200_000


def readable_body(excerpt: str) -> str:
    """A body excerpt for people: a JSON document indented, anything else as it is (a truncated JSON excerpt,
    which no longer parses, is shown as recorded)."""
    text = excerpt.strip()
    if not text or text[0] not in "{[" or len(text) > MAX_REINDENT:
        return excerpt
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return excerpt
