"""The DMP's official schemas, to validate what the DMP simulator answers.

Loaded from the DMP's own "schémas et WSDL" annex v2.01.04 (June 2024) and the editors' kit WSDLs, in
``../shared/research/schemas/dmp-annex/`` (provenance in ``../shared/research/schemas/README.md``): the HL7v3
NE2009 schemas for the patient administration messages and NE2008 for PDQ (as the annex's WSDLs use them),
the WSDLs' own types for the habilitation and patient-specific services, and ebRS 3.0 / IHE XDS.b for the
registry and repository. libxml2 honours one ``xs:import`` per namespace, so each group of message schemas is
read through one wrapper schema that includes them all.

:func:`body_schema` names the schema of an answer's body element; :func:`problems` validates one.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from tests.dmp_examples import Answer

ANNEX = Path(__file__).resolve().parents[1].parent / "shared" / "research" / "schemas" / "dmp-annex"
XS = "http://www.w3.org/2001/XMLSchema"
HL7 = "urn:hl7-org:v3"
GDP = "asip:ci-sis:gdp:2010"
HABILITATIONS = "urn:si-dmp-habilitations"
PATIENTS = "urn:si-dmp-patients"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"


def require_annex() -> None:
    if not (ANNEX / "readme.txt").is_file():
        pytest.skip(f"the DMP annex schemas are not at {ANNEX} (../shared/research/schemas/dmp-annex)")


def _wrapper(target: str, *, includes: tuple[Path, ...] = (), imports: tuple[tuple[str, Path], ...] = (),
             extra: tuple[etree._Element, ...] = ()) -> etree.XMLSchema:
    schema = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS}, targetNamespace=target,
                           elementFormDefault="qualified")
    for path in includes:
        etree.SubElement(schema, f"{{{XS}}}include", schemaLocation=path.as_uri())
    for namespace, path in imports:
        etree.SubElement(schema, f"{{{XS}}}import", namespace=namespace, schemaLocation=path.as_uri())
    schema.extend(extra)
    return etree.XMLSchema(schema)


def _wsdl_types(path: Path) -> etree.XMLSchema:
    """The (single, self-contained) schema of a WSDL's ``types``."""
    schema = etree.parse(str(path)).getroot().find(f".//{{{XS}}}schema")
    assert schema is not None, path
    return etree.XMLSchema(etree.fromstring(etree.tostring(schema)))


def _gdp() -> etree.XMLSchema:
    """GestionDossierPatientPartage.wsdl: NE2009 PRPA_IN201308 (TD0.2, TD1.3a) and the wrapper
    ``PRPA_IN201314UV02_Response`` holding PRPA_IN201315UV02 (accepted) or PRPA_IN201316UV02 (refused)."""
    multicache = ANNEX / "schema" / "HL7V3" / "NE2009" / "multicacheschemas"
    hl7_path = multicache / "_esante_wrapper.xsd"  # never written: only the base for the includes below
    hl7 = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS}, targetNamespace=HL7, elementFormDefault="qualified")
    wsdl = etree.parse(str(ANNEX / "wsdl" / "GestionDossierPatientPartage.wsdl")).getroot()
    gdp = wsdl.find(f".//{{{XS}}}schema")
    assert gdp is not None
    for imported in gdp.iterfind(f"{{{XS}}}import"):
        location = imported.get("schemaLocation", "").rsplit("/", 1)[-1]
        etree.SubElement(hl7, f"{{{XS}}}include", schemaLocation=location)
    declared = [etree.fromstring(etree.tostring(c)) for c in gdp if etree.QName(c).localname != "import"]
    combined = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS, "tns": GDP, "hl7": HL7}, targetNamespace=GDP,
                             elementFormDefault="qualified")
    etree.SubElement(combined, f"{{{XS}}}import", namespace=HL7, schemaLocation="_esante_hl7.xsd")
    combined.extend(declared)
    resolver_docs = {"_esante_hl7.xsd": etree.tostring(hl7)}

    class Resolver(etree.Resolver):
        def resolve(self, url: str, pubid: str | None, context: object) -> object:
            name = url.rsplit("/", 1)[-1]
            if name in resolver_docs:
                return self.resolve_string(resolver_docs[name], context, base_url=hl7_path.as_uri())
            return None

    parser = etree.XMLParser()
    parser.resolvers.add(Resolver())
    document = etree.fromstring(etree.tostring(combined), parser, base_url=hl7_path.as_uri())
    return etree.XMLSchema(document)


@cache
def schema(name: str) -> etree.XMLSchema:
    """One of the annex's schemas by name: gdp, pdq, habilitations, patients, patients_kit, xds."""
    require_annex()
    ebrs = ANNEX / "schema" / "ebRS"
    builders = {
        "gdp": _gdp,
        "pdq": lambda: _wrapper(HL7, includes=(
            ANNEX / "schema" / "HL7V3" / "NE2008" / "multicacheschemas" / "PRPA_IN201306UV02.xsd",)),
        "habilitations": lambda: _wsdl_types(ANNEX / "wsdl" / "Habilitations.wsdl"),
        "patients": lambda: _wsdl_types(ANNEX / "wsdl" / "PatientsSpecific.wsdl"),
        "patients_kit": lambda: _wsdl_types(ANNEX / "wsdl-kit" / "PatientsSpecific.wsdl"),
        "xds": lambda: _wrapper("urn:esante:wrapper", imports=(
            (QUERY, ebrs / "query.xsd"), (RS, ebrs / "rs.xsd"), (LCM, ebrs / "lcm.xsd"),
            (XDSB, ANNEX / "schema" / "IHE" / "XDS.b_DocumentRepository.xsd"))),
    }
    return builders[name]()


#: The schema of each answer body, by its element's namespace and local name.
BODY_SCHEMAS = {
    (HL7, "PRPA_IN201308UV02"): "gdp", (GDP, "PRPA_IN201314UV02_Response"): "gdp",
    (HL7, "PRPA_IN201306UV02"): "pdq",
    (HABILITATIONS, "setAuthorizationResponse"): "habilitations",
    (HABILITATIONS, "listAuthorizationByPatientResponse"): "habilitations",
    (PATIENTS, "patientListResponse"): "patients",
    (PATIENTS, "createPatientAccessResponse"): "patients_kit", (PATIENTS, "patientOTPUpdateResponse"): "patients_kit",
    (PATIENTS, "updatePatientAccessResponse"): "patients_kit",
    (QUERY, "AdhocQueryResponse"): "xds", (RS, "RegistryResponse"): "xds",
    (XDSB, "RetrieveDocumentSetResponse"): "xds",
}


def body_schema(body: etree._Element) -> str:
    qname = etree.QName(body)
    return BODY_SCHEMAS[(qname.namespace or "", qname.localname)]


def problems(body: etree._Element) -> list[str]:
    """What the official schema of ``body`` finds wrong with it (empty when valid)."""
    xsd = schema(body_schema(body))
    if xsd.validate(etree.fromstring(etree.tostring(body))):
        return []
    return [f"{error.line}: {error.message}" for error in xsd.error_log]  # type: ignore[attr-defined]


# -- the reply actions the WSDLs declare --------------------------------------------------------------------
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSAW_ACTION = "{http://www.w3.org/2006/05/addressing/wsdl}Action"


def _default_action(namespace: str, port_type: str, message: etree._Element, fallback: str) -> str:
    """WS-Addressing 1.0 Metadata, 4.4.4: ``{namespace}{delimiter}{port type}{delimiter}{input|output name}``,
    the delimiter ``:`` for a URN namespace, ``/`` otherwise."""
    delimiter = ":" if namespace.startswith("urn:") else "/"
    return delimiter.join((namespace.rstrip("/"), port_type, message.get("name") or fallback))


@cache
def reply_actions() -> dict[str, str]:
    """Every operation's input action → its output action, from the annex's WSDLs and the kit's (TD1.5)."""
    require_annex()
    actions: dict[str, str] = {}
    for path in sorted((ANNEX / "wsdl-kit").glob("*.wsdl")) + sorted((ANNEX / "wsdl").glob("*.wsdl")):
        root = etree.parse(str(path)).getroot()
        namespace = root.get("targetNamespace", "")
        for port_type in root.iterfind(f"{{{WSDL_NS}}}portType"):
            for operation in port_type.iterfind(f"{{{WSDL_NS}}}operation"):
                name = operation.get("name", "")
                request, reply = operation.find(f"{{{WSDL_NS}}}input"), operation.find(f"{{{WSDL_NS}}}output")
                assert request is not None and reply is not None, (path, name)
                action = request.get(WSAW_ACTION) or _default_action(namespace, port_type.get("name", ""), request,
                                                                      name)
                actions[action] = reply.get(WSAW_ACTION) or _default_action(
                    namespace, port_type.get("name", ""), reply, f"{name}Response")
    return actions


# -- one answer, judged whole -------------------------------------------------------------------------------
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
WSA_NS = "http://www.w3.org/2005/08/addressing"
FAULT_ACTIONS = (f"{WSA_NS}/fault", f"{WSA_NS}/soap/fault")
FAULT_CODES = ("VersionMismatch", "MustUnderstand", "DataEncodingUnknown", "Sender", "Receiver")


def _qname_problems(value: etree._Element) -> list[str]:
    prefix, _, local = (value.text or "").strip().rpartition(":")
    if not local or value.nsmap.get(prefix or None) is None:
        return [f"fault code {value.text!r} is not a QName with a declared prefix"]
    return []


def fault_problems(fault: etree._Element) -> list[str]:
    """A SOAP 1.2 Fault checked by structure (W3C publishes no envelope schema the project could load):
    Code/Value one of SOAP's codes, every Subcode a QName, Reason/Text with its language, in that order."""
    s = f"{{{SOAP12_NS}}}"
    names = [etree.QName(child).localname for child in fault if isinstance(child.tag, str)]
    if names[:2] != ["Code", "Reason"] or any(n not in ("Code", "Reason", "Node", "Role", "Detail") for n in names):
        return [f"Fault children {names}, SOAP 1.2 wants Code, Reason, Node?, Role?, Detail?"]
    code = fault.find(f"{s}Code/{s}Value")
    found = _qname_problems(code)
    if code.nsmap.get((code.text or "").partition(":")[0]) != SOAP12_NS or \
            (code.text or "").rpartition(":")[2] not in FAULT_CODES:
        found.append(f"fault code {code.text!r} is not one of SOAP 1.2's")
    for value in fault.iterfind(f"{s}Code//{s}Subcode/{s}Value"):
        found += _qname_problems(value)
    texts = fault.findall(f"{s}Reason/{s}Text")
    if not texts or any(t.get("{http://www.w3.org/XML/1998/namespace}lang") is None for t in texts):
        found.append("Reason/Text missing or without xml:lang")
    return found


def version_mismatch_problems(answer: Answer) -> list[str]:
    """SOAP 1.2 Part 1, Appendix A: a SOAP 1.1 fault ``VersionMismatch`` with an Upgrade block naming SOAP 1.2."""
    code = answer.body.findtext("faultcode") or ""
    prefix, _, local = code.rpartition(":")
    found = [] if (answer.body.nsmap.get(prefix), local) == (SOAP11_NS, "VersionMismatch") else \
        [f"SOAP 1.1 faultcode {code!r} is not VersionMismatch"]
    supported = answer.envelope.find(f"{{{SOAP11_NS}}}Header/{{{SOAP12_NS}}}Upgrade/{{{SOAP12_NS}}}SupportedEnvelope")
    qname = (supported.get("qname") or "").rpartition(":") if supported is not None else ("", "", "")
    if supported is None or (supported.nsmap.get(qname[0]), qname[2]) != (SOAP12_NS, "Envelope"):
        found.append("no Upgrade header block naming the SOAP 1.2 Envelope")
    return found


def answer_problems(answer: Answer, request_action: str | None) -> list[str]:
    """What is wrong with one answer: its body against its official schema (or, for a fault, SOAP 1.2's
    structure), and its reply action against the one the WSDL declares for ``request_action``."""
    if etree.QName(answer.body).namespace == SOAP11_NS:
        return version_mismatch_problems(answer)
    if etree.QName(answer.body).namespace == SOAP12_NS:
        found = fault_problems(answer.body)
        if answer.action not in FAULT_ACTIONS:
            found.append(f"fault with reply action {answer.action!r}, not WS-Addressing's {FAULT_ACTIONS}")
        return found
    found = problems(answer.inlined())
    expected = reply_actions().get(request_action or "")
    if answer.action != expected:
        found.append(f"reply action {answer.action!r}, the WSDL declares {expected!r} for {request_action}")
    return found
