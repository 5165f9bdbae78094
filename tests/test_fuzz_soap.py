"""Fuzzing the SOAP services (tests/fuzz.py has the property): INSi's endpoint and every DMP service, with the
official example requests and the requests the reference candidate's builders make, mutated element by element
and value by value; raw bytes and headers around them. Failing examples found are kept below as ``@example``s."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from lxml import etree

from esante.harness.lab.insi import traits_request, vitale_request
from esante.simulators.dmp.protocol import TRANSACTIONS
from esante.simulators.kits.xml import XmlRejected, parse_xml
from tests.conftest import SOAP12, VECTORS, RunningSimulator, official_request
from tests.dmp_examples import ORDER, PATHS, TD21_CONTENT_TYPE, TD_ACTIONS, Dmp, example_bytes, running_dmp
from tests.fuzz import AWKWARD, answered, mutated_xml, soap_fault

INSI_REQUESTS = {"official": official_request(birth_name="MOREAU", first_names=["CLAIRE"], sex="F",
                                              birth_date="1985-04-12"),
                 "traits": traits_request(patient="P001").body, "vitale": vitale_request(patient="P001").body}
CONTENT_TYPES = st.sampled_from([SOAP12, "application/soap+xml", "text/xml; charset=utf-8", "application/json",
                                 "multipart/related; boundary=x", "", "application/soap+xml; charset=latin-1",
                                 'multipart/related; type="application/xop+xml"; start="<a>"; boundary="b"'])


def _insi(insi: RunningSimulator, body: bytes, content_type: str = SOAP12) -> httpx.Response:
    return answered(insi.lab.store, lambda: insi.post_soap(body, content_type), error_form=soap_fault, soap=True)


@pytest.fixture(scope="module")
def insi_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSimulator]:
    from esante.harness.lab import Lab

    with Lab(["insi"], workdir=tmp_path_factory.mktemp("insi-fuzz"), tls=False, max_body_bytes=256 * 1024) as lab:
        yield RunningSimulator(lab, "insi")


@given(data=st.data(), which=st.sampled_from(sorted(INSI_REQUESTS)))
def test_insi_answers_any_mutated_request_in_its_own_form(insi_module: RunningSimulator, data: st.DataObject,
                                                          which: str) -> None:
    _insi(insi_module, data.draw(mutated_xml(INSI_REQUESTS[which])))


@given(body=st.binary(max_size=2048) | st.sampled_from([p.read_bytes() for p in (VECTORS / "hostile").glob("*.xml")]),
       content_type=CONTENT_TYPES)
@example(body=INSI_REQUESTS["official"][:-40], content_type=SOAP12)
@example(body=INSI_REQUESTS["official"].replace(b"UTF-8", b"UTF-16"), content_type=SOAP12)
def test_insi_answers_any_bytes_under_any_content_type(insi_module: RunningSimulator, body: bytes,
                                                       content_type: str) -> None:
    _insi(insi_module, body, content_type)


@given(value=AWKWARD | st.text(max_size=30), field=st.sampled_from(["NomNaissance", "Prenom", "Sexe",
                                                                     "DateNaissance", "LieuNaissance"]))
@example(value="1985-02-30", field="DateNaissance")
@example(value="19850412", field="DateNaissance")
def test_insi_answers_any_trait_value(insi_module: RunningSimulator, value: str, field: str) -> None:
    body = re.sub(rf"<(\w+:)?{field}>[^<]*<".encode(), lambda m: m.group(0)[:m.group(0).index(b">") + 1]
                  + _escaped(value) + b"<", INSI_REQUESTS["official"])
    _insi(insi_module, body)


def _escaped(value: str) -> bytes:
    return value.replace("&", "&amp;").replace("<", "&lt;").encode("utf-8", "surrogatepass")


# -- DMP: every service, from its official example request ------------------------------------------------------

DMP_EXAMPLES = {name.split(" - ")[0]: example_bytes(name) for name in ORDER}


@pytest.fixture(scope="module")
def dmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dmp]:
    with running_dmp(tmp_path_factory.mktemp("dmp-fuzz"), legacy_patient_access=True) as running:
        yield running


def _dmp(dmp: Dmp, raw: bytes, td: str = "TD0.2", *, path: str | None = None,
         content_type: str = SOAP12) -> httpx.Response:
    """Post ``raw`` where the example ``td`` goes, the clock pinned to that example's VIHF (whatever the mutation
    did to the request's own action and dates)."""
    issued = re.search(rb'IssueInstant="([^"]+)"', DMP_EXAMPLES[td])
    if issued:
        dmp.simulator.clock = datetime.fromisoformat(issued.group(1).decode().replace("Z", "+00:00")) \
            + timedelta(minutes=1)
    action = re.search(rb"Action[^>]*>([^<]+)<", DMP_EXAMPLES[td])
    target = path or PATHS[action.group(1).decode().strip() if action else TD_ACTIONS["TD0.2"]]
    return answered(dmp.store, lambda: dmp.http.post(target, content=raw, headers={"content-type": content_type}),
                    error_form=soap_fault, soap=True)


#: The crash outsiders found (an impossible date was a 500): now a Sender fault naming the field.
IMPOSSIBLE_DATE = re.sub(rb"<startDate>[^<]*</startDate>", b"<startDate>20190230000000</startDate>",
                         DMP_EXAMPLES["TD0.4"])


@given(data=st.data(), td=st.sampled_from(sorted(set(DMP_EXAMPLES) - {"TD2.1"})))
def test_every_dmp_service_answers_any_mutated_request_in_its_own_form(dmp: Dmp, data: st.DataObject,
                                                                       td: str) -> None:
    _dmp(dmp, data.draw(mutated_xml(DMP_EXAMPLES[td])), td)


def test_the_impossible_date_outsiders_found_is_a_sender_fault(dmp: Dmp) -> None:
    answer = _dmp(dmp, IMPOSSIBLE_DATE, "TD0.4")
    assert answer.status_code == 400 and b"startDate" in answer.content


@given(value=AWKWARD, td=st.sampled_from(sorted(DMP_EXAMPLES)), nth=st.integers(0, 40))
@example(value="20190230", td="TD3.1", nth=0)
@example(value="99999999", td="TD0.4", nth=2)
@example(value="0", td="TD0.2", nth=36)  # xmlns:xs="0" in the VIHF: was a 500 (C14NError), found by this property
def test_every_dmp_value_may_be_replaced_by_anything(dmp: Dmp, value: str, td: str, nth: int) -> None:
    """Value by value: the ``nth`` text value of the request (cycling), replaced."""
    raw = DMP_EXAMPLES[td]
    values = list(re.finditer(rb">([^<>\s][^<>]*)<", raw)) + list(re.finditer(rb'="([^"]*)"', raw))
    found = values[nth % len(values)]
    body = raw[:found.start(1)] + _escaped(value).replace(b'"', b"&quot;") + raw[found.end(1):]
    _dmp(dmp, body, td)


DMP_PATHS = sorted({path for transaction in TRANSACTIONS.values() for path in transaction.paths})


@given(body=st.binary(max_size=4096), path=st.sampled_from(DMP_PATHS), content_type=CONTENT_TYPES)
def test_every_dmp_endpoint_answers_any_bytes(dmp: Dmp, body: bytes, path: str, content_type: str) -> None:
    _dmp(dmp, body, path=path, content_type=content_type or "application/octet-stream")


def test_the_multipart_feed_survives_its_parts_cut_anywhere(dmp: Dmp) -> None:
    raw = (Path(__file__).parent / "vectors" / "dmp" / "TD2.1 - Alimentation_requete.xml").read_bytes()
    for cut in range(0, len(raw), max(1, len(raw) // 40)):
        _dmp(dmp, raw[:cut] + raw[cut + 200:], "TD2.1", content_type=TD21_CONTENT_TYPE)


def test_a_relative_namespace_uri_is_refused_before_anything_canonicalises_it() -> None:
    """lxml (libxml2) has no canonical form for a document with a relative namespace URI: the hardened parser
    refuses it, so no service ever reaches XML-DSig with one (the DMP answered 500 before)."""
    document = b'<a xmlns:xs="0"><b/></a>'
    with pytest.raises(etree.C14NError):
        etree.tostring(etree.fromstring(document), method="c14n", exclusive=True)
    with pytest.raises(XmlRejected, match="relative"):
        parse_xml(document)
    assert parse_xml(b'<a xmlns=""><!-- xmlns:xs="0" --></a>') is not None
