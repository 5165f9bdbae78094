"""Conformance checks of a DMP-compatible software (DMPi), judged on what the simulated DMP journaled — each
call's TD, VIHF summary, rights decision, errors and document findings (``service.py`` notes them) — and on
what the software reported. Requirement ids are declared in ``scenarios/dmp/campaign.yaml``.
"""

from __future__ import annotations

from esante.harness.suite import (
    ActionOutcome,
    ActionReport,
    CheckContext,
    Outcome,
    StepObservation,
    check,
    fail,
    longest_failure_run,
    ok,
    stop,
)
from esante.simulators.core.journal import Exchange

PATIENT_TDS = ("TD1.3a", "TD1.3b", "TD1.4", "TD1.6", "TD2.1", "TD3.1", "TD3.2", "TD3.3a", "TD3.3b", "TD3.3c",
               "TD3.3d")
TRANSPORT_FAULTS = {"addressing_header_missing", "action_not_supported", "body_invalid"}
MAX_CONSECUTIVE_FAILURES = 3  # one call and two retries
_STATUS_URN = {"approved": "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
               "archived": "urn:asip:ci-sis:2010:StatusType:Archived",
               "deprecated": "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"}


# -- reading what was observed -----------------------------------------------------------------------------
def _where(exchange: Exchange) -> str:
    td = exchange.notes.get("td")
    return f"{td + ' ' if td else ''}call at {exchange.received_at} ({exchange.method} {exchange.path})"


def calls(ctx: CheckContext, *tds: str) -> list[Exchange]:
    """The DMP calls of the case (of these TDs when given)."""
    return [e for e in ctx.of("dmp") if not tds or e.notes.get("td") in tds]


def _required(ctx: CheckContext, what: str, *tds: str) -> list[Exchange]:
    return calls(ctx, *tds) or stop(fail(f"no {what} reached the DMP in this test case"))


def _reports(ctx: CheckContext, action: str) -> list[tuple[StepObservation, ActionReport]]:
    return ctx.reports(action)


def _last(ctx: CheckContext, action: str) -> tuple[StepObservation, ActionReport]:
    found = _reports(ctx, action)
    return found[-1] if found else stop(fail(f"the case has no {action} step with a report"))


def _error(exchange: Exchange) -> str | None:
    error = exchange.notes.get("error")
    return error.get("code") if isinstance(error, dict) else None


def _findings(ctx: CheckContext, rule: str) -> Outcome:
    feeds = _required(ctx, "document feed (TD2.1)", "TD2.1")
    problems = [(e, f) for e in feeds for f in e.notes.get("findings", [])
                if f.get("rule") == rule and f.get("severity") == "error"]
    if problems:
        lines = "; ".join(f"{f['requirement']} at {f['location']}: {f['message']}" for _, f in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        exchanges = {e.id: e for e, _ in problems}
        return fail(f"{len(problems)} finding(s): {lines}{more}", *exchanges.values())
    judged = [e for e in feeds if "findings" in e.notes]
    if not judged:
        return fail("no feed reached the document checks (every TD2.1 was refused before them)", *feeds)
    return ok(f"{len(judged)} feed(s) checked, no {rule.replace('_', ' ')} error", *judged)


# -- transport and security ----------------------------------------------------------------------------------
@check("dmp.soap12_transport", requirements=["DMP-TR-01"],
       title="Every call is a SOAP 1.2 message (application/soap+xml, or MTOM for ITI-41/ITI-43)")
def soap12_transport(ctx: CheckContext) -> Outcome:
    dmp = ctx.of("dmp") or stop(fail("the software did not call the DMP"))
    bad = [e for e in dmp if e.notes.get("fault") == "malformed"]
    if bad:
        return fail(f"{_where(bad[0])}: {bad[0].notes.get('fault_detail')}", *bad)
    return ok(f"{len(dmp)} call(s), all SOAP 1.2", *dmp[:1])


@check("dmp.addressing_headers", requirements=["DMP-TR-02"],
       title="WS-Addressing Action, MessageID, To and ReplyTo are present, and the Action is the transaction's")
def addressing_headers(ctx: CheckContext) -> Outcome:
    dmp = ctx.of("dmp") or stop(fail("the software did not call the DMP"))
    bad = [e for e in dmp if e.notes.get("fault") in TRANSPORT_FAULTS]
    if bad:
        return fail(f"{_where(bad[0])}: {bad[0].notes.get('fault')}: {bad[0].notes.get('fault_detail')}", *bad)
    return ok(f"{len(dmp)} call(s) with the WS-Addressing headers of their transaction")


@check("dmp.vihf_accepted", requirements=["DMP-VIHF-01"],
       title="Every call carries a VIHF the DMP accepts: complete, signed by the right certificate, fresh, "
             "naming the professional, the patient's INS and the software")
def vihf_accepted(ctx: CheckContext) -> Outcome:
    dmp = ctx.of("dmp") or stop(fail("the software did not call the DMP"))
    bad = [e for e in dmp if e.notes.get("fault") == "vihf"]
    if bad:
        notes = bad[0].notes
        return fail(f"{_where(bad[0])}: VIHF refused, {notes.get('vihf_error')}: {notes.get('fault_detail')}", *bad)
    checked = [e for e in dmp if "vihf" in e.notes]
    return ok(f"{len(checked)} VIHF(s) accepted", *checked[:1]) if checked else \
        fail("no call reached the VIHF check", *dmp)


@check("dmp.access_mode", requirements=["DMP-VIHF-02"],
       title="The VIHF declares the access mode the professional chose (normal, régulation, bris de glace)")
def access_mode(ctx: CheckContext) -> Outcome:
    expected = str(ctx.params.get("mode", "normal"))
    checked = [e for e in ctx.of("dmp") if "vihf" in e.notes] or stop(fail("no VIHF reached the DMP"))
    wrong = [e for e in checked if e.notes["vihf"].get("purpose") != expected]
    if wrong:
        return fail(f"{_where(wrong[0])}: the VIHF declares purpose of use {wrong[0].notes['vihf'].get('purpose')!r}"
                    f", the professional chose {expected!r}", *wrong)
    return ok(f"{len(checked)} VIHF(s) declare the {expected} access mode", *checked[:1])


# -- the patient's record ----------------------------------------------------------------------------------
@check("dmp.existence_tested_first", requirements=["DMP-ACC-01"],
       title="The existence and authorisation of the patient's DMP are tested (TD0.2) before it is used")
def existence_tested_first(ctx: CheckContext) -> Outcome:
    used = _required(ctx, "use of a patient's DMP", *PATIENT_TDS)
    used_ids = {e.id for e in used}
    tested: set[str] = set()
    for exchange in ctx.of("dmp"):
        ins = (exchange.notes.get("vihf") or {}).get("ins")
        if exchange.notes.get("td") == "TD0.2":
            tested.add(ins)
        elif exchange.id in used_ids and ins not in tested:
            return fail(f"{_where(exchange)}: the DMP of INS {ins} is used before any existence test (TD0.2)",
                        exchange)
    return ok(f"TD0.2 preceded the {len(used)} call(s) using the patient's DMP")


@check("dmp.respects_record_status", requirements=["DMP-ACC-02"],
       title="The software reports the DMP's status and does not use a closed or absent DMP")
def respects_record_status(ctx: CheckContext) -> Outcome:
    tests = _required(ctx, "existence test (TD0.2)", "TD0.2")
    status = tests[-1].notes.get("dmp_status")
    step, report = _last(ctx, "dmp.test_existence")
    if report.record is None or report.record.status != status:
        shown = report.record.status if report.record else "nothing"
        return fail(f"step {step.index + 1}: the DMP answered {status}, the software reported {shown}", tests[-1])
    if status != "open":
        used = calls(ctx, *PATIENT_TDS)
        if used:
            return fail(f"the DMP is {status}, yet the software then sent {used[0].notes.get('td')}", *used)
    return ok(f"the software reported the DMP {status}" + ("" if status == "open" else " and sent nothing more"))


@check("dmp.no_provisional_identity", requirements=["DMP-INS-01"],
       title="A patient whose identity is provisional (no qualified INS) is never sent to the DMP")
def no_provisional_identity(ctx: CheckContext) -> Outcome:
    sent = ctx.of("dmp")
    if sent:
        return fail(f"the patient's identity is provisional, yet the software sent {len(sent)} call(s) to the DMP, "
                    f"first {_where(sent[0])}", *sent)
    refused = [(s, r) for s, r in ctx.reports("dmp.") if r.outcome is not ActionOutcome.REFUSED]
    if refused:
        step, report = refused[0]
        return fail(f"step {step.index + 1} ({step.action}): the software reported {report.outcome.value}, not "
                    "refused, for a provisional identity")
    return ok("nothing was sent to the DMP; the software refused for the provisional identity")


# -- documents -----------------------------------------------------------------------------------------------
@check("dmp.cda_header", requirements=["DMP-DOC-01"],
       title="The CDA header follows the CI-SIS minimal structuring (INS first, patient traits, author, templates)")
def cda_header(ctx: CheckContext) -> Outcome:
    return _findings(ctx, "cda_header")


@check("dmp.xds_metadata", requirements=["DMP-DOC-02"],
       title="The XDS metadata use the DMP's codes and forms (patient CX, author, formatCode, hash and size)")
def xds_metadata(ctx: CheckContext) -> Outcome:
    return _findings(ctx, "xds_metadata")


@check("dmp.metadata_agreement", requirements=["DMP-DOC-03"],
       title="The XDS metadata agree with the CDA header (patient, author, type, dates, confidentiality)")
def metadata_agreement(ctx: CheckContext) -> Outcome:
    return _findings(ctx, "agreement")


@check("dmp.signature_document", requirements=["DMP-DOC-04"],
       title="Every submission carries the XAdES signature document signing its documents' digests")
def signature_document(ctx: CheckContext) -> Outcome:
    return _findings(ctx, "signature")


@check("dmp.replacement", requirements=["DMP-DOC-05"],
       title="A new version of a document replaces the old one (RPLC association), which becomes deprecated")
def replacement(ctx: CheckContext) -> Outcome:
    feeds = _required(ctx, "document feed (TD2.1)", "TD2.1")
    replacing = [e for e in feeds if e.notes.get("replaced")]
    if not replacing:
        stored = [e for e in feeds if e.notes.get("stored")]
        return fail(f"{len(stored)} document(s) fed, none replacing the earlier version (no RPLC association)",
                    *feeds)
    return ok(f"{replacing[-1].notes['replaced'][0]} replaced by {replacing[-1].notes['stored'][0]}", replacing[-1])


# -- search, retrieve, update --------------------------------------------------------------------------------
@check("dmp.search_status_filter", requirements=["DMP-SRCH-01"],
       title="A document search names the patient and the statuses wanted ($XDSDocumentEntryStatus)")
def search_status_filter(ctx: CheckContext) -> Outcome:
    searches = [e for e in _required(ctx, "document search (TD3.1)", "TD3.1")
                if e.notes.get("query") != "GetDocuments"] or stop(fail("no FindDocuments search reached the DMP"))
    wanted = {_STATUS_URN[s] for s in ctx.params.get("statuses", ["approved"])}
    for exchange in searches:
        body = exchange.request_body.decode("utf-8", "replace")
        if "$XDSDocumentEntryStatus" not in body:
            return fail(f"{_where(exchange)}: FindDocuments without $XDSDocumentEntryStatus", exchange)
        missing = [urn for urn in sorted(wanted) if urn not in body]
        if missing:
            return fail(f"{_where(exchange)}: the statuses asked for are missing: {', '.join(missing)}", exchange)
    return ok(f"{len(searches)} search(es) with the statuses {', '.join(sorted(wanted))}", *searches)


@check("dmp.documents_listed", requirements=["DMP-SRCH-02"],
       title="The software shows exactly the documents the DMP returned (signature documents aside)")
def documents_listed(ctx: CheckContext) -> Outcome:
    searches = [e for e in _required(ctx, "document search (TD3.1)", "TD3.1")
                if "results" in e.notes and e.notes.get("query") == "FindDocuments"]
    if not searches:
        return fail("no search was answered with results")
    step, report = _last(ctx, "dmp.search")
    returned = set(searches[-1].notes["results"])
    shown = {d.unique_id for d in report.documents or []}
    expected_count = ctx.params.get("count")
    if shown != returned:
        return fail(f"step {step.index + 1}: the DMP returned {sorted(returned)}, the software shows "
                    f"{sorted(shown)}", searches[-1])
    if expected_count is not None and len(returned) != int(expected_count):
        return fail(f"step {step.index + 1}: {len(returned)} document(s) found, the case expects {expected_count}",
                    searches[-1])
    return ok(f"the software shows the {len(shown)} document(s) the DMP returned", searches[-1])


@check("dmp.retrieve_request", requirements=["DMP-RET-01"],
       title="A document is retrieved from the DMP's repository and opened intact")
def retrieve_request(ctx: CheckContext) -> Outcome:
    retrieves = _required(ctx, "document retrieval (TD3.2)", "TD3.2")
    answered = [e for e in retrieves if e.notes.get("retrieved")]
    if not answered:
        return fail(f"{_where(retrieves[-1])}: nothing retrieved: {retrieves[-1].notes.get('error')}", *retrieves)
    step, report = _last(ctx, "dmp.retrieve")
    digests = answered[-1].notes.get("sha1", {})
    shown = {d.unique_id: d.sha1 for d in report.documents or []}
    for unique_id, sha1 in digests.items():
        if shown.get(unique_id) != sha1:
            return fail(f"step {step.index + 1}: document {unique_id} has SHA-1 {sha1}, the software reports "
                        f"{shown.get(unique_id)}", answered[-1])
    return ok(f"{', '.join(digests)} retrieved and reported intact", answered[-1])


@check("dmp.metadata_update", requirements=["DMP-UPD-01"],
       title="Masking, visibility, archiving and deletion are ITI-57 updates the DMP applies")
def metadata_update(ctx: CheckContext) -> Outcome:
    td = str(ctx.params.get("td", ""))
    updates = _required(ctx, f"metadata update ({td or 'TD3.3'})", "TD3.3a", "TD3.3b", "TD3.3c", "TD3.3d", "TD3.3")
    applied = [e for e in updates if e.notes.get("updated") and (not td or e.notes.get("td") == td)]
    if not applied:
        last = updates[-1]
        return fail(f"{_where(last)}: the update was not applied: {last.notes.get('error') or 'no change'}", *updates)
    return ok(f"{applied[-1].notes.get('td')}: {'; '.join(applied[-1].notes['updated'])}", applied[-1])


# -- failures ------------------------------------------------------------------------------------------------
@check("dmp.reported_outcome", requirements=["DMP-ERR-01"],
       title="The software tells the user what the DMP answered (refusal, error code, unavailability)")
def reported_outcome(ctx: CheckContext) -> Outcome:
    expected = str(ctx.params.get("outcome", ""))
    step, report = _last(ctx, str(ctx.params.get("action", "dmp.")))
    if report.outcome.value != expected:
        return fail(f"step {step.index + 1} ({step.action}): expected outcome {expected}, the software reported "
                    f"{report.outcome.value} ({report.message[:200]})")
    code = ctx.params.get("error_code")
    if code and report.error_code != code:
        return fail(f"step {step.index + 1} ({step.action}): expected error code {code}, got {report.error_code}")
    return ok(f"step {step.index + 1} ({step.action}) reported {expected}" + (f" {code}" if code else ""))


@check("dmp.no_retry_storm", requirements=["DMP-ERR-02"],
       title="When the DMP fails or does not answer, the software retries at most twice per call")
def no_retry_storm(ctx: CheckContext) -> Outcome:
    dmp = ctx.of("dmp") or stop(fail("the software did not try to reach the DMP"))
    run = longest_failure_run(dmp, lambda e: e.outcome != "answered" or (e.status or 500) >= 500
                              or _error(e) in ("XDSRegistryNotAvailable", "DMPServiceUnavailable"))
    if len(run) > MAX_CONSECUTIVE_FAILURES:
        return fail(f"the software called {run[0].path} {len(run)} times in a row while the DMP failed "
                    f"(at most {MAX_CONSECUTIVE_FAILURES}: one call and two retries)", *run)
    return ok(f"{len(dmp)} call(s) to the DMP, no retry storm")
