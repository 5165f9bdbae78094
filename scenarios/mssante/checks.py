"""Conformance checks of a mail-capable health software on MSSanté, judged on what the simulated operator
journaled: SMTP and IMAP sessions (transcripts, authentication attempts, each message's findings), directory
searches, and what the candidate reported. What the simulator observed is read as :class:`MssNotes`; the
requirement ids are those of the MSSanté campaign (``campaign.yaml`` beside this file).
"""

from __future__ import annotations

from typing import TypeVar

from esante.harness.suite import (
    MAX_ATTEMPTS,
    ActionOutcome,
    CheckContext,
    Exchange,
    Outcome,
    check,
    describe,
    fail,
    last_report,
    ok,
    required,
    retry_storm,
    stop,
    where,
)
from esante.simulators.mssante.notes import MessageNotes, MssNotes
from esante.simulators.mssante.protocol import FHIR_BASE, PATIENT_DOMAIN, SASL_MECHANISMS, SASL_TOKEN_MECHANISMS

SERVERS = "the MSSanté servers"
#: Finding rules mss.xdm_archive judges (the DMP's document checks are evidence for now: the message's
#: ``dmp_findings``).
XDM_RULES = ("xdm.", "cda.")
Sent = tuple[Exchange, MessageNotes]
T = TypeVar("T")


# -- reading what was observed -------------------------------------------------------------------------------
def sessions(ctx: CheckContext, protocol: str | None = None) -> list[Exchange]:
    return [e for e in ctx.of("mssante") if e.method in ((protocol,) if protocol else ("SMTP", "IMAP"))]


def used_sessions(ctx: CheckContext) -> list[Exchange]:
    """The sessions in which the client said something, or stop: none reached the servers."""
    return required([s for s in sessions(ctx) if client_lines(s)], "mail session", SERVERS)


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


def observed(found: list[T], what: str) -> list[T]:
    """``found`` (messages, attempts...), or stop the check: nothing of the kind reached the servers."""
    return found or stop(fail(f"no {what} reached {SERVERS} in this test case"))


def messages(ctx: CheckContext, kind: str = "mail") -> list[Sent]:
    """Each message submitted over SMTP in this test case (``mail`` or ``mdn``), with its session."""
    return [(e, m) for e in sessions(ctx, "SMTP") for m in MssNotes.read(e).messages if m.kind == kind]


def to_patient(message: MessageNotes) -> bool:
    return any(t.lower().endswith("@" + PATIENT_DOMAIN) for t in message.to)


def at(session: Exchange, message: MessageNotes) -> str:
    return f"{where(session)}, message {message.message_id or '(no Message-ID)'}"


def findings_of(found: list[Sent], *prefixes: str) -> list[str]:
    return [f"{at(e, m)}: {f.location}: {f.message}" for e, m in found for f in m.findings
            if f.rule.startswith(prefixes)]


def _judged(found: list[Sent], problems: list[str], what: str) -> Outcome:
    if problems:
        return fail("; ".join(problems[:5]), *(e for e, _ in found))
    return ok(f"{len(found)} {what} without fault", *(e for e, _ in found))


# -- transport and authentication ------------------------------------------------------------------------------
@check("mss.starttls", requirements=["MSS-TLS-01"],
       title="Every SMTP and IMAP session negotiates STARTTLS before authenticating or sending")
def starttls(ctx: CheckContext) -> Outcome:
    used = used_sessions(ctx)
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
    used = used_sessions(ctx)
    accepted = 0
    for session in used:
        for line in client_lines(session):
            verb, _, rest = line.partition(" ")
            if verb == "LOGIN" or (verb in ("AUTH", "AUTHENTICATE") and rest.split(" ")[0] not in SASL_MECHANISMS):
                return fail(f"{where(session)}: authentication '{line[:30]}': MSSanté accepts only a PSC token "
                            "(XOAUTH2, OAUTHBEARER) or an application certificate (EXTERNAL)", session)
        accepted += sum(a.outcome == "accepted" for a in MssNotes.read(session).auth)
    if not accepted:
        return fail("no authentication was accepted in this test case", *used)
    return ok(f"{accepted} authentication(s) with a PSC token or a certificate", *used)


@check("mss.token_fresh", requirements=["MSS-AUTH-02"],
       title="The PSC access token is refreshed before it expires: no expired token is presented")
def token_fresh(ctx: CheckContext) -> Outcome:
    attempts = [(s, a) for s in sessions(ctx) for a in MssNotes.read(s).auth if a.mechanism in SASL_TOKEN_MECHANISMS]
    observed(attempts, "token authentication")
    stale = [(s, a) for s, a in attempts if a.token_active is False]
    if stale:
        s, a = stale[0]
        return fail(f"{where(s)}: the token presented for {a.mailbox} is not active ({a.reason}): "
                    "it should have been refreshed first", s)
    return ok(f"{len(attempts)} token authentication(s), every token active", *(s for s, _ in attempts))


# -- directory ------------------------------------------------------------------------------------------------
@check("mss.directory_lookup", requirements=["MSS-DIR-01"],
       title="A professional recipient's address is taken from the directory (Annuaire Santé), not guessed")
def directory_lookup(ctx: CheckContext) -> Outcome:
    searches = [e for e in ctx.of("mssante") if e.path.startswith(FHIR_BASE) and e.status == 200]
    found = {m for e in searches for m in MssNotes.read(e).mailboxes}
    sent = [(e, m) for e, m in messages(ctx) if not to_patient(m)]
    refused = [r.to for e in sessions(ctx, "SMTP") for r in MssNotes.read(e).refused if r.to]
    if not sent and not refused:
        required(searches, "directory search", SERVERS)
        _, lookup = last_report(ctx, "mss.lookup_recipient", "the directory lookup")
        if not any(m in lookup.message.lower() for m in found):
            return fail(f"the directory answered mailboxes {', '.join(sorted(found)) or '(none)'} but the software "
                        f"showed none of them ({describe(lookup)})", *searches)
        return ok(f"the recipient's mailbox was found in the directory ({lookup.message})", *searches)
    for address in [t for _, m in sent for t in m.to] + refused:
        if address.lower() not in found:
            return fail(f"mail to {address}: no directory search answered this address before it was used "
                        f"(searches: {len(searches)}); the address was guessed or typed",
                        *searches, *(e for e, _ in sent))
    return ok("every professional recipient's address came from the directory", *searches)


# -- the messages ---------------------------------------------------------------------------------------------
@check("mss.required_headers", requirements=["MSS-HDR-01", "MSS-HDR-03"],
       title="Every message carries X-MSS-NIL; a structured one X-MSS-CODECDA (its CDA codes) and X-MSS-INS")
def required_headers(ctx: CheckContext) -> Outcome:
    found = observed(messages(ctx), "message")
    problems = findings_of(found, "headers.nil", "headers.codecda", "headers.ins")
    return _judged(found, problems, "message(s) with their X-MSS headers")


@check("mss.patient_mes_fin", requirements=["MSS-HDR-02"],
       title="Mail to a patient (@patient.mssante.fr) carries X-MSS-MES: FIN")
def patient_mes_fin(ctx: CheckContext) -> Outcome:
    found = observed([(e, m) for e, m in messages(ctx) if to_patient(m)], "message to a patient")
    return _judged(found, findings_of(found, "headers.mes_fin"), "message(s) to a patient")


def _structured(ctx: CheckContext) -> list[Sent]:
    return observed([(e, m) for e, m in messages(ctx) if m.structured], "structured message")


@check("mss.structured_subject", requirements=["MSS-STR-01"],
       title="A message with a structured document has the subject XDM/1.0/DDM+<libellé> <NOM> <prénom> <date>")
def structured_subject(ctx: CheckContext) -> Outcome:
    found = _structured(ctx)
    return _judged(found, findings_of(found, "subject."), "structured message(s)")


@check("mss.xdm_archive", requirements=["MSS-XDM-01", "MSS-XDM-02"],
       title="IHE_XDM.ZIP: README.TXT, INDEX.HTM, IHE_XDM/SUBSET01 with METADATA.XML (SubmitObjectsRequest) and "
             "8.3 upper-case names; hashes and sizes agree; metadata and CDA name the same patient")
def xdm_archive(ctx: CheckContext) -> Outcome:
    found = _structured(ctx)
    return _judged(found, findings_of(found, *XDM_RULES), "XDM archive(s)")


# -- read receipts ----------------------------------------------------------------------------------------------
def _original(ctx: CheckContext, check_name: str) -> str:
    original = ctx.params.get("original")
    if not original:
        raise ValueError(f"{check_name} needs with: {{original: <Message-ID>}}")
    return str(original)


def _receipts(ctx: CheckContext, original: str) -> list[Sent]:
    return [(e, m) for e, m in messages(ctx, "mdn") if m.original_message_id == original]


@check("mss.read_receipt", requirements=["MSS-MDN-01"],
       title="A read receipt (RFC 8098 MDN, processed) answers a message that asked for one, and only such")
def read_receipt(ctx: CheckContext) -> Outcome:
    original, expected = _original(ctx, "mss.read_receipt"), ctx.params.get("expect", "processed")
    unsolicited = findings_of(messages(ctx, "mdn"), "mdn.unsolicited")
    if unsolicited:
        return fail("; ".join(unsolicited), *(e for e, _ in messages(ctx, "mdn")))
    found = _receipts(ctx, original)
    if expected == "none":
        if found:
            return fail(f"{at(*found[0])}: a read receipt for {original}, which asked for none", found[0][0])
        return ok(f"no read receipt for {original}, which asked for none", *sessions(ctx))
    if not found:
        return fail(f"no read receipt answered {original}, which asked for one (Disposition-Notification-To)",
                    *sessions(ctx))
    return _judged(found, findings_of(found, "mdn.form", "mdn.disposition"), f"read receipt(s) for {original}")


@check("mss.error_receipt", requirements=["MSS-MDN-02"],
       title="A document for an unknown patient is not integrated: an error receipt 902 answers it")
def error_receipt(ctx: CheckContext) -> Outcome:
    original = _original(ctx, "mss.error_receipt")
    found = _receipts(ctx, original)
    if not found:
        return fail(f"no receipt answered {original}, whose patient is unknown (an error receipt 902 is due)",
                    *sessions(ctx))
    return _judged(found, findings_of(found, "mdn.error_902", "mdn.form"), f"receipt(s) for {original}")


# -- failures ---------------------------------------------------------------------------------------------------
def _transient(session: Exchange) -> bool:
    """A session an injected fault made fail for now: a busy server, a 4xx reply, a dropped connection."""
    notes = MssNotes.read(session)
    return bool(notes.injected_faults) and (
        session.outcome == "dropped" or session.status in (421, 451, 452) or notes.dropped_after_data)


def _delivered(session: Exchange) -> bool:
    return bool(MssNotes.read(session).messages)


@check("mss.transient_failures", requirements=["MSS-ERR-01"],
       title="A transient failure (4xx, busy server, dropped connection) is retried, at most twice, and the user "
             "is told when the message could not be sent")
def transient_failures(ctx: CheckContext) -> Outcome:
    smtp = [s for s in sessions(ctx, "SMTP") if client_lines(s) or s.status]
    first = next((i for i, s in enumerate(smtp) if _transient(s)), None)
    if first is None:
        return fail("no transient failure was observed in this test case", *smtp)
    attempts = smtp[first:]
    if len(attempts) == 1:
        return fail(f"{where(attempts[0])}: a transient failure ({attempts[0].status or attempts[0].outcome}) and "
                    "no retry", *attempts)
    storm = retry_storm(attempts, _transient)
    if storm:
        return fail(f"{len(storm)} attempts in a row failed: after a transient failure at most {MAX_ATTEMPTS} are "
                    "allowed", *storm)
    if any(_delivered(s) for s in attempts):
        return ok(f"{len(attempts)} attempt(s) after a transient failure; delivered", *attempts)
    _, report = last_report(ctx, "mss.send", "the sending")
    if report.outcome not in (ActionOutcome.UNAVAILABLE, ActionOutcome.ERROR, ActionOutcome.REFUSED):
        return fail(f"the message was never accepted, yet the software reported {describe(report)}", *attempts)
    return ok(f"{len(attempts)} attempt(s) after a transient failure; the user was told it failed", *attempts)


@check("mss.reports_refusal", requirements=["MSS-ERR-02"],
       title="A permanent refusal (outside the trust space, unknown mailbox) is reported to the user, not retried")
def reports_refusal(ctx: CheckContext) -> Outcome:
    refused = required([s for s in sessions(ctx, "SMTP") if any(r.reply.startswith("5")
                                                                for r in MssNotes.read(s).refused)],
                       "refused message", SERVERS)
    _, report = last_report(ctx, "mss.send", "the sending")
    if report.outcome not in (ActionOutcome.REFUSED, ActionOutcome.ERROR):
        first = MssNotes.read(refused[0]).refused[0]
        return fail(f"the server refused {first.to or first.sender} permanently ({first.reply}), yet the software "
                    f"reported {describe(report)}", *refused)
    if len(refused) > 1:
        return fail(f"a permanent refusal was retried {len(refused) - 1} time(s)", *refused)
    return ok(f"the refusal was reported: {report.message}", *refused)
