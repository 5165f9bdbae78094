"""Conformance checks of an INSi client, judged on the exchanges the simulator journaled and on what the
candidate reported. ``insi.*`` checks judge the messages sent; ``identity.*`` checks judge what the
software did with the answers (identity-vigilance rules). The requirement ids are those of the INSi
campaign (``campaign.yaml`` beside this file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from esante.harness.suite import (
    ActionOutcome,
    CheckContext,
    Exchange,
    Outcome,
    StepObservation,
    check,
    fail,
    ok,
    stop,
)
from esante.scenarios.insi.models import InsiReport
from esante.simulators.core.pki import common_name_of_subject
from esante.simulators.dataset.identifiers import normalise_name
from esante.simulators.insi.protocol import (
    AUTHORISED_CERT_CNS,
    NS_CTXBAM,
    NS_CTXLPS,
    NS_RECSANS,
    NS_RECVIT,
    NS_RESULTAT,
    NS_SAML2,
    NS_SIRAM,
    Operation,
)
from esante.simulators.kits.soap import SOAP12_NS, WSSE_NS, SoapMessage, SoapRejected, parse_envelope
from esante.simulators.kits.xml import text_of


# -- reading what was observed -----------------------------------------------------------------------------
@dataclass(slots=True)
class Answer:
    """What the simulator answered to one call, as far as a check needs it."""

    kind: str  # result | fault | dropped | http_error
    code_cr: str | None = None
    active: dict[str, str] | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    tiq: dict[str, str] = field(default_factory=dict)
    fault_code: str | None = None


def _where(exchange: Exchange, index: int) -> str:
    return f"call {index + 1} ({exchange.method} {exchange.path} at {exchange.received_at})"


def request_of(exchange: Exchange) -> SoapMessage | None:
    try:
        return parse_envelope(exchange.request_body, allow_soap11=True)
    except SoapRejected:
        return None


def answer_of(exchange: Exchange) -> Answer:
    if exchange.outcome == "dropped" or exchange.status is None:
        return Answer("dropped")
    try:
        message = parse_envelope(exchange.response_body)
    except SoapRejected:
        return Answer("http_error")
    body = message.body
    if body is None or body.tag == f"{{{SOAP12_NS}}}Fault":
        erreur = body.find(f".//{{{NS_SIRAM}}}Erreur") if body is not None else None
        return Answer("fault", fault_code=erreur.get("code") if erreur is not None else None)
    r = f"{{{NS_RESULTAT}}}"
    answer = Answer("result", code_cr=text_of(body.find(f"{r}CR/{r}CodeCR")))
    individu = body.find(f"{r}INDIVIDU")
    if individu is not None:
        answer.active = _ins(individu.find(f"{r}INSACTIF"))
        answer.history = [h for e in individu.findall(f"{r}INSHISTO") if (h := _ins(e))]
        tiq = individu.find(f"{r}TIQ")
        answer.tiq = {child.tag.removeprefix(r): child.text or "" for child in tiq} if tiq is not None else {}
    return answer


def _ins(element: object) -> dict[str, str] | None:
    if element is None:
        return None
    r = f"{{{NS_RESULTAT}}}"
    return {"nir": text_of(element.find(f"{r}IdIndividu/{r}NumIdentifiant")) or "",  # type: ignore[attr-defined]
            "key": text_of(element.find(f"{r}IdIndividu/{r}Cle")) or "",  # type: ignore[attr-defined]
            "oid": text_of(element.find(f"{r}OID")) or ""}  # type: ignore[attr-defined]


def _calls(ctx: CheckContext) -> list[Exchange]:
    calls = ctx.of("insi")
    return calls or stop(fail("no call to the INSi teleservice was observed in this test case"))


def _operation_calls(ctx: CheckContext, operation: Operation) -> list[tuple[int, Exchange, SoapMessage]]:
    found = []
    for i, exchange in enumerate(ctx.of("insi")):
        message = request_of(exchange)
        if message is not None and message.body is not None and message.body.tag == operation.body_tag:
            found.append((i, exchange, message))
    return found


def _ins_text(ins: dict[str, str] | None) -> str:
    return f"{ins['nir']} {ins['key']} (OID {ins['oid']})" if ins else "none"


def _report_ins(report: InsiReport) -> dict[str, str] | None:
    if report.identity is None or report.identity.ins is None:
        return None
    return report.identity.ins.model_dump()


def _final(ctx: CheckContext, prefix: str = "insi.") -> tuple[StepObservation, InsiReport]:
    reports = ctx.reports(prefix)
    return reports[-1] if reports else stop(fail("the candidate reported no result for the INSi action"))


# -- the messages sent -------------------------------------------------------------------------------------
@check("insi.soap12_envelope", requirements=["INSI-EXG-01"],
       title="Every call is a SOAP 1.2 envelope sent as application/soap+xml")
def soap12_envelope(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    for i, exchange in enumerate(calls):
        media = (exchange.header("content-type") or "").split(";")[0].strip()
        message = request_of(exchange)
        if media != "application/soap+xml":
            return fail(f"{_where(exchange, i)}: Content-Type is {media or 'absent'!r}, SOAP 1.2 requires "
                        "application/soap+xml", exchange)
        if message is None or message.version != "1.2":
            what = "not a SOAP envelope" if message is None else "a SOAP 1.1 envelope"
            return fail(f"{_where(exchange, i)}: body is {what}; the teleservice speaks SOAP 1.2", exchange)
    return ok(f"{len(calls)} call(s), all SOAP 1.2", *calls)


@check("insi.addressing_headers", requirements=["INSI-EXG-02"],
       title="wsa:Action names the operation of the body and wsa:MessageID is present and unique")
def addressing_headers(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    seen: set[str] = set()
    for i, exchange in enumerate(calls):
        message = request_of(exchange)
        if message is None:
            return fail(f"{_where(exchange, i)}: not a SOAP envelope", exchange)
        operation = Operation.from_action(message.action)
        if operation is None or message.body is None or message.body.tag != operation.body_tag:
            return fail(f"{_where(exchange, i)}: wsa:Action {message.action!r} does not name the operation "
                        "of the body", exchange)
        if not message.message_id:
            return fail(f"{_where(exchange, i)}: wsa:MessageID header is missing", exchange)
        if message.message_id in seen:
            return fail(f"{_where(exchange, i)}: wsa:MessageID {message.message_id} reused", exchange)
        seen.add(message.message_id)
    return ok(f"{len(calls)} call(s) with Action and unique MessageID", *calls)


@check("insi.security_context", requirements=["INSI-SEC-01"],
       title="Every call carries ContexteBAM and ContexteLPS, and wsse:Security with a CPS assertion when no "
             "client certificate authenticates it")
def security_context(ctx: CheckContext) -> Outcome:
    """On the mutual-TLS endpoint the certificate authenticates and real clients send no wsse:Security
    (``requests/tlsi-ins_rechercherInsAvecTraitsIdentite_mTLS.xml``, answered CR 00 by the qualification
    platform); without a certificate, the CPS assertion in wsse:Security is the authentication. A Security block,
    when sent, holds at least one SAML assertion (``Security.xsd`` of the WSDL: ``saml:Assertion`` 1..n)."""
    calls = _calls(ctx)
    for i, exchange in enumerate(calls):
        message = request_of(exchange)
        required = [(NS_CTXBAM, "ContexteBAM"), (NS_CTXLPS, "ContexteLPS")]
        if exchange.client_cert_subject is None:
            required.append((WSSE_NS, "Security"))
        missing = [name for ns, name in required if message is None or message.header(ns, name) is None]
        if missing:
            return fail(f"{_where(exchange, i)}: header block(s) missing: {', '.join(missing)}", exchange)
        security = message.header(WSSE_NS, "Security") if message is not None else None
        if security is not None and security.find(f"{{{NS_SAML2}}}Assertion") is None:
            return fail(f"{_where(exchange, i)}: wsse:Security holds no SAML assertion (the WSDL's Security.xsd "
                        "requires one; on the mutual-TLS endpoint send no Security block at all)", exchange)
    return ok(f"{len(calls)} call(s) with the contexts the endpoint requires", *calls)


@check("insi.lps_identity", requirements=["INSI-SEC-02"],
       title="ContexteLPS carries an authorised IDAM, the software name and version")
def lps_identity(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    authorised = {lps.idam for lps in ctx.dataset.lps if lps.authorised}
    for i, exchange in enumerate(calls):
        message = request_of(exchange)
        lps = message.header(NS_CTXLPS, "ContexteLPS") if message is not None else None
        if lps is None:
            return fail(f"{_where(exchange, i)}: no ContexteLPS", exchange)
        n = f"{{{NS_CTXLPS}}}"
        idam = text_of(lps.find(f"{n}LPS/{n}IDAM"))
        if idam not in authorised:
            return fail(f"{_where(exchange, i)}: ContexteLPS IDAM {idam!r} is not an authorised software "
                        "(the service answers desir_550)", exchange)
        if not text_of(lps.find(f"{n}LPS/{n}Nom")) or not text_of(lps.find(f"{n}LPS/{n}Version")):
            return fail(f"{_where(exchange, i)}: ContexteLPS lacks the software name or version", exchange)
    return ok("ContexteLPS identifies an authorised software on every call", *calls)


@check("insi.authentication", requirements=["INSI-SEC-03"],
       title="Calls are authenticated by an INSI-AUTO / INSI-MANU certificate (or a CPS assertion)")
def authentication(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    for i, exchange in enumerate(calls):
        subject = exchange.client_cert_subject
        if subject is not None:
            cn = common_name_of_subject(subject)
            if cn not in AUTHORISED_CERT_CNS:
                return fail(f"{_where(exchange, i)}: client certificate CN {cn!r} (subject {subject}) is not "
                            "INSI-AUTO or INSI-MANU (the service answers desir_560)", exchange)
            continue
        message = request_of(exchange)
        security = message.header(WSSE_NS, "Security") if message is not None else None
        if security is None or security.find(f"{{{NS_SAML2}}}Assertion") is None:
            return fail(f"{_where(exchange, i)}: neither a client certificate nor a CPS assertion", exchange)
    return ok("every call authenticated", *calls)


def _traits_searches(ctx: CheckContext) -> tuple[list[tuple[int, Exchange, SoapMessage]], dict[str, Any]]:
    """The traits searches observed, and the traits the software was given (typed, or held for a verify)."""
    calls = _operation_calls(ctx, Operation.TRAITS)
    for step in ctx.steps:
        if calls and step.action == "insi.lookup_traits":
            return calls, step.params["traits"]
        if calls and step.action == "insi.verify":
            return calls, step.params["identity"]["traits"]
    stop(fail("no traits search (rechercherInsAvecTraitsIdentite) was observed"))


@check("insi.request_traits", requirements=["INSI-REQ-01"],
       title="Traits searches send the mandatory traits, as the software knows them")
def request_traits(ctx: CheckContext) -> Outcome:
    calls, traits = _traits_searches(ctx)
    s = f"{{{NS_RECSANS}}}"
    for i, exchange, message in calls:
        body = message.body
        values = {name: text_of(body.find(f"{s}{name}")) for name in
                  ("NomNaissance", "Prenom", "Sexe", "DateNaissance", "LieuNaissance")}
        missing = [k for k in ("NomNaissance", "Prenom", "Sexe", "DateNaissance") if not values[k]]
        if missing:
            return fail(f"{_where(exchange, i)}: mandatory trait(s) missing: {', '.join(missing)}", exchange)
        if normalise_name(values["NomNaissance"] or "") != normalise_name(str(traits["birth_name"])):
            return fail(f"{_where(exchange, i)}: NomNaissance {values['NomNaissance']!r} is not the birth name "
                        f"{traits['birth_name']!r}", exchange)
        if values["Sexe"] != traits["sex"]:
            return fail(f"{_where(exchange, i)}: Sexe {values['Sexe']!r}, expected {traits['sex']!r}", exchange)
        if traits.get("birth_place") and values["LieuNaissance"] != traits["birth_place"]:
            return fail(f"{_where(exchange, i)}: LieuNaissance {values['LieuNaissance']!r}, the known birth place "
                        f"is {traits['birth_place']!r}", exchange)
    return ok(f"{len(calls)} traits search(es) with the mandatory traits", *[c[1] for c in calls])


@check("insi.lunar_date_kept", requirements=["INSI-REQ-02"],
       title="An unknown birth day or month is sent as 00, never 'corrected'")
def lunar_date_kept(ctx: CheckContext) -> Outcome:
    calls, traits = _traits_searches(ctx)
    for i, exchange, message in calls:
        sent = text_of(message.body.find(f"{{{NS_RECSANS}}}DateNaissance"))
        if sent != traits["birth_date"]:
            return fail(f"{_where(exchange, i)}: DateNaissance sent as {sent!r}, the birth date is "
                        f"{traits['birth_date']!r} (unknown parts must stay 00)", exchange)
    return ok(f"birth date {traits['birth_date']} sent unchanged", *[c[1] for c in calls])


@check("insi.first_names_one_at_a_time", requirements=["INSI-REQ-03"],
       title="Without a match, each first name is tried alone, then the whole list")
def first_names_one_at_a_time(ctx: CheckContext) -> Outcome:
    calls, traits = _traits_searches(ctx)
    tried = {normalise_name(" ".join(text_of(p) or "" for p in m.body.findall(f"{{{NS_RECSANS}}}Prenom")))
             for _, _, m in calls}
    if any(answer_of(e).code_cr == "00" for _, e, _ in calls):
        return ok(f"identity found after trying: {', '.join(sorted(tried))}", *[c[1] for c in calls])
    names = [normalise_name(n) for n in traits["first_names"]]  # type: ignore[union-attr]
    expected = set(names) | ({" ".join(names)} if len(names) > 1 else set())
    untried = sorted(expected - tried)
    if untried:
        return fail(f"gave up after {len(calls)} attempt(s) ({', '.join(sorted(tried))}) without trying: "
                    f"{', '.join(untried)}", *[c[1] for c in calls])
    return ok("every first name and the whole list were tried", *[c[1] for c in calls])


@check("insi.vitale_request", requirements=["INSI-REQ-04"],
       title="A carte Vitale search sends the card's NIR, the beneficiary's birth date and rank")
def vitale_request(ctx: CheckContext) -> Outcome:
    calls = _operation_calls(ctx, Operation.VITALE)
    card = next((s.params["card"] for s in ctx.steps if s.action == "insi.lookup_vitale"), None)
    if not calls or card is None:
        return fail("no carte Vitale search (rechercherInsAvecCarteVitale) was observed")
    v = f"{{{NS_RECVIT}}}"
    for i, exchange, message in calls:
        body = message.body
        sent = {"nir": text_of(body.find(f"{v}MatriculeIndividu/{v}NumIdentifiant")),
                "key": text_of(body.find(f"{v}MatriculeIndividu/{v}Cle")),
                "birth_date": text_of(body.find(f"{v}DateNaissance")),
                "rank": text_of(body.find(f"{v}RangNaissance"))}
        expected = {"nir": card["nir"], "key": card["key"], "birth_date": card["birth_date"], "rank": str(card["rank"])}
        wrong = [f"{k} sent {sent[k]!r}, card has {expected[k]!r}" for k in expected if sent[k] != expected[k]]
        if wrong:
            return fail(f"{_where(exchange, i)}: {'; '.join(wrong)}", exchange)
        beneficiary = message.header(NS_CTXBAM, "ContexteBAM")
        if beneficiary is None or beneficiary.find(f"{{{NS_CTXBAM}}}COUVERTURE/{{{NS_CTXBAM}}}BENEFICIAIRE") is None:
            return fail(f"{_where(exchange, i)}: ContexteBAM COUVERTURE has no BENEFICIAIRE", exchange)
    return ok("carte Vitale search matches the card", *[c[1] for c in calls])


# -- errors and resilience ---------------------------------------------------------------------------------
@check("insi.fault_reported", requirements=["INSI-ERR-01"],
       title="A fault or an unreachable service is reported to the user and nothing is stored")
def fault_reported(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    _, report = _final(ctx)
    last = answer_of(calls[-1])
    expected = {"fault": ActionOutcome.ERROR}.get(last.kind, ActionOutcome.UNAVAILABLE)
    if last.kind == "result":
        return fail("the last call was answered normally: this case expected the service to fail", calls[-1])
    if report.outcome != expected:
        return fail(f"the service's last answer was {last.kind} {last.fault_code or ''}".rstrip()
                    + f"; the candidate reported {report.outcome.value!r}, expected {expected.value!r}", calls[-1])
    if _report_ins(report) is not None:
        return fail("the candidate stored an INS although the service failed", calls[-1])
    if expected == ActionOutcome.ERROR and report.error_code != last.fault_code:
        return fail(f"the candidate reported error code {report.error_code!r}, the service sent "
                    f"{last.fault_code!r}", calls[-1])
    return ok(f"service failure ({last.kind}) reported as {report.outcome.value}", *calls)


def _instant(exchange: Exchange) -> datetime:
    return datetime.fromisoformat(exchange.received_at.replace("Z", "+00:00"))


@check("insi.retry_discipline", requirements=["INSI-ERR-02"],
       title="After a failure, at most 2 retries, spaced by at least 100 ms")
def retry_discipline(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    max_calls = int(ctx.params.get("max_calls", 3))
    min_gap = float(ctx.params.get("min_interval_ms", 100))
    if len(calls) > max_calls:
        return fail(f"{len(calls)} calls for one user action after failures; at most {max_calls} allowed", *calls)
    for i in range(1, len(calls)):
        gap = (_instant(calls[i]) - _instant(calls[i - 1])).total_seconds() * 1000
        if answer_of(calls[i - 1]).kind != "result" and gap < min_gap:
            return fail(f"{_where(calls[i], i)}: retried {gap:.0f} ms after a failure; at least {min_gap:.0f} ms "
                        "required", calls[i - 1], calls[i])
    return ok(f"{len(calls)} call(s), retries spaced", *calls)


@check("insi.waits_for_slow_answer", requirements=["INSI-ERR-03"],
       title="A slow but working service is waited for: one call, and its answer is used")
def waits_for_slow_answer(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    step, report = _final(ctx)
    expected = ctx.params.get("outcome", "found")
    if report.outcome.value != expected:
        took = f" after {step.elapsed_ms:.0f} ms" if step.elapsed_ms else ""
        return fail(f"the candidate reported {report.outcome.value!r}{took}; the service answered in "
                    f"{calls[0].duration_ms or 0:.0f} ms and the expected outcome is {expected!r}", *calls)
    if len(calls) != 1:
        return fail(f"{len(calls)} calls for one action: a slow answer must not trigger duplicates", *calls)
    return ok(f"waited {calls[0].duration_ms or 0:.0f} ms and used the answer", *calls)


# -- what the software did with the answers ----------------------------------------------------------------
def _found_answer(ctx: CheckContext) -> tuple[Exchange, Answer]:
    for exchange in reversed(ctx.of("insi")):
        answer = answer_of(exchange)
        if answer.code_cr == "00":
            return exchange, answer
    stop(fail("the teleservice returned no identity (no CodeCR 00) in this test case"))


@check("identity.ins_as_returned", requirements=["IDV-01"],
       title="The INS stored is the active INS returned, with its key and OID")
def ins_as_returned(ctx: CheckContext) -> Outcome:
    exchange, answer = _found_answer(ctx)
    _, report = _final(ctx)
    stored = _report_ins(report)
    if stored != answer.active:
        return fail(f"the teleservice returned INS {_ins_text(answer.active)}; the candidate stored "
                    f"{_ins_text(stored)} (outcome {report.outcome.value}: {report.message})", exchange)
    return ok(f"INS {_ins_text(stored)} stored as returned", exchange)


@check("identity.traits_from_insi", requirements=["IDV-02"],
       title="After retrieval the identity carries the teleservice's reference traits")
def traits_from_insi(ctx: CheckContext) -> Outcome:
    """The first names are TIQ's ``ListePrenom``, all of them, as the live service sends them (no ``Prenom``:
    ``answers/qualification/CR00_TCHITCHI_CATARINA.xml``); an answer with ``Prenom`` only is read from it."""
    exchange, answer = _found_answer(ctx)
    _, report = _final(ctx)
    if report.identity is None:
        return fail("the candidate reported no identity", exchange)
    t = report.identity.traits
    tiq = answer.tiq
    reference = {**tiq, "ListePrenom": tiq.get("ListePrenom") or tiq.get("Prenom", "")}  # Prenom: DMP package shape
    stored = {"NomNaissance": t.birth_name, "ListePrenom": " ".join(t.first_names), "Sexe": t.sex,
              "DateNaissance": t.birth_date, "LieuNaissance": t.birth_place or ""}
    wrong = [f"{k} stored {stored[k]!r}, reference {reference.get(k)!r}" for k in stored
             if stored[k] != reference.get(k, "")]
    if wrong:
        return fail("identity traits not replaced by the INSi reference traits: " + "; ".join(wrong), exchange)
    return ok("identity carries the reference traits", exchange)


@check("identity.status_after_retrieval", requirements=["IDV-03"],
       title="Status is récupérée after retrieval, qualifiée only when an identity document was checked")
def status_after_retrieval(ctx: CheckContext) -> Outcome:
    step, report = _final(ctx)
    if report.identity is None:
        return fail(f"the candidate reported no identity (outcome {report.outcome.value}: {report.message})")
    document = bool(step.params.get("id_document_checked"))
    expected = "QUAL" if document else "RECUP"
    if report.identity.status.value != expected:
        why = "an identity document was checked" if document else "no identity document was checked"
        return fail(f"identity status {report.identity.status.value}, expected {expected}: {why}")
    return ok(f"identity status {expected}")


def _no_ins(report: InsiReport, outcome: ActionOutcome, what: str, *exchanges: Exchange) -> Outcome:
    if report.outcome != outcome:
        return fail(f"the teleservice answered {what}; the candidate reported {report.outcome.value!r}, "
                    f"expected {outcome.value!r}", *exchanges)
    if _report_ins(report) is not None:
        return fail(f"the teleservice answered {what} but the candidate stored an INS", *exchanges)
    if report.identity is not None and report.identity.status.value != "PROV":
        return fail(f"identity status {report.identity.status.value} without INS; expected PROV", *exchanges)
    return ok(f"{what} reported as {outcome.value}, no INS stored", *exchanges)


@check("identity.not_found_reported", requirements=["IDV-04"],
       title="CodeCR 01 is reported as not found and no INS is stored")
def not_found_reported(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    _, report = _final(ctx)
    codes = {answer_of(e).code_cr for e in calls}
    if codes != {"01"}:
        return fail(f"expected only CodeCR 01 answers, observed {sorted(c or '-' for c in codes)}", *calls)
    return _no_ins(report, ActionOutcome.NOT_FOUND, "01 (no identity found)", *calls)


@check("identity.several_reported", requirements=["IDV-05"],
       title="CodeCR 02 is reported as several identities and no INS is stored")
def several_reported(ctx: CheckContext) -> Outcome:
    calls = _calls(ctx)
    _, report = _final(ctx)
    codes = {answer_of(e).code_cr for e in calls}
    if "02" not in codes or "00" in codes:
        return fail(f"expected CodeCR 02 and no 00, observed {sorted(c or '-' for c in codes)}", *calls)
    return _no_ins(report, ActionOutcome.SEVERAL, "02 (several identities)", *calls)


def _verify_step(ctx: CheckContext) -> tuple[StepObservation, InsiReport]:
    reports = ctx.reports("insi.verify")
    return reports[-1] if reports else stop(fail("no INS verification was reported"))


@check("identity.verification_result", requirements=["IDV-06"],
       title="Verification compares the INS held with the INS returned; a mismatch is not trusted")
def verification_result(ctx: CheckContext) -> Outcome:
    step, report = _verify_step(ctx)
    calls = _calls(ctx)
    held = step.params["identity"]["ins"]
    answer = next((a for a in map(answer_of, calls) if a.code_cr == "00"), None)
    active = answer.active if answer else None
    if active and {k: held[k] for k in ("nir", "key", "oid")} == active:
        if report.outcome != ActionOutcome.VERIFIED:
            return fail(f"held INS {_ins_text(held)} equals the returned one; candidate reported "
                        f"{report.outcome.value!r}", *calls)
        return ok("held INS confirmed", *calls)
    if answer and any(h["nir"] == held["nir"] for h in answer.history):
        if report.outcome == ActionOutcome.VERIFIED:
            return fail(f"held INS {_ins_text(held)} was replaced by {_ins_text(active)}; the candidate reported "
                        "'verified' and still trusts the replaced INS", *calls)
        return ok("held INS is a replaced one and was not reported verified (update judged by "
                  "identity.history_update)", *calls)
    if report.outcome != ActionOutcome.MISMATCH:
        return fail(f"held INS {_ins_text(held)} but the teleservice returned {_ins_text(active)}; the candidate "
                    f"reported {report.outcome.value!r}, expected 'mismatch'", *calls)
    if _report_ins(report) is not None or (report.identity and report.identity.status.value != "PROV"):
        return fail("after a mismatch the candidate still trusts the INS (INS kept or status not PROV)", *calls)
    return ok("mismatch reported, INS no longer trusted", *calls)


@check("identity.history_update", requirements=["IDV-07"],
       title="A held INS that was replaced is updated to the active INS")
def history_update(ctx: CheckContext) -> Outcome:
    step, report = _verify_step(ctx)
    exchange, answer = _found_answer(ctx)
    held = step.params["identity"]["ins"]
    if not any(h["nir"] == held["nir"] for h in answer.history):
        return fail(f"held INS {_ins_text(held)} is not in the answer's INSHISTO", exchange)
    if report.outcome != ActionOutcome.UPDATED or _report_ins(report) != answer.active:
        return fail(f"held INS {_ins_text(held)} was replaced by {_ins_text(answer.active)}; the candidate "
                    f"reported {report.outcome.value!r} with INS {_ins_text(_report_ins(report))}", exchange)
    return ok(f"INS updated to {_ins_text(answer.active)}", exchange)
