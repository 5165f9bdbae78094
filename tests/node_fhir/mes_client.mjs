// An independent FHIR client driving Mon espace santé's FHIR API: the npm fhir-kit-client, used as its README
// says. Reads {base, token, appointment, identifier, conditional, bundle} as JSON on stdin, prints what each call gave as JSON on stdout.
import { Client } from 'fhir-kit-client';

const input = JSON.parse(await new Promise((resolve) => {
  let text = '';
  process.stdin.on('data', (chunk) => { text += chunk; });
  process.stdin.on('end', () => resolve(text));
}));
const client = new Client({ baseUrl: input.base, bearerToken: input.token });
const out = {};

const smart = await client.smartAuthMetadata();
out.smart = { authorizeUrl: String(smart.authorizeUrl), tokenUrl: String(smart.tokenUrl) };
const statement = await client.capabilityStatement();
out.statement = { resourceType: statement.resourceType, types: statement.rest[0].resource.map((r) => r.type) };

const created = await client.create({ resourceType: 'Appointment', body: input.appointment });
const read = await client.read({ resourceType: 'Appointment', id: created.id });
const updated = await client.update({ resourceType: 'Appointment', id: created.id,
                                      body: { ...read, status: 'cancelled' } });
const conditional = await client.update({ resourceType: 'Appointment',
                                          searchParams: { identifier: input.identifier },
                                          body: { ...input.conditional, description: 'moved' } });
out.appointment = { created: created.id, read: read.id, version: updated.meta.versionId,
                    conditional: conditional.meta.versionId, description: conditional.description };

const answer = await client.transaction({ body: input.bundle });
out.transaction = answer.entry.map((e) => e.response.status);

let page = await client.search({ resourceType: 'Observation', searchParams: { _count: 2, date: 'ge2000-01-01' } });
const ids = page.entry.map((e) => e.resource.id);
const total = page.total;
for (page = await client.nextPage({ bundle: page }); page; page = await client.nextPage({ bundle: page })) {
  ids.push(...(page.entry || []).map((e) => e.resource.id));
}
out.search = { total, ids };

try {
  await client.read({ resourceType: 'Appointment', id: 'no-such-id' });
} catch (error) {
  out.notFound = { status: error.response?.status, resourceType: error.response?.data?.resourceType };
}
console.log(JSON.stringify(out));
