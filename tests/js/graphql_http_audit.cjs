// Runs the graphql-http package's server audits (the GraphQL-over-HTTP spec's MUST, SHOULD and MAY
// items) against a running gateway and prints one JSON line per audit. The gateway needs a token, so
// every request the audits make carries the one given in AKSON_AUDIT_TOKEN.
const { serverAudits } = require('graphql-http');

const url = process.argv[2];
const token = process.env.AKSON_AUDIT_TOKEN;

function withToken(input, init = {}) {
  const headers = new Headers(init.headers || {});
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

(async () => {
  const results = [];
  for (const audit of serverAudits({ url, fetchFn: withToken })) {
    const result = await audit.fn();
    let detail = null;
    if (result.status !== 'ok') {
      detail = result.reason;
      if (result.response) {
        detail += ` (status ${result.response.status}: ${(await result.response.text()).slice(0, 300)})`;
      }
    }
    results.push({ id: audit.id, name: audit.name, status: result.status, detail });
  }
  process.stdout.write(JSON.stringify(results) + '\n');
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n');
  process.exit(2);
});
