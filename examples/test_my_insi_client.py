# test_my_insi_client.py: run with `pytest`, or `pytest --esante-simulators=container`
import ssl

import httpx

SOAP = {"Content-Type": "application/soap+xml; charset=utf-8"}


def test_the_simulator_sees_our_client_certificate(esante_insi, esante_pki, tmp_path):
    cert, key = esante_pki.issue_client("INSI-AUTO", organisation="MY CLINIC").write(tmp_path, "insi-auto")
    tls = ssl.create_default_context(cafile=esante_insi.ca_file)
    tls.load_cert_chain(cert, key)
    # your software would send a real request here; a malformed one shows the journal just as well
    answer = httpx.post(f"{esante_insi.url}/lps", content=b"<not-soap/>", headers=SOAP, verify=tls)
    assert answer.status_code >= 400
    [exchange] = esante_insi.exchanges()  # what the simulator saw during this test, and only this test
    assert "CN=INSI-AUTO" in exchange.client_cert_subject


def test_a_fault_injected_for_this_test(esante_insi):
    esante_insi.set_faults({"kind": "http_error", "status": 503, "count": 1})
    tls = ssl.create_default_context(cafile=esante_insi.ca_file)
    assert httpx.post(f"{esante_insi.url}/lps", content=b"<x/>", headers=SOAP, verify=tls).status_code == 503


def test_each_test_starts_clean(esante_insi):
    assert esante_insi.exchanges() == []
