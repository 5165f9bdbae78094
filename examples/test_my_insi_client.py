# test_my_insi_client.py: run with `pytest`, or `pytest --esante-simulators=container`
import ssl

import httpx

from esante.harness.lab.insi import traits_request, vitale_request


def test_a_known_patient_is_found(esante_insi):
    # a request as a real client sends it, built from the official example (or pass the traits yourself)
    request = traits_request(patient="P001")
    # esante_insi.http trusts the test CA and presents an INSI-AUTO certificate, as the mTLS endpoint wants
    answer = esante_insi.http.post(request.path, content=request.body, headers=request.headers)
    assert answer.status_code == 200 and b"<CodeCR>00</CodeCR>" in answer.content
    [exchange] = esante_insi.exchanges()  # what the simulator saw during this test, and only this test
    assert exchange.operation == "rechercherInsAvecTraitsIdentite"
    assert "CN=INSI-AUTO" in exchange.client_cert_subject
    assert esante_insi.judge("insi.soap12_envelope").passed  # a check of the certification campaign


def test_our_own_client_certificate(esante_insi, esante_pki, tmp_path):
    cert, key = esante_pki.issue_client("INSI-MANU", organisation="MY CLINIC").write(tmp_path, "insi-manu")
    tls = ssl.create_default_context(cafile=esante_pki.ca_file)
    tls.load_cert_chain(cert, key)
    request = vitale_request(patient="P001")
    answer = httpx.post(esante_insi.url + request.path, content=request.body, headers=request.headers, verify=tls)
    assert answer.status_code == 200
    [exchange] = esante_insi.exchanges()
    assert exchange.operation == "rechercherInsAvecCarteVitale" and "CN=INSI-MANU" in exchange.client_cert_subject


def test_a_check_that_fails_says_why(esante_insi):
    esante_insi.http.post("/lps", content=b"<not-soap/>", headers={"Content-Type": "application/soap+xml"})
    judgement = esante_insi.judge("insi.soap12_envelope")
    assert not judgement.passed and "not a SOAP envelope" in judgement.message


def test_a_fault_injected_for_this_test(esante_insi):
    esante_insi.set_faults({"kind": "http_error", "status": 503, "count": 1})
    request = traits_request(patient="P001")
    assert esante_insi.http.post(request.path, content=request.body, headers=request.headers).status_code == 503


def test_each_test_starts_clean(esante_insi):
    assert esante_insi.exchanges() == []
