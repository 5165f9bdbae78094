"""MSSanté figures for ``benchmarks/bench.py mssante``: structured messages per second through SMTP submission
(STARTTLS, XOAUTH2 checked by introspection at PSC, every message inspected in a worker process: headers, a 1 MB
IHE_XDM.ZIP, the CDA) into the store and back out through IMAP (STARTTLS, FETCH); the worst wait another IMAP
session sees while hostile messages are refused and a heavy one inspected; and the memory the store takes per
10,000 stored messages. PSC and MSSanté run in this process, as in local mode; loopback only."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

CLAIRE, DAVID = "claire.vasseur@medecin.mssante.test", "david.benhamou@chu-fictif-paris.mssante.test"


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


def _hostile() -> dict[str, bytes]:
    """Messages refused at once (beyond the MIME bounds), and a legitimate but heavy one (a 15 MB archive: about
    a second of inspection, in a worker process)."""
    head = f"From: {CLAIRE}\r\nTo: {DAVID}\r\nSubject: x\r\nX-MSS-NIL: T/1\r\n"
    flood = (head + "Content-Type: text/plain" + "".join(f";\r\n p{i}=v{i}" for i in range(20_000))
             + "\r\n\r\nbody\r\n").encode()
    nested = head.encode() + b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                                      for i in range(1500)) + b"Content-Type: text/plain\r\n\r\nx\r\n"
    return {"parameter_flood": flood, "nesting_1500": nested,
            "structured_15mb": _xdm_message(CLAIRE, DAVID, 15 * 1024 * 1024)}


def _smtp(lab: Any, token: str) -> Any:
    import smtplib

    from esante.harness.lab import xoauth2

    smtp = smtplib.SMTP("127.0.0.1", lab.listener_ports("mssante")["smtp"], timeout=120)
    smtp.starttls(context=lab.tls_context())
    smtp.ehlo()
    smtp.auth("XOAUTH2", lambda challenge=None: xoauth2(CLAIRE, token))
    return smtp


def _imap(lab: Any, token: str) -> Any:
    import imaplib

    from esante.harness.lab import xoauth2

    imap = imaplib.IMAP4("127.0.0.1", lab.listener_ports("mssante")["imap"], timeout=120)
    imap.starttls(ssl_context=lab.tls_context())
    imap.authenticate("XOAUTH2", lambda _: xoauth2(DAVID, token).encode())
    imap.select("INBOX")
    return imap


def _throughput(lab: Any, messages: int, sender: str, reader: str) -> dict[str, Any]:
    raw = _xdm_message(CLAIRE, DAVID, 1024 * 1024)
    with _smtp(lab, sender) as smtp:  # the worker processes may still be starting: not measured
        smtp.sendmail(CLAIRE, [DAVID], raw)
    lab.clients["mssante"].reset()
    started = time.perf_counter()
    with _smtp(lab, sender) as smtp:
        for _ in range(messages):
            smtp.sendmail(CLAIRE, [DAVID], raw)
    sent = time.perf_counter()
    imap = _imap(lab, reader)
    fetched = [part[1] for i in range(2, messages + 2)
               for part in imap.fetch(str(i), "(BODY.PEEK[])")[1] if isinstance(part, tuple)]
    imap.logout()
    read = time.perf_counter()
    assert all(f.endswith(raw) for f in fetched) and len(fetched) == messages, "every message read back whole"
    return {"messages": messages, "message_bytes": len(raw),
            "smtp_to_imap_per_s": round(messages / (read - started), 2),
            "smtp_submission_per_s": round(messages / (sent - started), 2),
            "imap_fetch_per_s": round(messages / (read - sent), 2)}


def _worst_waits(lab: Any, sender: str, reader: str) -> dict[str, Any]:
    """Each hostile message submitted while another IMAP session says NOOP in a loop: its worst wait."""
    import smtplib

    imap = _imap(lab, reader)
    found: dict[str, Any] = {}
    for name, raw in _hostile().items():
        waits: list[float] = []
        done = threading.Event()

        def watch(waits: list[float] = waits, done: threading.Event = done) -> None:
            while not done.is_set():
                began = time.perf_counter()
                imap.noop()
                waits.append(time.perf_counter() - began)

        watcher = threading.Thread(target=watch)
        watcher.start()
        began = time.perf_counter()
        try:
            with _smtp(lab, sender) as smtp:
                smtp.sendmail(CLAIRE, [DAVID], raw)
            reply = "250"
        except smtplib.SMTPDataError as refused:
            reply = f"{refused.smtp_code} {refused.smtp_error.decode()[:60]}"
        finally:
            done.set()
            watcher.join()
        found[name] = {"bytes": len(raw), "reply": reply, "answered_ms": round((time.perf_counter() - began) * 1000),
                       "worst_other_session_wait_ms": round(max(waits) * 1000, 1), "noops": len(waits)}
    imap.logout()
    return found


def _store_memory(stored: int) -> dict[str, Any]:
    import asyncio
    import tracemalloc

    from esante.simulators.dataset import load_dataset
    from esante.simulators.kits.mail.store import MailStore
    from esante.simulators.mssante.incoming import build, inbox_data

    sample = build(inbox_data()[0], load_dataset())[1]

    async def fill() -> int:
        store = MailStore()
        await store.folders(DAVID)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(stored):
            await store.deliver(DAVID, bytes(bytearray(sample)))  # a copy per message, as received
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return used

    used = asyncio.run(fill())
    return {"store_mb_per_10000_messages": round(used / 1e6 * 10_000 / stored, 2), "stored_message_bytes": len(sample),
            "store_overhead_bytes_per_message": round(used / stored - len(sample))}


def run(tmp: Path, messages: int = 40, stored: int = 10_000) -> dict[str, object]:
    from esante.harness.lab import Lab

    lab = Lab(["psc", "mssante"], workdir=tmp)
    try:
        sender, reader = lab.psc_token("PS001").access_token, lab.psc_token("PS002").access_token
        figures = _throughput(lab, messages, sender, reader)
        figures["hostile"] = _worst_waits(lab, sender, reader)
    finally:
        lab.close()
    return {**figures, **_store_memory(stored)}
