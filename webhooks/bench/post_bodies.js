// Posts pre-generated requests (unique per request): a JSON array of [body, headers] pairs,
// body base64 when BINARY=1. Env: URL, BODIES_FILE, HEADERS (JSON, common to all), VUS, DURATION,
// RATE (optional: constant arrivals/s instead of constant VUs), OK_STATUS (default 200), SUMMARY_FILE.
import http from 'k6/http';
import encoding from 'k6/encoding';
import { SharedArray } from 'k6/data';
import { Counter } from 'k6/metrics';

const requests = new SharedArray('requests', () => JSON.parse(open(__ENV.BODIES_FILE)));
const binary = __ENV.BINARY === '1';
const common = JSON.parse(__ENV.HEADERS || '{}');
const vus = Number(__ENV.VUS);
const rate = Number(__ENV.RATE || 0);
const slots = rate > 0 ? vus * 4 : vus;
const perVu = Math.floor(requests.length / slots);
const okStatus = Number(__ENV.OK_STATUS || 200);
const ok = new Counter('ok');
const failed = new Counter('failed');

export const options = {
  scenarios: rate > 0
    ? { load: { executor: 'constant-arrival-rate', rate: rate, timeUnit: '1s', duration: __ENV.DURATION,
                preAllocatedVUs: vus, maxVUs: slots } }
    : { load: { executor: 'constant-vus', vus: vus, duration: __ENV.DURATION } },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'avg', 'max'],
  discardResponseBodies: true,
};

export default function () {
  const [body, headers] = requests[(__VU - 1) * perVu + (__ITER % perVu)];
  const payload = binary ? encoding.b64decode(body) : body;
  const response = http.post(__ENV.URL, payload, { headers: Object.assign({}, common, headers) });
  (response.status === okStatus ? ok : failed).add(1);
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_FILE]: JSON.stringify(data) };
}
