"""The JSON report and its published JSON Schema.

The report is exactly ``RunResult.model_dump(mode="json")``: one model feeds every report, so the JSON
cannot say something the HTML or JUnit do not. The schema is generated from the same model and shipped in
``reports/schemas/run-report.schema.json`` for consumers who validate reports without this code; a test
keeps the shipped file equal to the generated one. Regenerate it with::

    python -m esante.reports.json_report --write-schema

Versions (``schema_version``, and the schema's ``$id``): 1.1 adds, without changing anything 1.0 had, each
exchange's ``scheme``, ``query``, ``request_headers``, ``response_headers``, ``request_truncated``,
``injected_faults``, ``notes`` and evidence record digests, and the run's ``requirement_summary`` (derived from the
cases; ignored when a report is read back). A reader of 1.0 reads the 1.1 fields it knows; a 1.0 report reads as
1.1 with those fields empty (``esante report`` fills them from the run's evidence store). The schemas forbid
unknown properties, so a 1.1 report validates against the 1.1 schema only. 1.2 adds the run's ``interrupted`` (why
a run stopped before its end; null for a complete run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from esante.reports.model import RunResult

SCHEMA_ID = "https://esante-conformance.example/schemas/run-report-1.2.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "run-report.schema.json"


def report_document(result: RunResult) -> dict[str, Any]:
    return result.model_dump(mode="json")


def write_json(result: RunResult, path: Path) -> Path:
    text = json.dumps(report_document(result), indent=2, ensure_ascii=False) + "\n"
    Path(path).write_text(text, encoding="utf-8")
    return Path(path)


def report_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the JSON report, generated from :class:`RunResult`."""
    generated = RunResult.model_json_schema(mode="serialization")
    generated.pop("title", None)
    return {"$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID, "title": "esante-conformance run report", **generated}


def schema_text() -> str:
    return json.dumps(report_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m esante.reports.json_report", description=__doc__.splitlines()[0])
    parser.add_argument("--write-schema", action="store_true", help=f"regenerate {SCHEMA_PATH.name}")
    args = parser.parse_args(argv)
    if args.write_schema:
        SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
        SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}")
    else:
        print(schema_text(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
