"""Conformance checks of a mail-capable health software on MSSanté, judged on what the simulated operator
journaled: SMTP and IMAP sessions (transcripts, authentication attempts, each message's findings from
:mod:`simulators.mssante.inspection`), directory searches, and what the candidate reported. Requirement ids
are declared in ``scenarios/mssante/campaign.yaml``.
"""

from __future__ import annotations

from typing import Any

from esante.harness.suite import ActionOutcome, CheckContext, Outcome, check, fail, ok, stop
from esante.simulators.core.journal import Exchange
from esante.simulators.mssante.protocol import FHIR_BASE, SASL_TOKEN_MECHANISMS

MECHANISMS = (*SASL_TOKEN_MECHANISMS, "EXTERNAL")
MAX_ATTEMPTS = 3  # one try and two retries
#: Finding rules mss.xdm_archive judges (the DMP's document checks are evidence for now: see
#: ``simulators.mssante.inspection.dmp_document_checks``).
XDM_RULES = ("xdm.", "cda.")


# -- reading what was observed -------------------------------------------------------------------------------
def sessions(ctx: CheckContext, protocol: str | None = None) -> list[Exchange]:
    return [e for e in ctx.of("mssante") if e.method in ((protocol,) if protocol else ("SMTP", "IMAP"))]


def client_lines(session: Exchange) -> list[str]:
    """The commands the client sent, upper-cased verb first (IMAP: without the tag); message content skipped."""
    lines, in_data = [], False
    for raw in session.request_body.decode("utf-8", "replace").split("\r\n"):
        if session.method == "SMTP":
            if in_data:
                in_data = raw != "."
                continue
            in_data = raw.upper() == "DATA"
            lines.append(raw.upper())
        else:
            lines.append(raw.partition(" ")[2].upper())
    return [line for line in lines if line]


def messages(ctx: CheckContext, kind: str = "mail") -> list[tuple[Exchange, dict[str, Any]]]:
    return [(e, m) for e in sessions(ctx, "SMTP") for m in e.notes.get("messages", []) if m.get("kind") == kind]


def where(session: Exchange, message: dict[str, Any] | None = None) -> str:
    text = f"{session.method} session at {session.received_at}"
    return text + (f", message {message.get('message_id') or '(no Message-ID)'}" if message else "")


def findings_of(found: list[tuple[Exchange, dict[str, Any]]], *prefixes: str) -> list[str]:
    return [f"{where(e, m)}: {f['location']}: {f['message']}" for e, m in found for f in m.get("findings", [])
            if f["rule"].startswith(prefixes)]


def _required(found: list[Any], what: str) -> list[Any]:
    return found or stop(fail(f"no {what} reached the MSSanté servers in this test case"))


def _judged(found: list[tuple[Exchange, dict[str, Any]]], problems: list[str], what: str) -> Outcome:
    if problems:
        return fail("; ".join(problems[:5]), *(e for e, _ in found))
    return ok(f"{len(found)} {what} without fault", *(e for e, _ in found))


# -- transport and authentication ------------------------------------------------------------------------------
@check("mss.starttls", requirements=["MSS-TLS-01"],
       title="Every SMTP and IMAP session negotiates STARTTLS before authenticating or sending")
def starttls(ctx: CheckContext) -> Outcome:
    used = _required([s for s in sessions(ctx) if client_lines(s)], "mail session")
    for session in used:
        lines = client_lines(session)
        tls_at = next((i for i, line in enumerate(lines) if line.startswith("STARTTLS")), None)
        work = next((i for i, line in enumerate(lines)
                     if line.startswith(("AUTH", "MAIL", "LOGIN", "SELECT"))), None)
        if work is not None and (tls_at is None or tls_at > work):
            return fail(f"{where(session)}: '{lines[work][:40]}' sent before STARTTLS (the server answers 530 / "
                        "PRIVACYREQUIRED: credentials and health data never travel in clear)", session)
    return ok(f"{len(used)} session(s), each upgraded with STARTTLS first", *used)


@check("mss.token_auth", requirements=["MSS-AUTH-01"],
       title="Mailboxes are opened with a Pro Santé Connect token (XOAUTH2/OAUTHBEARER) or, for an application "
             "mailbox, the software's certificate (EXTERNAL); never a password")
def token_auth(ctx: CheckContext) -> Outcome:
    used = _required([s for s in sessions(ctx) if client_lines(s)], "mail session")
    accepted = 0
    for session in used:
        for line in client_lines(session):
            verb, _, rest = line.partition(" ")
            if verb == "LOGIN" or (verb in ("AUTH", "AUTHENTICATE") and rest.split(" ")[0] not in MECHANISMS):
                return fail(f"{where(session)}: authentication '{line[:30]}': MSSanté accepts only a PSC token "
                            "(XOAUTH2, OAUTHBEARER) or an application certificate (EXTERNAL)", session)
        accepted += sum(a.get("outcome") == "accepted" for a in session.notes.get("auth", []))
    if not accepted:
        return fail("no authentication was accepted in this test case", *used)
    return ok(f"{accepted} authentication(s) with a PSC token or a certificate", *used)


@check("mss.token_fresh", requirements=["MSS-AUTH-02"],
       title="The PSC access token is refreshed before it expires: no expired token is presented")
def token_fresh(ctx: CheckContext) -> Outcome:
    attempts = [(s, a) for s in sessions(ctx) for a in s.notes.get("auth", []) if a.get("mechanism") in
                SASL_TOKEN_MECHANISMS]
    _required(attempts, "token authentication")
    stale = [(s, a) for s, a in attempts if a.get("token_active") is False]
    if stale:
        s, a = stale[0]
        return fail(f"{where(s)}: the token presented for {a.get('mailbox')} is not active ({a.get('reason')}): "
                    "it should have been refreshed first", s)
    return ok(f"{len(attempts)} token authentication(s), every token active", *(s for s, _ in attempts))


# -- directory ------------------------------------------------------------------------------------------------
def _searches(ctx: CheckContext) -> list[Exchange]:
    return [e for e in ctx.of("mssante") if e.path.startswith(FHIR_BASE) and e.status == 200]


@check("mss.directory_lookup", requirements=["MSS-DIR-01"],
       title="A professional recipient's address is taken from the directory (Annuaire Santé), not guessed")
def directory_lookup(ctx: CheckContext) -> Outcome:
    searches = _searches(ctx)
    found = {m for e in searches for m in e.notes.get("mailboxes", [])}
    sent = [(e, m) for e, m in messages(ctx) if not any("@patient." in t for t in m["to"])]
    refused = [r["to"] for e in sessions(ctx, "SMTP") for r in e.notes.get("refused", []) if "to" in r]
    if not sent and not refused:
        _required(searches, "directory search")
        lookup = ctx.last_report("mss.lookup_recipient")
        if lookup is None or not any(m in (lookup.message or "").lower() for m in found):
            return fail("the directory answered mailboxes "
                        f"{', '.join(sorted(found)) or '(none)'} but the software showed none of them", *searches)
        return ok(f"the recipient's mailbox was found in the directory ({lookup.message})", *searches)
    for address in [t for _, m in sent for t in m["to"]] + refused:
        if address.lower() not in found:
            return fail(f"mail to {address}: no directory search answered this address before it was used "
                        f"(searches: {len(searches)}); the address was guessed or typed",
                        *searches, *(e for e, _ in sent))
    return ok("every professional recipient's address came from the directory", *searches)


# -- the messages ---------------------------------------------------------------------------------------------
@check("mss.required_headers", requirements=["MSS-HDR-01", "MSS-HDR-03"],
       title="Every message carries X-MSS-NIL; a structured one X-MSS-CODECDA (its CDA codes) and X-MSS-INS")
def required_headers(ctx: CheckContext) -> Outcome:
    found = _required(messages(ctx), "message")
    problems = findings_of(found, "headers.nil", "headers.codecda", "headers.ins")
    return _judged(found, problems, "message(s) with their X-MSS headers")


@check("mss.patient_mes_fin", requirements=["MSS-HDR-02"],
       title="Mail to a patient (@patient.mssante.fr) carries X-MSS-MES: FIN")
def patient_mes_fin(ctx: CheckContext) -> Outcome:
    found = _required([(e, m) for e, m in messages(ctx) if any("@patient." in t for t in m["to"])],
                      "message to a patient")
    return _judged(found, findings_of(found, "headers.mes_fin"), "message(s) to a patient")


@check("mss.structured_subject", requirements=["MSS-STR-01"],
       title="A message with a structured document has the subject XDM/1.0/DDM+<libellé> <NOM> <prénom> <date>")
def structured_subject(ctx: CheckContext) -> Outcome:
    found = _required([(e, m) for e, m in messages(ctx) if m.get("structured")], "structured message")
    return _judged(found, findings_of(found, "subject."), "structured message(s)")


@check("mss.xdm_archive", requirements=["MSS-XDM-01", "MSS-XDM-02"],
       title="IHE_XDM.ZIP: README.TXT, INDEX.HTM, IHE_XDM/SUBSET01 with METADATA.XML (SubmitObjectsRequest) and "
             "8.3 upper-case names; hashes and sizes agree; metadata and CDA name the same patient")
def xdm_archive(ctx: CheckContext) -> Outcome:
    found = _required([(e, m) for e, m in messages(ctx) if m.get("structured")], "structured message")
    return _judged(found, findings_of(found, *XDM_RULES), "XDM archive(s)")


# -- read receipts ----------------------------------------------------------------------------------------------
def _receipts(ctx: CheckContext, original: str) -> list[tuple[Exchange, dict[str, Any]]]:
    return [(e, m) for e, m in messages(ctx, "mdn") if m.get("original_message_id") == original]


@check("mss.read_receipt", requirements=["MSS-MDN-01"],
       title="A read receipt (RFC 8098 MDN, processed) answers a message that asked for one, and only such")
def read_receipt(ctx: CheckContext) -> Outcome:
    original, expected = ctx.params.get("original"), ctx.params.get("expect", "processed")
    if not original:
        raise ValueError("mss.read_receipt needs with: {original: <Message-ID>}")
    unsolicited = findings_of(messages(ctx, "mdn"), "mdn.unsolicited")
    if unsolicited:
        return fail("; ".join(unsolicited), *(e for e, _ in messages(ctx, "mdn")))
    found = _receipts(ctx, original)
    if expected == "none":
        if found:
            return fail(f"{where(*found[0])}: a read receipt for {original}, which asked for none", found[0][0])
        return ok(f"no read receipt for {original}, which asked for none", *sessions(ctx))
    if not found:
        return fail(f"no read receipt answered {original}, which asked for one (Disposition-Notification-To)",
                    *sessions(ctx))
    return _judged(found, findings_of(found, "mdn.form", "mdn.disposition"), f"read receipt(s) for {original}")


@check("mss.error_receipt", requirements=["MSS-MDN-02"],
       title="A document for an unknown patient is not integrated: an error receipt 902 answers it")
def error_receipt(ctx: CheckContext) -> Outcome:
    original = ctx.params.get("original")
    if not original:
        raise ValueError("mss.error_receipt needs with: {original: <Message-ID>}")
    found = _receipts(ctx, original)
    if not found:
        return fail(f"no receipt answered {original}, whose patient is unknown (an error receipt 902 is due)",
                    *sessions(ctx))
    return _judged(found, findings_of(found, "mdn.error_902", "mdn.form"), f"receipt(s) for {original}")


# -- failures ---------------------------------------------------------------------------------------------------
def _transient(session: Exchange) -> bool:
    return bool(session.notes.get("injected_faults")) and (
        session.outcome == "dropped" or session.status in (421, 451, 452) or session.notes.get("dropped_after_data"))


def _delivered(session: Exchange) -> bool:
    return bool(session.notes.get("messages"))


@check("mss.transient_failures", requirements=["MSS-ERR-01"],
       title="A transient failure (4xx, busy server, dropped connection) is retried, at most twice, and the user "
             "is told when the message could not be sent")
def transient_failures(ctx: CheckContext) -> Outcome:
    smtp = [s for s in sessions(ctx, "SMTP") if client_lines(s) or s.status]
    first = next((i for i, s in enumerate(smtp) if _transient(s)), None)
    if first is None:
        return fail("no transient failure was observed in this test case", *smtp)
    attempts = smtp[first:]
    report = ctx.last_report("mss.send")
    if len(attempts) == 1:
        return fail(f"{where(attempts[0])}: a transient failure ({attempts[0].status or attempts[0].outcome}) and no "
                    "retry", *attempts)
    if len(attempts) > MAX_ATTEMPTS:
        return fail(f"{len(attempts)} attempts after a transient failure: at most {MAX_ATTEMPTS} are allowed",
                    *attempts)
    delivered = any(_delivered(s) for s in attempts)
    told = report is not None and report.outcome in (ActionOutcome.UNAVAILABLE, ActionOutcome.ERROR,
                                                     ActionOutcome.REFUSED)
    if not delivered and not told:
        return fail(f"the message was never accepted, yet the software reported "
                    f"{report.outcome.value if report else 'nothing'}", *attempts)
    return ok(f"{len(attempts)} attempt(s) after a transient failure; "
              f"{'delivered' if delivered else 'the user was told it failed'}", *attempts)


@check("mss.reports_refusal", requirements=["MSS-ERR-02"],
       title="A permanent refusal (outside the trust space, unknown mailbox) is reported to the user, not retried")
def reports_refusal(ctx: CheckContext) -> Outcome:
    refused = [s for s in sessions(ctx, "SMTP") if any(r.get("reply", "").startswith("5")
                                                       for r in s.notes.get("refused", []))]
    _required(refused, "refused message")
    report = ctx.last_report("mss.send")
    if report is None or report.outcome not in (ActionOutcome.REFUSED, ActionOutcome.ERROR):
        return fail(f"the server refused the recipient permanently ({refused[0].notes['refused'][0]}), yet the "
                    f"software reported {report.outcome.value if report else 'nothing'}", *refused)
    if len(refused) > 1:
        return fail(f"a permanent refusal was retried {len(refused) - 1} time(s)", *refused)
    return ok(f"the refusal was reported: {report.message}", *refused)
