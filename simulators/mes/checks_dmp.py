"""The check of "one patient record across simulators": a document a partner app files in Mon espace santé
is filed in the citizen's DMP too. It needs the DMP simulator in the lab, so it lives apart from the MES
campaign's checks (declare it in the ``esante.checks`` entry points when the DMP simulator is there; its
case belongs to a campaign whose simulators are ``[mes, dmp]``).

It judges the evidence MES keeps of the filing: the DMP's answer recorded in the document push's notes.
"""

from __future__ import annotations

from harness.checks import CheckContext, Outcome, check, fail, ok, stop
from simulators.mes.checks import required, where


@check("mes.document_in_dmp", requirements=["MES-DOC-02"],
       title="A document filed in Mon espace santé is filed in the citizen's DMP too")
def document_in_dmp(ctx: CheckContext) -> Outcome:
    pushed = [e for e in required(ctx, "document", "document") if e.notes.get("created")] or \
        stop(fail("MES filed no new document in this test case"))
    for exchange in pushed:
        dmp = exchange.notes.get("dmp") or {}
        if dmp.get("status") != 201:
            reason = dmp.get("skipped") or dmp.get("error") or \
                f"the DMP answered {dmp.get('status')}: {dmp.get('answer')}"
            return fail(f"document {where(exchange)} did not reach the DMP: {reason}", exchange)
    ids = ", ".join(str((e.notes["dmp"].get("answer") or {}).get("unique_id")) for e in pushed)
    return ok(f"{len(pushed)} document(s) filed in the DMP too (uniqueId {ids})", *pushed)
