"""Every answer of the DMP simulator against the DMP's own schemas (annex v2.01.04: HL7v3 NE2009 and NE2008 as
its WSDLs use them, the habilitation and patient-specific services' types, ebRS 3.0 and IHE XDS.b), with the
reply action its WSDL declares: the official example requests replayed, then every kind of refusal each
transaction has. Faults, for which W3C publishes no schema the project could load, are checked by structure.
The reference candidate's requests, and the answers to its named defects, are judged the same way in
``test_reference_dmp.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.dmp_examples import EXAMPLES, ORDER, SOAP12, TD_ACTIONS, Dmp, running_dmp
from tests.dmp_schemas import answer_problems, require_annex


@pytest.fixture
def dmp(tmp_path: Path) -> Iterator[Dmp]:
    require_annex()
    with running_dmp(tmp_path, legacy_patient_access=True) as running:
        yield running


def _action(raw: bytes) -> str | None:
    found = re.search(rb"<(?:\w+:)?Action[^>]*>([^<]+)<", raw)
    return found.group(1).decode().strip() if found else None


def _judge(dmp: Dmp, raw: bytes, **kwargs: str) -> list[str]:
    answer = dmp.answer(raw, **kwargs)
    return answer_problems(answer, _action(raw))


def test_every_official_example_is_answered_schema_valid_with_the_wsdl_reply_action(dmp: Dmp) -> None:
    found = {name: problems for name in ORDER if (problems := _judge(dmp, (EXAMPLES / name).read_bytes()))}
    assert not found, found


TD = {td: name for name in ORDER for td in (name.split(" ", 1)[0],)}


def _example(td: str) -> bytes:
    return (EXAMPLES / TD[td]).read_bytes()


def _sub(pattern: bytes, replacement: bytes) -> Callable[[bytes], bytes]:
    def change(raw: bytes) -> bytes:
        changed = re.sub(pattern, replacement, raw, count=1, flags=re.S)
        assert changed != raw, pattern
        return changed
    return change


ITI18_STATUS = rb'<Slot name="\$XDSDocumentEntryStatus">.*?</Slot>'
ITI18_PATIENT = rb'<Slot name="\$XDSDocumentEntryPatientId">.*?</Slot>'
#: One refusal of each kind per transaction: (the example it breaks, how, the error code the answer carries).
REFUSALS: dict[str, tuple[str, Callable[[bytes], bytes], str]] = {
    "TD0.2 another patient than the VIHF's": ("TD0.2", _sub(rb'extension="207058575627097"/>\n',
                                                             b'extension="285046938321480"/>\n'),
                                              "DMPPatientIdDoesNotMatch"),
    "TD0.2 patient id not an INS": ("TD0.2", _sub(rb'extension="207058575627097"/>\n', b'extension="12"/>\n'),
                                    "DMPInvalidRequest"),
    "TD1.3a without patient": ("TD1.3a", _sub(rb"<(\w+:)?patientIdentifier>.*?</(\w+:)?patientIdentifier>", b""),
                               "DMPInvalidRequest"),
    "TD1.3b without patientPerson": ("TD1.3b", _sub(rb"<(\w+:)?patientPerson.*?</(\w+:)?patientPerson>", b""),
                                     "DMPInvalidRequest"),
    "TD1.4 without closing reason": ("TD1.4", _sub(rb"<(\w+:)?reasonOf.*?</(\w+:)?reasonOf>", b""),
                                     "DMPInvalidRequest"),
    "TD0.5 without family name": ("TD0.5", _sub(rb"<(\w+:)?family>[^<]*</(\w+:)?family>", b""),
                                  "DMPAccessDeniedByRightsService"),
    "TD0.3 unknown action": ("TD0.3", _sub(rb"<action>AJOUT</action>", b"<action>AUTRE</action>"),
                             "DMPInvalidRequest"),
    "TD0.4 unknown date type": ("TD0.4", _sub(rb"<dateType>[^<]*</dateType>", b"<dateType>LASTACCESS</dateType>"),
                                "DMPInvalidRequest"),
    "TD1.6 unknown mode": ("TD1.6", _sub(rb"<mode>[^<]*</mode>", b"<mode>AUTRE</mode>"), "DMPInvalidRequest"),
    "TD3.1 without status": ("TD3.1", _sub(ITI18_STATUS, b""), "XDSStoredQueryMissingParam"),
    "TD3.1 without patient": ("TD3.1", _sub(ITI18_PATIENT, b""), "XDSStoredQueryMissingParam"),
    "TD3.1 unknown stored query": ("TD3.1", _sub(rb"14d4debf-8f97-4251-9a74-a90016b0af0d",
                                                 b"00000000-0000-0000-0000-000000000000"), "XDSUnknownStoredQuery"),
    "TD3.1 without AdhocQuery": ("TD3.1", _sub(rb"<(\w+:)?AdhocQuery .*?</(\w+:)?AdhocQuery>", b""),
                                 "XDSRegistryError"),
    "TD3.1 two patients": ("TD3.1", _sub(rb"(<Value>'207058575627097[^<]*</Value>)", rb"\1\1"),
                           "XDSStoredQueryParamNumber"),
    "TD3.1 unknown status": ("TD3.1", _sub(rb"StatusType:Approved", b"StatusType:Submitted"), "XDSRegistryError"),
    "TD3.2 another repository": ("TD3.2", _sub(rb"<RepositoryUniqueId>1.2.250.1.213.4.1.1.1.2<",
                                               b"<RepositoryUniqueId>1.2.3<"), "XDSUnknownRepositoryId"),
    "TD3.2 unknown document": ("TD3.2", _sub(rb"995657292</", b"1</"), "XDSDocumentUniqueIdError"),
    "TD3.3c status is not the document's": ("TD3.3c", lambda raw: raw, "XDSMetadataUpdateError"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_refusal_is_schema_valid_with_the_wsdl_reply_action(dmp: Dmp, case: str) -> None:
    td, breaks, code = REFUSALS[case]
    raw = breaks(_example(td))
    answer = dmp.answer(raw)
    assert code in etree.tostring(answer.body).decode(), etree.tostring(answer.body)[:1500]
    assert answer.status == 200
    assert answer_problems(answer, _action(raw)) == []


def test_refusals_of_a_closed_dmp_are_schema_valid(dmp: Dmp) -> None:
    dmp.post(_example("TD1.4"))  # the official example closes the patient's DMP
    for td in ("TD0.2", "TD1.3a", "TD1.3b", "TD1.4", "TD0.3", "TD1.6", "TD3.1"):
        raw = _example(td)
        answer = dmp.answer(raw)
        assert answer_problems(answer, _action(raw)) == [], td
        if td != "TD0.2":  # the existence test answers the closed DMP; the others refuse it
            assert "DMPClosed" in etree.tostring(answer.body).decode(), td


def test_a_feed_refused_is_schema_valid(dmp: Dmp) -> None:
    raw = _example("TD2.1")
    assert answer_problems(dmp.answer(raw), _action(raw)) == []
    again = dmp.answer(raw)  # the same document again: its uniqueId is in the registry
    assert answer_problems(again, _action(raw)) == []
    assert "XDSDuplicateUniqueIdInRegistry" in etree.tostring(again.body).decode()


BOUNDARY = b"------=_Part_9_20030738.1554380517598"
EXTRA_PART = BOUNDARY + b"\nContent-Type: text/plain\nContent-ID: <stray@example>\n\nstray\n"
FEEDS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "a MIME part no Document includes": (_sub(BOUNDARY + b"--", EXTRA_PART + BOUNDARY + b"--"),
                                         "XDSMissingDocumentMetadata"),
    "a Document no DocumentEntry describes": (_sub(rb"(<ns4:Document id=\"Signature01\">)",
                                                   rb'<ns4:Document id="Orphan">c3RyYXk=</ns4:Document>\1'),
                                              "XDSMissingDocumentMetadata"),
    "a DocumentEntry without its Document": (_sub(rb'<ns4:Document id="Signature01">.*?</ns4:Document>', b""),
                                             "XDSMissingDocument"),
}


@pytest.mark.parametrize("case", list(FEEDS))
def test_a_feed_whose_parts_and_metadata_disagree_is_refused_schema_valid(dmp: Dmp, case: str) -> None:
    breaks, code = FEEDS[case]
    raw = breaks(_example("TD2.1"))
    answer = dmp.answer(raw)
    assert answer_problems(answer, _action(raw)) == []
    assert f'errorCode="{code}"' in etree.tostring(answer.body).decode()


def test_an_xop_include_naming_no_part_is_a_sender_fault(dmp: Dmp) -> None:
    raw = _sub(rb"cid:WS_DMP_TD2.1-DocumentME2.xml", b"cid:nowhere@example")(_example("TD2.1"))
    answer = dmp.answer(raw)
    assert answer.status == 400 and "nowhere@example" in answer.body.findtext(".//{*}Text")
    assert answer_problems(answer, _action(raw)) == []


FAULTS: dict[str, tuple[Callable[[bytes], bytes], dict[str, str]]] = {
    "not XML": (lambda raw: b"<soap:Envelope", {}),
    "unknown action": (_sub(rb"urn:hl7-org:v3:PRPA_IN201307UV02", b"urn:example:nothing"), {}),
    "no MessageID": (_sub(rb"<MessageID[^>]*>[^<]*</MessageID>", b""), {}),
    "two Actions": (_sub(rb"(<Action[^>]*>[^<]*</Action>)", rb"\1\1"), {}),
    "mustUnderstand": (_sub(rb"<soap:Header>", b'<soap:Header><x:X xmlns:x="urn:x" soap:mustUnderstand="1"/>'), {}),
    "no VIHF": (_sub(rb"<wsse:Security.*?</wsse:Security>", b""), {}),
    "body of another transaction": (_sub(rb"PRPA_IN201307UV02", b"PRPA_IN201305UV02"), {}),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_every_fault_is_a_soap12_fault_with_the_ws_addressing_fault_action(dmp: Dmp, case: str) -> None:
    breaks, kwargs = FAULTS[case]
    raw = breaks(_example("TD0.2"))
    answer = dmp.answer(raw, path="/si-dmp-server/v2/services/patient", content_type=SOAP12, **kwargs)
    assert answer.status in (400, 500) and etree.QName(answer.body).localname == "Fault"
    assert answer_problems(answer, TD_ACTIONS["TD0.2"]) == []


def _time_slot(value: bytes) -> Callable[[bytes], bytes]:
    return _sub(ITI18_STATUS, rb'\g<0><Slot name="$XDSDocumentEntryCreationTimeFrom"><ValueList><Value>' + value
                + rb"</Value></ValueList></Slot>")


#: Values that are no value of their type: (the example, how, the field the fault names).
MALFORMED: dict[str, tuple[str, Callable[[bytes], bytes], str]] = {
    "TD0.4 impossible start date": ("TD0.4", _sub(rb"<startDate>[^<]*</startDate>",
                                                  b"<startDate>20190230000000</startDate>"), "startDate"),
    "TD0.4 start date of no month": ("TD0.4", _sub(rb"<startDate>[^<]*</startDate>",
                                                   b"<startDate>99999999</startDate>"), "startDate"),
    "TD3.1 creation time not a DTM": ("TD3.1", _time_slot(b"2019-13-45"), "$XDSDocumentEntryCreationTimeFrom"),
    "TD3.1 creation time of no day": ("TD3.1", _time_slot(b"20190230"), "$XDSDocumentEntryCreationTimeFrom"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_value_is_a_sender_fault_naming_the_field(dmp: Dmp, case: str) -> None:
    td, breaks, field = MALFORMED[case]
    raw = breaks(_example(td))
    answer = dmp.answer(raw)
    assert answer.status == 400, etree.tostring(answer.body)[:800]
    assert answer_problems(answer, _action(raw)) == []
    assert field in answer.body.findtext(".//{*}Text")
