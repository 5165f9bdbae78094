"""MSSanté figures for ``benchmarks/bench.py mssante``: messages per second through SMTP submission (STARTTLS,
XOAUTH2 checked by introspection at PSC, every message inspected: headers, a 1 MB IHE_XDM.ZIP, the CDA) into the
store and back out through IMAP (STARTTLS, FETCH); and the memory the store takes per 10,000 stored messages.
PSC and MSSanté run in this process, as in local mode; loopback only."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _xdm_message(sender: str, recipient: str, size: int) -> bytes:
    """A structured letter whose CDA carries ``size`` bytes of incompressible text: a ~1 MB IHE_XDM.ZIP."""
    import base64
    from email.message import EmailMessage

    from esante.simulators.mssante.incoming import cda, metadata, xdm_archive

    ins = "285046938321480"  # P001
    document = cda("11488-4", "Compte rendu", ins, "MOREAU", "CLAIRE", "1985-04-12").replace(
        b"</text>", base64.b64encode(os.urandom(size * 3 // 4)) + b"</text>")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Message-ID"] = sender, recipient, f"<{time.time_ns()}@bench.mssante.test>"
    msg["Subject"] = "XDM/1.0/DDM+Compte rendu MOREAU CLAIRE 1985-04-12"
    msg["X-MSS-NIL"], msg["X-MSS-CODECDA"], msg["X-MSS-INS"] = "BENCH/1.0", "11488-4", "O"
    msg.set_content("Compte rendu ci-joint.")
    msg.add_attachment(xdm_archive(document, metadata(document, "DOC0001.XML", ins, "11488-4", "Compte rendu")),
                       maintype="application", subtype="zip", filename="IHE_XDM.ZIP")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))  # SMTP lines end in CRLF


def run(tmp: Path, messages: int = 40, stored: int = 10_000) -> dict[str, object]:
    import imaplib
    import smtplib
    import tracemalloc

    from esante.harness.lab import Lab, xoauth2
    from esante.simulators.dataset import load_dataset
    from esante.simulators.mssante.incoming import build, inbox_data
    from esante.simulators.mssante.mailboxes import MessageStore

    claire, david = "claire.vasseur@medecin.mssante.test", "david.benhamou@chu-fictif-paris.mssante.test"
    lab = Lab(["psc", "mssante"], workdir=tmp)
    try:
        smtp_port, imap_port = lab.listener_ports("mssante")["smtp"], lab.listener_ports("mssante")["imap"]
        raw = _xdm_message(claire, david, 1024 * 1024)
        sender, reader = lab.psc_token("PS001").access_token, lab.psc_token("PS002").access_token
        started = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as smtp:
            smtp.starttls(context=lab.tls_context())
            smtp.ehlo()
            smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(claire, sender))
            for _ in range(messages):
                smtp.sendmail(claire, [david], raw)
        sent = time.perf_counter()
        imap = imaplib.IMAP4("127.0.0.1", imap_port, timeout=60)
        imap.starttls(ssl_context=lab.tls_context())
        imap.authenticate("XOAUTH2", lambda _: xoauth2(david, reader).encode())
        imap.select("INBOX")
        fetched = sum(len(part[1]) for i in range(2, messages + 2)
                      for part in imap.fetch(str(i), "(BODY.PEEK[])")[1] if isinstance(part, tuple))
        imap.logout()
        read = time.perf_counter()
    finally:
        lab.close()
    assert fetched == messages * len(raw), "every message read back whole"
    sample = build(inbox_data()[0], load_dataset())[1]
    store = MessageStore()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(stored):
        store.deliver(david, bytes(bytearray(sample)))  # a copy per message, as received
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {"messages": messages, "message_bytes": len(raw),
            "smtp_to_imap_per_s": round(messages / (read - started), 2),
            "smtp_submission_per_s": round(messages / (sent - started), 2),
            "imap_fetch_per_s": round(messages / (read - sent), 2),
            "store_mb_per_10000_messages": round(used / 1e6 * 10_000 / stored, 2),
            "stored_message_bytes": len(sample),
            "store_overhead_bytes_per_message": round(used / stored - len(sample))}
