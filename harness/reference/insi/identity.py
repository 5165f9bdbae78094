"""The reference candidate's identity logic: what a correct software does with INSi answers.

The rules it follows (identity-vigilance, Référentiel national d'identitovigilance):

* a traits search tries each first name alone, in order, then the whole list, and stops at the first
  CodeCR 00 — a local record whose first names differ from civil status still finds the person;
* a retrieved identity takes the INS exactly as returned (key checked, OID kept: ``…4.8`` INS-NIR or ``…4.9``
  INS-NIA) and the teleservice's reference traits (TIQ, first names from ``ListePrenom``); its status is RECUP,
  or QUAL when an identity document was checked;
* 02 (several identities) and 01 (none) leave a provisional identity without INS;
* verifying a held INS compares it with the INS returned: equal → verified, found in INSHISTO → updated to
  the active INS, anything else → the INS is no longer trusted (mismatch, PROV, no INS);
* a fault, or a service that cannot be reached, is reported and nothing is stored.

Each named defect of ``defects.yaml`` that concerns this logic bends exactly one of these rules.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from esante.harness.driver import ActionOutcome
from esante.harness.reference.defects import Defects
from esante.harness.reference.insi.client import (
    AnsweredIns,
    InsiAnswer,
    InsiClient,
    InsiServiceFault,
    InsiUnavailable,
)
from esante.harness.reference.insi.models import (
    IdentityStatus,
    Ins,
    InsiReport,
    PatientIdentity,
    Traits,
    VitaleCard,
)
from esante.harness.reference.parts import NotConfigured
from esante.simulators.insi.protocol import OID_INS_NIR_TEST, CodeCR


class UnusableAnswer(Exception):
    """A CodeCR 00 answer the software must not store (invalid INS key, malformed traits...)."""


def _ins_text(ins: Ins | AnsweredIns) -> str:
    return f"{ins.nir} {ins.key} (OID {ins.oid})"


def _same_ins(held: Ins, returned: AnsweredIns | None) -> bool:
    return returned is not None and (held.nir, held.key, held.oid) == (returned.nir, returned.key, returned.oid)


def naive_key(nir: str) -> str | None:
    """The ``naive_nir_key`` defect: the key computed on int(NIR), which fails on a Corsican 2A/2B NIR."""
    try:
        return f"{97 - int(nir) % 97:02d}"
    except ValueError:
        return None


def correct_key(nir: str) -> str | None:
    """The INS key: 97 - (NIR mod 97), a Corsican department (2A, 2B) counted as 19 and 18 (the NIR rules)."""
    digits = nir[:5] + {"2A": "19", "2B": "18"}.get(nir[5:7], nir[5:7]) + nir[7:]
    if len(nir) != 13 or not digits.isdigit():
        return None
    return f"{97 - int(digits) % 97:02d}"


class IdentityFile:
    """The software's patient identities (in memory) and the three INSi user actions."""

    def __init__(self, defects: Defects | None = None, client: InsiClient | None = None) -> None:
        self.defects = defects or Defects()
        self.client = client
        self.identities: dict[str, PatientIdentity] = {}
        self._next_id = 1

    def reset(self) -> None:
        """Forget every identity: each test case starts from an empty patient file."""
        self.identities.clear()
        self._next_id = 1

    # -- user actions ---------------------------------------------------------------------------------------
    def lookup_traits(self, traits: Traits, id_document_checked: bool = False) -> InsiReport:
        """The user typed the patient's traits and asks for the INS."""
        return self._guarded(lambda: self._conclude(self._search(traits), traits, id_document_checked))

    def lookup_vitale(self, card: VitaleCard, id_document_checked: bool = False) -> InsiReport:
        """The user read the carte Vitale; one RECVITALE call. No local traits: nothing provisional to keep."""
        def run() -> InsiReport:
            answer = self._insi().search_vitale(card.nir, card.key, card.birth_name, card.birth_date, card.rank)
            return self._conclude([answer], None, id_document_checked)

        return self._guarded(run)

    def verify(self, identity: PatientIdentity) -> InsiReport:
        """Verify an INS the software already holds, with a traits search on the identity it holds."""
        held = identity.ins
        if held is None:
            raise ValueError("identity has no INS to verify")
        return self._guarded(lambda: self._verify(identity, held))

    # -- searching ------------------------------------------------------------------------------------------
    def _insi(self) -> InsiClient:
        if self.client is None:
            raise NotConfigured("the INSi teleservice is not configured: POST /reset with endpoints.insi first")
        return self.client

    def attempts(self, first_names: list[str]) -> list[list[str]]:
        """Each first name alone, in order, then the whole list when there is more than one."""
        if self.defects.on("single_attempt"):
            return [list(first_names)]
        alone = [[name] for name in first_names]
        return [*alone, list(first_names)] if len(first_names) > 1 else alone

    def _search(self, traits: Traits) -> list[InsiAnswer]:
        """Traits searches until the first CodeCR 00 (02 is not final: another first name may single one out)."""
        client = self._insi()
        answers: list[InsiAnswer] = []
        for names in self.attempts(traits.first_names):
            answer = client.search_traits(traits.birth_name, names, traits.sex, traits.birth_date,
                                          traits.birth_place)
            answers.append(answer)
            if answer.code_cr == CodeCR.FOUND:
                break
        return answers

    def _guarded(self, run: Callable[[], InsiReport]) -> InsiReport:
        """Turn the teleservice's failures into the report the user sees; nothing is stored then."""
        try:
            return run()
        except InsiServiceFault as fault:
            if self.defects.on("swallows_faults"):
                return InsiReport(outcome=ActionOutcome.NOT_FOUND, message="no identity found")
            return InsiReport(outcome=ActionOutcome.ERROR, error_code=fault.error_code,
                                message=f"the INSi teleservice answered a {fault.code} fault "
                                        f"{fault.error_code or ''}: {fault.text}; nothing was stored")
        except InsiUnavailable as exc:
            return InsiReport(outcome=ActionOutcome.UNAVAILABLE,
                                message=f"the INSi teleservice is unavailable ({exc.reason}); nothing was stored")
        except UnusableAnswer as exc:
            return InsiReport(outcome=ActionOutcome.ERROR, message=f"{exc}; nothing was stored")

    # -- what to do with the answers ------------------------------------------------------------------------
    def _conclude(self, answers: list[InsiAnswer], local: Traits | None, document: bool) -> InsiReport:
        found = next((a for a in answers if a.code_cr == CodeCR.FOUND), None)
        if found is not None:
            return self._retrieved(found, local, document)
        codes = sorted({a.code_cr for a in answers})
        unexpected = [c for c in codes if c not in (CodeCR.NOT_FOUND, CodeCR.SEVERAL)]
        if unexpected:
            raise UnusableAnswer(f"the INSi teleservice answered an unknown CodeCR {', '.join(unexpected)}")
        tried = len(answers)
        if CodeCR.SEVERAL in codes and not self.defects.on("ignores_several_matches"):
            return self._provisional(ActionOutcome.SEVERAL, local,
                                     f"several identities match ({tried} search(es)): no INS retrieved; "
                                     "more traits are needed to single the patient out")
        if self.defects.on("not_found_as_error"):
            return InsiReport(outcome=ActionOutcome.ERROR, message="INSi search failed")
        return self._provisional(ActionOutcome.NOT_FOUND, local,
                                 f"no identity found by the INSi teleservice ({tried} search(es)): no INS")

    def _provisional(self, outcome: ActionOutcome, local: Traits | None, message: str) -> InsiReport:
        """01/02: keep the locally typed identity, provisional and without INS (none when nothing was typed)."""
        if local is None:
            return InsiReport(outcome=outcome, message=message)
        identity = PatientIdentity(local_id=self._new_id(), status=IdentityStatus.PROVISIONAL, traits=local)
        return self._store(outcome, identity, message)

    def _retrieved(self, answer: InsiAnswer, local: Traits | None, document: bool) -> InsiReport:
        ins = self._checked_ins(answer)
        qualified = document or self.defects.on("qualifies_without_document")
        status = IdentityStatus.QUALIFIED if qualified else IdentityStatus.RETRIEVED
        identity = PatientIdentity(local_id=self._new_id(), status=status, ins=ins,
                                   traits=self._reference_traits(answer, local))
        return self._store(ActionOutcome.FOUND, identity, f"INS {_ins_text(ins)} retrieved, status {status.value}")

    def _checked_ins(self, answer: InsiAnswer) -> Ins:
        """The active INS as returned, after checking its key: a wrong key means a corrupted answer."""
        active = answer.active_ins
        if active is None:
            raise UnusableAnswer("the INSi teleservice answered CodeCR 00 without INSACTIF")
        expected = naive_key(active.nir) if self.defects.on("naive_nir_key") else correct_key(active.nir)
        if expected != active.key:
            raise UnusableAnswer(f"the INS returned ({_ins_text(active)}) has an invalid key "
                                 f"(expected {expected or 'none: the NIR is malformed'})")
        oid = OID_INS_NIR_TEST if self.defects.on("wrong_oid") else active.oid
        try:
            return Ins(nir=active.nir, key=active.key, oid=oid)
        except ValidationError as exc:
            raise UnusableAnswer(f"the INS returned ({_ins_text(active)}) cannot be stored: "
                                 f"{exc.errors()[0]['msg']}") from None

    def _reference_traits(self, answer: InsiAnswer, local: Traits | None) -> Traits:
        """The teleservice's traits (TIQ) replace the locally typed ones."""
        if local is not None and self.defects.on("keeps_local_traits"):
            return local
        tiq = answer.tiq
        try:
            return Traits(birth_name=tiq.get("NomNaissance", ""), first_names=self._first_names(tiq),
                          sex=tiq.get("Sexe", ""), birth_date=tiq.get("DateNaissance", ""),
                          birth_place=tiq.get("LieuNaissance") or None)
        except ValidationError as exc:
            raise UnusableAnswer(f"the reference traits (TIQ) returned are unusable: {exc.errors()[0]['msg']}") \
                from None

    def _first_names(self, tiq: dict[str, str]) -> list[str]:
        """Every first name: ``ListePrenom`` (what the live service sends, space-separated), else ``Prenom`` (the
        only one the DMP package's older example answer has)."""
        if self.defects.on("tiq_prenom_only"):
            return tiq.get("Prenom", "").split()
        return (tiq.get("ListePrenom") or tiq.get("Prenom") or "").split()

    # -- verification ---------------------------------------------------------------------------------------
    def _verify(self, identity: PatientIdentity, held: Ins) -> InsiReport:
        answers = self._search(identity.traits)
        if self.defects.on("trusts_unverified_ins"):
            return self._store(ActionOutcome.VERIFIED, identity, f"INS {_ins_text(held)} verified")
        found = next((a for a in answers if a.code_cr == CodeCR.FOUND), None)
        if found is None:
            several = any(a.code_cr == CodeCR.SEVERAL for a in answers)
            why = "several identities match the traits" if several else "no identity matches the traits"
            return self._mismatch(identity, f"{why}: the INS {_ins_text(held)} cannot be confirmed")
        if _same_ins(held, found.active_ins):
            status = IdentityStatus.QUALIFIED if identity.status is IdentityStatus.QUALIFIED \
                else IdentityStatus.RETRIEVED
            verified = identity.model_copy(update={"status": status,
                                                   "traits": self._reference_traits(found, identity.traits)})
            return self._store(ActionOutcome.VERIFIED, verified, f"INS {_ins_text(held)} confirmed by INSi")
        if any(_same_ins(held, old) for old in found.history):
            return self._replaced(identity, held, found)
        returned = _ins_text(found.active_ins) if found.active_ins else "no INS"
        return self._mismatch(identity, f"the INSi teleservice returned {returned} for these traits, not the "
                                        f"held INS {_ins_text(held)}")

    def _replaced(self, identity: PatientIdentity, held: Ins, found: InsiAnswer) -> InsiReport:
        """The held INS is in INSHISTO: take the active INS and the reference traits."""
        if self.defects.on("ignores_ins_history"):
            return self._store(ActionOutcome.MISMATCH, identity,
                               f"the INSi teleservice did not return the held INS {_ins_text(held)}")
        ins = self._checked_ins(found)
        updated = PatientIdentity(local_id=identity.local_id, status=IdentityStatus.RETRIEVED, ins=ins,
                                  traits=self._reference_traits(found, identity.traits))
        return self._store(ActionOutcome.UPDATED, updated,
                           f"the held INS {_ins_text(held)} was replaced: INS updated to {_ins_text(ins)}")

    def _mismatch(self, identity: PatientIdentity, why: str) -> InsiReport:
        """The held INS is no longer trusted: the identity is kept, provisional and without INS."""
        kept = identity.model_copy(update={"ins": None, "status": IdentityStatus.PROVISIONAL})
        return self._store(ActionOutcome.MISMATCH, kept, f"{why}; the INS was removed and the identity is "
                                                         "provisional until checked")

    # -- storage --------------------------------------------------------------------------------------------
    def _new_id(self) -> str:
        local_id = f"REF-{self._next_id:06d}"
        self._next_id += 1
        return local_id

    def _store(self, outcome: ActionOutcome, identity: PatientIdentity, message: str) -> InsiReport:
        self.identities[identity.local_id] = identity
        return InsiReport(outcome=outcome, message=message, identity=identity)
