// An independent OpenID Connect relying party for tests/test_psc_openid_client.py: panva's openid-client (v6 API,
// on oauth4webapi), used as its README shows, against the Pro Santé Connect simulator knowing only its issuer.
// Nothing here is the simulator's or the reference candidate's code.
//
// Reads one JSON job on stdin:
//   {scenario, issuer, clientId, secret?, privateKeyPem?, certPem?, keyPem?, redirectUri, nationalId}
// and writes one JSON line on stdout: {ok: true, ...what the scenario saw} | {ok: false, error, code?}.
// The CA the simulator's certificate chains to comes in NODE_EXTRA_CA_CERTS.
import fs from "node:fs";
import http from "node:http";
import * as client from "openid-client";
import { Agent, fetch as undiciFetch } from "undici";

const job = JSON.parse(fs.readFileSync(0, "utf-8"));
const SCOPE = "openid scope_all";

/** How the client authenticates, as registered. */
async function clientAuth() {
  if (job.auth === "private_key_jwt") {
    const der = Buffer.from(job.privateKeyPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    const key = await crypto.subtle.importKey("pkcs8", der, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false,
      ["sign"]);
    return client.PrivateKeyJwt(key);
  }
  if (job.auth === "client_secret_jwt") return client.ClientSecretJwt(job.secret);
  if (job.auth === "tls_client_auth") return client.TlsClientAuth();
  return client.ClientSecretBasic(job.secret);
}

/** Every call over mutual TLS with the job's certificate (tls_client_auth, certificate-bound tokens). */
function mtlsFetch() {
  const dispatcher = new Agent({ connect: { cert: job.certPem, key: job.keyPem, ca: fs.readFileSync(job.caFile) } });
  return (url, options) => undiciFetch(url, { ...options, dispatcher });
}

async function configuration() {
  const metadata = job.auth === "tls_client_auth" ? { tls_client_certificate_bound_access_tokens: true } : {};
  if (job.userinfoJwt) metadata.userinfo_signed_response_alg = "RS256";
  const options = job.certPem ? { [client.customFetch]: mtlsFetch() } : undefined;
  const config = await client.discovery(new URL(job.issuer), job.clientId, metadata, await clientAuth(), options);
  if (job.certPem) config[client.customFetch] = mtlsFetch();
  return config;
}

/** The user's browser: follow the authorization URL, submit PSC's login form as served (choosing the job's
 * professional), and answer where it lands: a redirect back, or the page a form_post response posts. */
async function browser(url) {
  let page = await fetch(url, { redirect: "manual" });
  const html = await page.text();
  if (page.status !== 200) throw new Error(`authorize answered ${page.status}: ${html.slice(0, 300)}`);
  const action = new URL(html.match(/<form[^>]*action="([^"]*)"/)[1], url);
  const fields = new URLSearchParams();
  for (const [, name, value] of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) {
    fields.set(name, value);
  }
  fields.set("national_id", job.nationalId);
  page = await fetch(action, { method: "POST", body: fields, redirect: "manual" });
  if (page.status === 302) return new URL(page.headers.get("location"));
  const posted = await page.text();
  const target = posted.match(/<form method="post" action="([^"]*)"/);
  if (page.status !== 200 || !target) throw new Error(`login answered ${page.status}: ${posted.slice(0, 300)}`);
  const body = new URLSearchParams();
  for (const [, name, value] of posted.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"\/>/g)) {
    body.set(name, value.replaceAll("&amp;", "&").replaceAll("&#x27;", "'").replaceAll("&quot;", '"'));
  }
  return new Request(target[1].replaceAll("&amp;", "&"), { method: "POST", body,
    headers: { "content-type": "application/x-www-form-urlencoded" } });
}

/** The code flow of openid-client's README: PKCE, and a nonce only where the job asks for one. */
async function signIn(config, extra = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const params = { redirect_uri: job.redirectUri, scope: SCOPE, acr_values: "eidas1",
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256", ...extra };
  let nonce;
  if (job.nonce) params.nonce = nonce = client.randomNonce();
  const state = job.state ? (params.state = client.randomState()) : undefined;
  const callback = await browser(client.buildAuthorizationUrl(config, params));
  const tokens = await client.authorizationCodeGrant(config, callback,
    { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
  return { tokens, nonce };
}

const SCENARIOS = {
  /** Sign in, read userinfo (JSON or JWT), refresh, introspect, revoke the refresh token. */
  async code(config) {
    const { tokens, nonce } = await signIn(config, job.responseMode ? { response_mode: job.responseMode } : {});
    const claims = tokens.claims();
    const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    const before = await client.tokenIntrospection(config, refreshed.access_token);
    await client.tokenRevocation(config, refreshed.refresh_token);
    const after = await client.tokenIntrospection(config, refreshed.access_token);
    return { claims, nonce, userinfo: info, refreshedClaims: refreshed.claims(), introspected: before,
      afterRevocation: after, boundTo: refreshed.access_token && before.cnf };
  },
  /** A thick client's intermediary server: CIBA in poll mode, openid-client polling at PSC's interval. */
  async ciba(config) {
    const started = await client.initiateBackchannelAuthentication(config, { scope: SCOPE, acr_values: "eidas1",
      login_hint: job.nationalId, binding_message: "42", channel: "MOBILE" });
    const tokens = await client.pollBackchannelAuthenticationGrant(config, started);
    return { claims: tokens.claims(), interval: started.interval };
  },
  /** CIBA in ping mode: PSC tells the client's notification endpoint (served here) when the professional has
   * answered; the client then asks for its tokens once. */
  async cibaPing(config) {
    const token = client.randomState();
    const notified = new Promise((resolve, reject) => {
      const server = http.createServer((request, response) => {
        let body = "";
        request.on("data", (chunk) => { body += chunk; });
        request.on("end", () => {
          response.writeHead(204).end();
          server.close();
          resolve({ authorization: request.headers.authorization, body: JSON.parse(body) });
        });
      });
      server.on("error", reject);
      server.listen(job.pingPort, "127.0.0.1");
    });
    await new Promise((resolve) => setTimeout(resolve, 100));  // the notification endpoint is listening
    const started = await client.initiateBackchannelAuthentication(config, { scope: SCOPE, acr_values: "eidas1",
      login_hint: job.nationalId, binding_message: "17", channel: "CARD", client_notification_token: token });
    const ping = await notified;
    const tokens = await client.genericGrantRequest(config, "urn:openid:params:grant-type:ciba",
      { auth_req_id: ping.body.auth_req_id });
    return { claims: tokens.claims(), bearer: ping.authorization === `Bearer ${token}`,
      sameRequest: ping.body.auth_req_id === started.auth_req_id };
  },
  /** The API Pro Santé connectée: the PSC token exchanged over mutual TLS for a certificate-bound one. */
  async tokenExchange(config) {
    const { tokens } = await signIn(config);
    const exchanged = await client.genericGrantRequest(config, "urn:ietf:params:oauth:grant-type:token-exchange", {
      subject_token: tokens.access_token, subject_token_type: "urn:ietf:params:oauth:token-type:access_token" });
    const introspected = await client.tokenIntrospection(config, exchanged.access_token);
    return { issued_token_type: exchanged.issued_token_type, introspected };
  },
  async clientCredentials(config) {
    const tokens = await client.clientCredentialsGrant(config, { scope: "scope_all" });
    return { token_type: tokens.token_type, refresh: tokens.refresh_token ?? null,
      introspected: await client.tokenIntrospection(config, tokens.access_token) };
  },
};

try {
  const config = await configuration();
  const seen = await SCENARIOS[job.scenario](config);
  process.stdout.write(JSON.stringify({ ok: true, ...seen }) + "\n");
} catch (error) {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error), code: error.code ?? null,
    cause: error.cause ? String(JSON.stringify(error.cause)) : null }) + "\n");
}
