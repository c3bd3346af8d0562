// The soak's load: order and dispute webhooks at a constant arrival rate, each signed when it is sent.
// A soak outlasts the ±5 minutes a signature's timestamp is accepted for, so the bodies cannot be
// signed beforehand as bench's post_bodies.js does. Every event is new (its own provider_event_id):
// order-<u> of user-<u> gets "paid" (then paid again: a same-status event is stored too) and every
// 5th webhook is a chargeback "opened" on dispute-<u> of that order; occurred_at grows with the
// iteration, so an event overtaken by a later one of its order (another VU) comes out stale, not an error.
// Env: URL (ingest's base URL), SECRET (the raw signing secret), USERS, RATE, DURATION, VUS, RUN, SUMMARY_FILE.
import http from 'k6/http';
import crypto from 'k6/crypto';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';

const users = Number(__ENV.USERS);
const vus = Number(__ENV.VUS);
const start = Date.parse('2026-11-01T00:00:00Z');
const ok = new Counter('ok');
const failed = new Counter('failed');

export const options = {
  scenarios: {
    soak: { executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
            duration: __ENV.DURATION, preAllocatedVUs: vus, maxVUs: vus * 4 },
  },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
  discardResponseBodies: true,
};

function event(n) {
  const user = n % users;
  const common = { provider_event_id: `${__ENV.RUN}-${n}`, order_id: `order-${user}`, user_id: `user-${user}`,
                   amount: 1000, currency: 'EUR', occurred_at: new Date(start + n).toISOString() };
  if (n % 5 === 4) {
    return ['disputes', Object.assign(common, { dispute_id: `dispute-${user}`, reason: 'fraudulent', status: 'opened' })];
  }
  return ['orders', Object.assign(common, { status: 'paid' })];
}

export default function () {
  const n = exec.scenario.iterationInTest;
  const [path, payload] = event(n);
  const body = JSON.stringify(payload);
  const id = `msg_${__ENV.RUN}_${n}`;
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = crypto.hmac('sha256', __ENV.SECRET, `${id}.${timestamp}.${body}`, 'base64');
  const response = http.post(`${__ENV.URL}/${path}`, body, { headers: {
    'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${signature}` } });
  (response.status === 202 ? ok : failed).add(1);
}

export function handleSummary(data) {
  return { [__ENV.SUMMARY_FILE]: JSON.stringify(data) };
}
