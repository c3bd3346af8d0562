// Posts pre-generated requests: a JSON array of [body, headers, path?] (path appended to URL),
// body base64 when BINARY=1. Each VU posts its own contiguous slice, in order. Env: URL, BODIES_FILE, HEADERS (JSON, common to all), VUS, DURATION,
// SLICES_FILE (optional), RATE (optional: constant arrivals/s instead of constant VUs),
// OK_STATUS (comma list, default 200), SUMMARY_FILE, WARMUP (seconds, optional: requests started
// before it are left out of the `steady` trend — the first moments open every VU's connection).
import http from 'k6/http';
import exec from 'k6/execution';
import encoding from 'k6/encoding';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';

const requests = new SharedArray('requests', () => JSON.parse(open(__ENV.BODIES_FILE)));
// Optional SLICES_FILE: [[start, length], ...], one per VU, so a VU's slice holds whole sequences.
const slices = __ENV.SLICES_FILE ? JSON.parse(open(__ENV.SLICES_FILE)) : null;
const binary = __ENV.BINARY === '1';
const common = JSON.parse(__ENV.HEADERS || '{}');
const vus = Number(__ENV.VUS);
const rate = Number(__ENV.RATE || 0);
const slots = rate > 0 ? vus * 4 : vus;
const perVu = Math.floor(requests.length / slots);
const okStatuses = (__ENV.OK_STATUS || '200').split(',').map(Number);
const ok = new Counter('ok');
const failed = new Counter('failed');
const steady = new Trend('steady', true);
const warmupMs = Number(__ENV.WARMUP || 0) * 1000;

export const options = {
  scenarios: rate > 0
    ? { load: { executor: 'constant-arrival-rate', rate: rate, timeUnit: '1s', duration: __ENV.DURATION,
                preAllocatedVUs: vus, maxVUs: slots } }
    : { load: { executor: 'constant-vus', vus: vus, duration: __ENV.DURATION } },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'avg', 'max'],
  discardResponseBodies: true,
};

export default function () {
  let index = (__VU - 1) * perVu + (__ITER % perVu);
  if (slices) {
    const [start, length] = slices[(__VU - 1) % slices.length];
    index = start + (__ITER % length);
  }
  const [body, headers, path] = requests[index];
  const payload = binary ? encoding.b64decode(body) : body;
  const url = path ? `${__ENV.URL}/${path}` : __ENV.URL;
  const started = Date.now();
  const response = http.post(url, payload, { headers: Object.assign({}, common, headers) });
  (okStatuses.includes(response.status) ? ok : failed).add(1);
  if (started - exec.scenario.startTime >= warmupMs) {
    steady.add(response.timings.duration);
  }
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_FILE]: JSON.stringify(data) };
}
