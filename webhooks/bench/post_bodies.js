// Posts pre-generated bodies (unique per request) at a fixed number of VUs.
// Env: URL, BODIES_FILE (JSON array of strings; base64 when BINARY=1), HEADERS (JSON),
//      VUS, DURATION, SUMMARY_FILE, OK_STATUS (default 200).
import http from 'k6/http';
import encoding from 'k6/encoding';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';

const bodies = new SharedArray('bodies', () => JSON.parse(open(__ENV.BODIES_FILE)));
const binary = __ENV.BINARY === '1';
const headers = JSON.parse(__ENV.HEADERS);
const vus = Number(__ENV.VUS);
const perVu = Math.floor(bodies.length / vus);
const okStatus = Number(__ENV.OK_STATUS || 200);
const ok = new Counter('ok');
const failed = new Counter('failed');

export const options = {
  scenarios: { load: { executor: 'constant-vus', vus: vus, duration: __ENV.DURATION } },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'avg', 'max'],
  discardResponseBodies: true,
};

export default function () {
  const index = (__VU - 1) * perVu + (__ITER % perVu);
  const body = binary ? encoding.b64decode(bodies[index]) : bodies[index];
  const response = http.post(__ENV.URL, body, { headers: headers });
  (response.status === okStatus ? ok : failed).add(1);
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_FILE]: JSON.stringify(data) };
}
