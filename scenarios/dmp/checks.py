"""Conformance checks of a DMP-compatible software (DMPi), judged on what the simulated DMP noted of each call
(:class:`~esante.simulators.dmp.notes.DmpNotes`: its TD, VIHF summary, rights decision, errors and document
findings) and on what the software reported (:class:`~.models.DmpReport`). Requirement ids are those of
``campaign.yaml`` beside this file.
"""

from __future__ import annotations

from esante.harness.suite import (
    MAX_ATTEMPTS,
    ActionOutcome,
    CheckContext,
    Exchange,
    Outcome,
    StepObservation,
    check,
    describe,
    fail,
    last_report,
    ok,
    required,
    retry_storm,
    stop,
    transport_failed,
    where,
)
from esante.scenarios.dmp.models import DmpReport
from esante.simulators.dmp.notes import DmpNotes
from esante.simulators.dmp.protocol import TRANSIENT_ERRORS
from esante.simulators.kits.ihe_xds.ebrs import STATUS_APPROVED, STATUS_ARCHIVED, STATUS_DEPRECATED
from esante.simulators.kits.ihe_xds.rules import AGREEMENT, CDA_HEADER, SIGNATURE, XDS_METADATA

PATIENT_TDS = ("TD1.3a", "TD1.3b", "TD1.4", "TD1.6", "TD2.1", "TD3.1", "TD3.2", "TD3.3a", "TD3.3b", "TD3.3c",
               "TD3.3d")
UPDATE_TDS = ("TD3.3a", "TD3.3b", "TD3.3c", "TD3.3d", "TD3.3")
TRANSPORT_FAULTS = {"addressing_header_missing", "addressing_header_invalid", "action_not_supported", "body_invalid"}
#: The faults of a message the DMP cannot process as SOAP 1.2 (the SOAP 1.2 processing model).
SOAP_FAULTS = {"malformed", "version_mismatch", "must_understand"}
STATUS_URNS = {"approved": STATUS_APPROVED, "archived": STATUS_ARCHIVED, "deprecated": STATUS_DEPRECATED}


# -- reading what was observed -----------------------------------------------------------------------------
def _where(exchange: Exchange) -> str:
    return where(exchange, DmpNotes.read(exchange).td)


def calls(ctx: CheckContext, *tds: str) -> list[tuple[Exchange, DmpNotes]]:
    """The DMP calls of the case with their notes (of these TDs when given)."""
    noted = [(exchange, DmpNotes.read(exchange)) for exchange in ctx.of("dmp")]
    return [(exchange, notes) for exchange, notes in noted if not tds or notes.td in tds]


def _required(ctx: CheckContext, what: str, *tds: str) -> list[tuple[Exchange, DmpNotes]]:
    found = calls(ctx, *tds)
    required([exchange for exchange, _ in found], what, "the DMP")
    return found


def _called(ctx: CheckContext) -> list[tuple[Exchange, DmpNotes]]:
    return calls(ctx) or stop(fail("the software did not call the DMP"))


def _report(ctx: CheckContext, action: str) -> tuple[StepObservation, DmpReport]:
    step, report = last_report(ctx, action)
    if not isinstance(report, DmpReport):
        stop(fail(f"step {step.index + 1} ({step.action}) did not report as a DMP action"))
    return step, report


def _failed(exchange: Exchange) -> bool:
    """No answer, a server error, or the DMP's "try again later": a call a software may retry."""
    return transport_failed(exchange) or DmpNotes.read(exchange).error_code in TRANSIENT_ERRORS


def _findings(ctx: CheckContext, rule: str) -> Outcome:
    feeds = _required(ctx, "document feed (TD2.1)", "TD2.1")
    problems = [(exchange, finding) for exchange, notes in feeds for finding in notes.findings or []
                if finding.rule == rule and finding.severity == "error"]
    if problems:
        lines = "; ".join(f"{f.requirement} at {f.location}: {f.message}" for _, f in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        exchanges = {exchange.id: exchange for exchange, _ in problems}
        return fail(f"{len(problems)} finding(s): {lines}{more}", *exchanges.values())
    judged = [exchange for exchange, notes in feeds if notes.findings is not None]
    if not judged:
        return fail("no feed reached the document checks (every TD2.1 was refused before them)",
                    *(exchange for exchange, _ in feeds))
    return ok(f"{len(judged)} feed(s) checked, no {rule.replace('_', ' ')} error", *judged)


def _error(notes: DmpNotes) -> str:
    return f"{notes.error.code}: {notes.error.message}" if notes.error is not None else "no error noted"


# -- transport and security ----------------------------------------------------------------------------------
@check("dmp.soap12_transport", requirements=["DMP-TR-01"],
       title="Every call is a SOAP 1.2 message the DMP can process (application/soap+xml, or MTOM for "
             "ITI-41/ITI-43), marking mustUnderstand only header blocks the DMP understands")
def soap12_transport(ctx: CheckContext) -> Outcome:
    dmp = _called(ctx)
    bad = [(exchange, notes) for exchange, notes in dmp if notes.fault in SOAP_FAULTS]
    if bad:
        return fail(f"{_where(bad[0][0])}: {bad[0][1].fault_detail}", *(exchange for exchange, _ in bad))
    return ok(f"{len(dmp)} call(s), all SOAP 1.2", dmp[0][0])


@check("dmp.addressing_headers", requirements=["DMP-TR-02"],
       title="WS-Addressing Action (the transaction's) and MessageID are present, each header at most once, and "
             "any ReplyTo is anonymous")
def addressing_headers(ctx: CheckContext) -> Outcome:
    dmp = _called(ctx)
    bad = [(exchange, notes) for exchange, notes in dmp if notes.fault in TRANSPORT_FAULTS]
    if bad:
        first, notes = bad[0]
        return fail(f"{_where(first)}: {notes.fault}: {notes.fault_detail}", *(exchange for exchange, _ in bad))
    return ok(f"{len(dmp)} call(s) with the WS-Addressing headers of their transaction")


@check("dmp.vihf_accepted", requirements=["DMP-VIHF-01"],
       title="Every call carries a VIHF the DMP accepts: complete, signed by the right certificate, fresh, "
             "naming the professional, the patient's INS and the software")
def vihf_accepted(ctx: CheckContext) -> Outcome:
    dmp = _called(ctx)
    bad = [(exchange, notes) for exchange, notes in dmp if notes.fault == "vihf"]
    if bad:
        first, notes = bad[0]
        return fail(f"{_where(first)}: VIHF refused, {notes.vihf_error}: {notes.fault_detail}",
                    *(exchange for exchange, _ in bad))
    checked = [exchange for exchange, notes in dmp if notes.vihf is not None]
    return ok(f"{len(checked)} VIHF(s) accepted", *checked[:1]) if checked else \
        fail("no call reached the VIHF check", *(exchange for exchange, _ in dmp))


@check("dmp.access_mode", requirements=["DMP-VIHF-02"],
       title="The VIHF declares the access mode the professional chose (normal, régulation, bris de glace)")
def access_mode(ctx: CheckContext) -> Outcome:
    expected = str(ctx.params.get("mode", "normal"))
    checked = [(exchange, notes.vihf) for exchange, notes in calls(ctx) if notes.vihf is not None] \
        or stop(fail("no VIHF reached the DMP"))
    wrong = [(exchange, vihf) for exchange, vihf in checked if vihf.purpose != expected]
    if wrong:
        return fail(f"{_where(wrong[0][0])}: the VIHF declares purpose of use {wrong[0][1].purpose!r}, the "
                    f"professional chose {expected!r}", *(exchange for exchange, _ in wrong))
    return ok(f"{len(checked)} VIHF(s) declare the {expected} access mode", checked[0][0])


# -- the patient's record ----------------------------------------------------------------------------------
@check("dmp.existence_tested_first", requirements=["DMP-ACC-01"],
       title="The existence and authorisation of the patient's DMP are tested (TD0.2) before it is used")
def existence_tested_first(ctx: CheckContext) -> Outcome:
    used = _required(ctx, "use of a patient's DMP", *PATIENT_TDS)
    used_ids = {exchange.id for exchange, _ in used}
    tested: set[str | None] = set()
    for exchange, notes in calls(ctx):
        ins = notes.vihf.ins if notes.vihf is not None else None
        if notes.td == "TD0.2":
            tested.add(ins)
        elif exchange.id in used_ids and ins not in tested:
            return fail(f"{_where(exchange)}: the DMP of INS {ins} is used before any existence test (TD0.2)",
                        exchange)
    return ok(f"TD0.2 preceded the {len(used)} call(s) using the patient's DMP")


@check("dmp.respects_record_status", requirements=["DMP-ACC-02"],
       title="The software reports the DMP's status and does not use a closed or absent DMP")
def respects_record_status(ctx: CheckContext) -> Outcome:
    test, notes = _required(ctx, "existence test (TD0.2)", "TD0.2")[-1]
    status = notes.dmp_status
    step, report = _report(ctx, "dmp.test_existence")
    if report.record is None or report.record.status != status:
        shown = report.record.status if report.record else "nothing"
        return fail(f"step {step.index + 1}: the DMP answered {status}, the software reported {shown}", test)
    if status != "open":
        used = calls(ctx, *PATIENT_TDS)
        if used:
            return fail(f"the DMP is {status}, yet the software then sent {used[0][1].td}",
                        *(exchange for exchange, _ in used))
    return ok(f"the software reported the DMP {status}" + ("" if status == "open" else " and sent nothing more"))


@check("dmp.no_provisional_identity", requirements=["DMP-INS-01"],
       title="A patient whose identity is provisional (no qualified INS) is never sent to the DMP")
def no_provisional_identity(ctx: CheckContext) -> Outcome:
    sent = ctx.of("dmp")
    if sent:
        return fail(f"the patient's identity is provisional, yet the software sent {len(sent)} call(s) to the DMP, "
                    f"first {_where(sent[0])}", *sent)
    accepted = [(step, report) for step, report in ctx.reports("dmp.") if report.outcome is not ActionOutcome.REFUSED]
    if accepted:
        step, report = accepted[0]
        return fail(f"step {step.index + 1} ({step.action}): the software reported {describe(report)}, not "
                    "refused, for a provisional identity")
    return ok("nothing was sent to the DMP; the software refused for the provisional identity")


# -- documents -----------------------------------------------------------------------------------------------
@check("dmp.cda_header", requirements=["DMP-DOC-01"],
       title="The CDA header follows the CI-SIS minimal structuring (INS first, patient traits, author, templates)")
def cda_header(ctx: CheckContext) -> Outcome:
    return _findings(ctx, CDA_HEADER)


@check("dmp.xds_metadata", requirements=["DMP-DOC-02"],
       title="The XDS metadata use the DMP's codes and forms (patient CX, author, formatCode, hash and size)")
def xds_metadata(ctx: CheckContext) -> Outcome:
    return _findings(ctx, XDS_METADATA)


@check("dmp.metadata_agreement", requirements=["DMP-DOC-03"],
       title="The XDS metadata agree with the CDA header (patient, author, type, dates, confidentiality)")
def metadata_agreement(ctx: CheckContext) -> Outcome:
    return _findings(ctx, AGREEMENT)


@check("dmp.signature_document", requirements=["DMP-DOC-04"],
       title="Every submission carries the XAdES signature document signing its documents' digests")
def signature_document(ctx: CheckContext) -> Outcome:
    return _findings(ctx, SIGNATURE)


@check("dmp.replacement", requirements=["DMP-DOC-05"],
       title="A new version of a document replaces the old one (RPLC association), which becomes deprecated")
def replacement(ctx: CheckContext) -> Outcome:
    feeds = _required(ctx, "document feed (TD2.1)", "TD2.1")
    replacing = [(exchange, notes) for exchange, notes in feeds if notes.replaced]
    if not replacing:
        stored = [exchange for exchange, notes in feeds if notes.stored]
        return fail(f"{len(stored)} document(s) fed, none replacing the earlier version (no RPLC association)",
                    *(exchange for exchange, _ in feeds))
    exchange, notes = replacing[-1]
    return ok(f"{(notes.replaced or [''])[0]} replaced by {(notes.stored or [''])[0]}", exchange)


# -- search, retrieve, update --------------------------------------------------------------------------------
@check("dmp.search_status_filter", requirements=["DMP-SRCH-01"],
       title="A document search names the patient and the statuses wanted ($XDSDocumentEntryStatus)")
def search_status_filter(ctx: CheckContext) -> Outcome:
    searches = [exchange for exchange, notes in _required(ctx, "document search (TD3.1)", "TD3.1")
                if notes.query != "GetDocuments"] or stop(fail("no FindDocuments search reached the DMP"))
    wanted = {STATUS_URNS[status] for status in ctx.params.get("statuses", ["approved"])}
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
    searches = [(exchange, notes) for exchange, notes in _required(ctx, "document search (TD3.1)", "TD3.1")
                if notes.results is not None and notes.query == "FindDocuments"]
    if not searches:
        return fail("no search was answered with results")
    step, report = _report(ctx, "dmp.search")
    exchange, notes = searches[-1]
    returned = set(notes.results or [])
    shown = {document.unique_id for document in report.documents or []}
    expected_count = ctx.params.get("count")
    if shown != returned:
        return fail(f"step {step.index + 1}: the DMP returned {sorted(returned)}, the software shows "
                    f"{sorted(shown)}", exchange)
    if expected_count is not None and len(returned) != int(expected_count):
        return fail(f"step {step.index + 1}: {len(returned)} document(s) found, the case expects {expected_count}",
                    exchange)
    return ok(f"the software shows the {len(shown)} document(s) the DMP returned", exchange)


@check("dmp.retrieve_request", requirements=["DMP-RET-01"],
       title="A document is retrieved from the DMP's repository and opened intact")
def retrieve_request(ctx: CheckContext) -> Outcome:
    retrieves = _required(ctx, "document retrieval (TD3.2)", "TD3.2")
    answered = [(exchange, notes) for exchange, notes in retrieves if notes.retrieved]
    if not answered:
        last, notes = retrieves[-1]
        return fail(f"{_where(last)}: nothing retrieved: {_error(notes)}", *(exchange for exchange, _ in retrieves))
    step, report = _report(ctx, "dmp.retrieve")
    exchange, notes = answered[-1]
    digests = notes.sha1 or {}
    shown = {document.unique_id: document.sha1 for document in report.documents or []}
    for unique_id, sha1 in digests.items():
        if shown.get(unique_id) != sha1:
            return fail(f"step {step.index + 1}: document {unique_id} has SHA-1 {sha1}, the software reports "
                        f"{shown.get(unique_id)}", exchange)
    return ok(f"{', '.join(digests)} retrieved and reported intact", exchange)


@check("dmp.metadata_update", requirements=["DMP-UPD-01"],
       title="Masking, visibility, archiving and deletion are ITI-57 updates the DMP applies")
def metadata_update(ctx: CheckContext) -> Outcome:
    td = str(ctx.params.get("td", ""))
    updates = _required(ctx, f"metadata update ({td or 'TD3.3'})", *UPDATE_TDS)
    applied = [(exchange, notes) for exchange, notes in updates if notes.updated and (not td or notes.td == td)]
    if not applied:
        last, notes = updates[-1]
        reason = _error(notes) if notes.error is not None else "no change"
        return fail(f"{_where(last)}: the update was not applied: {reason}",
                    *(exchange for exchange, _ in updates))
    exchange, notes = applied[-1]
    return ok(f"{notes.td}: {'; '.join(notes.updated or [])}", exchange)


# -- failures ------------------------------------------------------------------------------------------------
@check("dmp.reported_outcome", requirements=["DMP-ERR-01"],
       title="The software tells the user what the DMP answered (refusal, error code, unavailability)")
def reported_outcome(ctx: CheckContext) -> Outcome:
    expected = str(ctx.params.get("outcome", ""))
    step, report = last_report(ctx, str(ctx.params.get("action", "dmp.")))
    if report.outcome.value != expected:
        return fail(f"step {step.index + 1} ({step.action}): expected outcome {expected}, the software reported "
                    f"{describe(report)[:200]}")
    code = ctx.params.get("error_code")
    if code and report.error_code != code:
        return fail(f"step {step.index + 1} ({step.action}): expected error code {code}, got {report.error_code}")
    return ok(f"step {step.index + 1} ({step.action}) reported {expected}" + (f" {code}" if code else ""))


@check("dmp.no_retry_storm", requirements=["DMP-ERR-02"],
       title="When the DMP fails or does not answer, the software retries at most twice per call")
def no_retry_storm(ctx: CheckContext) -> Outcome:
    dmp = ctx.of("dmp") or stop(fail("the software did not try to reach the DMP"))
    storm = retry_storm(dmp, _failed)
    if storm:
        return fail(f"the software called {storm[0].path} {len(storm)} times in a row while the DMP failed "
                    f"(at most {MAX_ATTEMPTS}: one call and two retries)", *storm)
    return ok(f"{len(dmp)} call(s) to the DMP, no retry storm")
