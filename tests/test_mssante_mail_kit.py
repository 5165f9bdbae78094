"""The mail kit's parts on their own: SASL responses as clients write them, the MIME structure bounds (linear,
and what they refuse), enhanced status codes, and the worker pool that kills an overdue task."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time

import pytest
from pysasl.mechanism.oauth import OAuth2Mechanism

from esante.simulators.kits.mail import sasl
from esante.simulators.kits.mail.bounds import MAX_MULTIPARTS, StructureRefused, check_structure
from esante.simulators.kits.mail.smtp import recipient_key, with_enhanced_code
from esante.simulators.kits.mail.worker import Overdue, TaskFailed, WorkerPool


def test_sasl_responses_as_clients_write_them() -> None:
    from pysasl.creds.client import ClientCredentials

    written = OAuth2Mechanism().client_attempt(ClientCredentials("a@b.test", "tok"), []).response  # pysasl's client
    assert sasl.credentials("XOAUTH2", written) == sasl.Credentials("XOAUTH2", "a@b.test", "tok")
    bearer = b"n,a=a=2Cb@b.test,\x01host=127.0.0.1\x01port=25\x01auth=Bearer tok\x01\x01"  # RFC 7628 §3.1, msmtp
    assert sasl.credentials("OAUTHBEARER", bearer) == sasl.Credentials("OAUTHBEARER", "a,b@b.test", "tok")
    assert sasl.credentials("EXTERNAL", b"app@b.test") == sasl.Credentials("EXTERNAL", "app@b.test")
    for mechanism, response in (("XOAUTH2", b"user=a@b.test\x01auth=Basic x\x01\x01"), ("OAUTHBEARER", b"n,,\x01"),
                                ("EXTERNAL", b""), ("OAUTHBEARER", b"\xff\xfe"), ("PLAIN", b"\x00a\x00b")):
        with pytest.raises(sasl.SaslError):
            sasl.credentials(mechanism, response)
    assert sasl.error_challenge("EXTERNAL") is None


def test_structure_bounds_refuse_what_no_mail_software_writes() -> None:
    normal = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain; charset=utf-8\r\n"
    check_structure(normal)
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n" % i for i in range(MAX_MULTIPARTS + 1))
    folded = b"Content-Type: text/plain" + b";\r\n p=v" * 65 + b"\r\n"
    parts = b"Content-Type: text/plain\r\n" * 1001
    for hostile, reason in ((deep, "multipart containers"), (folded, "65 parameters"), (parts, "1001 MIME parts"),
                            (b"content-disposition:\tattachment" + b";a=b" * 70, "Content-Disposition")):
        with pytest.raises(StructureRefused, match=reason):
            check_structure(hostile)


def test_structure_bounds_take_linear_time() -> None:
    """20 MB of base64 and 2 MB of header fields: one pass each, well under a second."""
    body = base64.encodebytes(os.urandom(15_000_000)).replace(b"\n", b"\r\n")
    fields = b"X-Field: value; a=b\r\n" * 100_000
    for data in (body, fields, b"Content-Type: text/plain\r\n " * 200_000):
        started = time.perf_counter()
        with contextlib.suppress(StructureRefused):
            check_structure(data)
        assert time.perf_counter() - started < 1.0


def test_enhanced_codes_and_recipient_keys() -> None:
    assert with_enhanced_code("250 OK") == "250 2.0.0 OK"
    assert with_enhanced_code("503 Error: need RCPT command") == "503 5.5.1 Error: need RCPT command"
    assert with_enhanced_code("250 2.1.5 OK") == "250 2.1.5 OK"
    assert with_enhanced_code("354 End data with <CR><LF>.<CR><LF>").startswith("354 End")
    assert with_enhanced_code("334 ") == "334 "
    assert recipient_key("Jean.Dupont@Example.TEST") == "Jean.Dupont@example.test"


def test_the_worker_pool_kills_an_overdue_task_and_goes_on() -> None:
    async def scenario() -> None:
        pool = WorkerPool(1, deadline=3.0)  # tasks are builtins: nothing to import in the worker
        await pool.start()
        try:
            assert await pool.run(abs, -2) == 2
            started = time.perf_counter()
            with pytest.raises(Overdue):
                await pool.run(time.sleep, 60)
            assert time.perf_counter() - started < 10
            with pytest.raises(TaskFailed, match="ValueError: invalid literal"):
                await pool.run(int, "x")
            assert await pool.run(abs, -3) == 3  # a new process took the killed one's place
        finally:
            pool.close()

    asyncio.run(scenario())
