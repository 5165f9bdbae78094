// A second independent INSi client for tests/test_insi_node_soap.py: node-soap (npm "soap"), the library real
// Node INSi clients are built on, driven by the official WSDL DESIR_ICIR_EXP_1.5.0 alone. Nothing here is the
// simulator's or the reference candidate's code.
//
// Reads one JSON job on stdin:
//   {wsdl, wsaUrl, wsaLocal, endpoint, ca?, cert?, key?, assertion?, idam, operation: "traits" | "vitale",
//    args: {...body...}, beneficiary?: {DateNai, Rang}}
// and writes one JSON line on stdout:
//   {ok: true, result, request} | {ok: false, status, erreur: {code, messageID, severite, text}, request}
// `result` is the RESULTAT as node-soap parses it with the WSDL's types; `request` the XML it sent.
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import soap from "soap";

const job = JSON.parse(fs.readFileSync(0, "utf-8"));
const METHODS = { traits: "rechercherInsAvecTraitsIdentite", vitale: "rechercherInsAvecCarteVitale" };
const WSA = "http://www.w3.org/2005/08/addressing";
const WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";

/** The WSDL imports WS-Addressing by URL: read it from the local copy, fetch nothing. */
function overrideImportLocation(location) {
  return location === job.wsaUrl ? job.wsaLocal : location;
}

/** CPS mode: the SAML assertion goes into wsse:Security, as a CPS client does it. */
class AssertionSecurity {
  constructor(assertion, options) {
    this.assertion = assertion;
    this.options = options;
  }
  postProcess(xml, envelopeKey = "soap") {
    const header = `<wsse:Security xmlns:wsse="${WSSE}">${this.assertion}</wsse:Security>`;
    const at = xml.indexOf(`</${envelopeKey}:Header>`);
    return xml.slice(0, at) + header + xml.slice(at);
  }
  addOptions(options) {
    Object.assign(options, this.options);
    options.httpsAgent = new https.Agent(options);
  }
}

function tlsOptions() {
  const options = {};
  if (job.ca) options.ca = fs.readFileSync(job.ca);
  if (job.cert) options.cert = fs.readFileSync(job.cert);
  if (job.key) options.key = fs.readFileSync(job.key);
  return options;
}

function contexts(client) {
  const now = new Date().toISOString();
  const couverture = job.beneficiary ? { BENEFICIAIRE: job.beneficiary } : {};
  client.addSoapHeader({ ContexteBAM: { attributes: { Version: "01_02" }, Id: randomUUID(), Temps: now,
    Emetteur: "node-soap", COUVERTURE: couverture } }, "ContexteBAM", "ctxbam");
  client.addSoapHeader({ ContexteLPS: { attributes: { Nature: "CTXLPS", Version: "01_00" }, Id: randomUUID(),
    Temps: now, Emetteur: "node-soap", LPS: { IDAM: { attributes: { R: "4" }, $value: job.idam },
      Version: "1.0.0", Instance: randomUUID(), Nom: "node-soap-insi" } } }, "ContexteLPS", "ctxlps");
}

function addressing(client, method) {
  const binding = Object.values(client.wsdl.definitions.bindings)[0];
  const action = binding.methods[method].soapAction;  // from the WSDL's soap12:operation
  client.addSoapHeader({ Action: action }, "Action", "wsa", WSA);
  client.addSoapHeader({ MessageID: `uuid:${randomUUID()}` }, "MessageID", "wsa", WSA);
}

function erreurOf(body) {
  const match = /<([\w-]+:)?Erreur\b([^>]*)>([\s\S]*?)<\/([\w-]+:)?Erreur>/.exec(body || "");
  if (!match) return null;
  const attribute = (name) => (new RegExp(`\\b${name}="([^"]*)"`).exec(match[2]) || [])[1] ?? null;
  return { code: attribute("code"), messageID: attribute("messageID"), severite: attribute("severite"),
    text: match[3] };
}

const client = await soap.createClientAsync(job.wsdl, { forceSoap12Headers: true,
  wsdl_options: { overrideImportLocation } });
client.setEndpoint(job.endpoint);
const tls = tlsOptions();
client.setSecurity(job.assertion ? new AssertionSecurity(job.assertion, tls) : new soap.ClientSSLSecurity(
  job.key ? fs.readFileSync(job.key) : null, job.cert ? fs.readFileSync(job.cert) : null, job.ca ? tls.ca : null));
const method = METHODS[job.operation];
contexts(client);
addressing(client, method);
try {
  const [result] = await client[`${method}Async`](job.args);
  process.stdout.write(JSON.stringify({ ok: true, result, request: client.lastRequest }) + "\n");
} catch (error) {
  const status = error.response ? error.response.status : null;
  if (status === null) throw error;
  process.stdout.write(JSON.stringify({ ok: false, status, erreur: erreurOf(error.body), fault: error.root ?? null,
    request: client.lastRequest }) + "\n");
}
