"""JUnit XML for CI: one ``<testsuite>`` per run, one ``<testcase>`` per campaign case.

The run's identity (run id, campaign id/version/digest, harness and candidate versions, evidence chain head)
is in the suite's ``<properties>``. Each case carries one ``requirement`` property per requirement id it
judges (its own and its checks', as in the HTML traceability matrix), its ``severity`` and ``verdict``, and
one ``evidence`` property per digest of its evidence (``sha256:<digest>`` of the evidence record, or of the
exchange body as found under ``evidence/blobs/`` in the bundle).

Verdict mapping:

* ``failed`` → ``<failure type="failed">`` whose text lists the failing checks' messages;
* ``inconclusive`` → ``<failure type="inconclusive">`` too, deliberately not ``<skipped>``: a case that was
  played but could not be judged has not shown conformance, and a CI job must not turn green on it;
* ``error`` → ``<error>`` (the harness or the candidate's driver broke);
* ``skipped`` → ``<skipped message=reason>``.

Text from outside (check messages, the candidate's name) may hold characters XML 1.0 cannot carry; they
are replaced so that every JUnit consumer can parse the file.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from lxml import etree

from esante.reports.model import CaseResult, RunResult, Verdict

MESSAGE_CHARS = 1000
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FAULTY = (Verdict.FAILED, Verdict.INCONCLUSIVE, Verdict.ERROR)


def xml_text(value: object) -> str:
    """``value`` as text XML 1.0 can hold (control characters and lone surrogates become U+FFFD)."""
    return _NOT_XML.sub("\ufffd", str(value))


def junit_timestamp(value: str) -> str:
    """ISO 8601 in UTC without zone or fraction, the form the JUnit/Ant schema expects."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return xml_text(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds")


def _seconds(ms: float) -> str:
    return f"{max(ms, 0) / 1000:.3f}"


def _properties(parent: etree._Element, pairs: list[tuple[str, str]]) -> None:
    block = etree.SubElement(parent, "properties")
    for name, value in pairs:
        etree.SubElement(block, "property", name=name, value=xml_text(value))


def evidence_digests(case: CaseResult) -> list[str]:
    """Every evidence digest of a case, in order, without repeats: checks, steps, then exchange bodies."""
    digests = [ref.digest for check in case.checks for ref in check.evidence]
    digests += [ref.digest for step in case.steps for ref in step.evidence]
    for exchange in case.exchanges:
        digests.append(exchange.request_sha256)
        if exchange.response_sha256:
            digests.append(exchange.response_sha256)
    return list(dict.fromkeys(digests))


def _findings(case: CaseResult, verdicts: tuple[Verdict, ...]) -> str:
    lines = [f"{c.check} [{', '.join(c.requirements)}] {c.verdict.value}: {c.message}"
             for c in case.checks if c.verdict in verdicts]
    return xml_text("\n".join(lines) or case.reason)


def _outcome(element: etree._Element, case: CaseResult) -> None:
    reason = xml_text(case.reason[:MESSAGE_CHARS])
    if case.verdict == Verdict.FAILED:
        etree.SubElement(element, "failure", message=reason, type="failed").text = _findings(case, _FAULTY)
    elif case.verdict == Verdict.INCONCLUSIVE:
        etree.SubElement(element, "failure", message=f"inconclusive: {reason}",
                         type="inconclusive").text = _findings(case, _FAULTY)
    elif case.verdict == Verdict.ERROR:
        etree.SubElement(element, "error", message=reason, type="error").text = _findings(case, _FAULTY)
    elif case.verdict == Verdict.SKIPPED:
        etree.SubElement(element, "skipped", message=reason)


def _testcase(suite: etree._Element, result: RunResult, case: CaseResult) -> None:
    element = etree.SubElement(suite, "testcase", classname=xml_text(result.campaign.id),
                               name=xml_text(f"{case.id}: {case.title}"), time=_seconds(case.duration_ms))
    judged = dict.fromkeys([*case.requirements, *(r for check in case.checks for r in check.requirements)])
    pairs = [("requirement", r) for r in judged]
    pairs += [("severity", case.severity), ("verdict", case.verdict.value)]
    pairs += [("evidence", f"sha256:{d}") for d in evidence_digests(case)]
    _properties(element, pairs)
    _outcome(element, case)


def _run_ms(result: RunResult) -> float:
    try:
        start = datetime.fromisoformat(result.started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(result.finished_at.replace("Z", "+00:00"))
        return (end - start).total_seconds() * 1000
    except (ValueError, TypeError):
        return sum(c.duration_ms for c in result.cases)


def _suite_attributes(result: RunResult) -> dict[str, str]:
    counts = result.counts()
    return {"tests": str(len(result.cases)), "failures": str(counts["failed"] + counts["inconclusive"]),
            "errors": str(counts["error"]), "skipped": str(counts["skipped"]), "time": _seconds(_run_ms(result))}


def junit_document(result: RunResult) -> etree._Element:
    attributes = _suite_attributes(result)
    root = etree.Element("testsuites", name=xml_text(result.campaign.id), **attributes)
    suite = etree.SubElement(root, "testsuite", name=xml_text(result.campaign.id), id=xml_text(result.run_id),
                             timestamp=junit_timestamp(result.started_at), **attributes)
    _properties(suite, [("run_id", result.run_id), ("campaign_id", result.campaign.id),
                        ("campaign_version", result.campaign.version), ("campaign_sha256", result.campaign.sha256),
                        ("harness_version", result.harness_version), ("candidate_name", result.candidate.name),
                        ("candidate_version", result.candidate.version),
                        ("evidence_chain_head", result.evidence_chain_head)])
    for case in result.cases:
        _testcase(suite, result, case)
    return root


def write_junit(result: RunResult, path: Path) -> Path:
    path = Path(path)
    path.write_bytes(etree.tostring(junit_document(result), xml_declaration=True, encoding="UTF-8",
                                    pretty_print=True))
    return path
