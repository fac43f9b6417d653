/**
 * Unit tests of hostd/sdk/browser/fiscal.mjs with a fake fetch (no daemon): the request each call
 * sends (void, refund and reports included, whose endpoints are not served yet), the typed error of
 * every envelope code, network failures and timeouts, the tax-group cache, Standard Webhooks 1.0
 * (the library's own test vector), the offline queue's retry schedule (100 ms -> 5 s -> 20 s) and
 * Retry-After, FIFO order with the original body and key, corrupt storage, and the builder's totals.
 *
 * Run: node --test tests/js/fiscal.unit.test.mjs (tests/test_browser_sdk.py runs it too).
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as sdk from "../../hostd/sdk/browser/fiscal.mjs";

const {
  Client, DeviceUnavailable, FiscalError, FiscalizationFailed, Forbidden, IdempotencyKeyReused, InvalidPayload,
  InvalidRequest, InvalidSignature, InvoiceBuilder, MemoryStorage, NotFound, OfflineQueue, OfflineQueueCorrupt,
  RateLimited, Unauthorized, verifyWebhook,
} = sdk;

const BASE = "http://127.0.0.1:8787";
const SAMPLE = JSON.parse(readFileSync(new URL("../../samples/invoice-002-services.json", import.meta.url), "utf8"));
const SEALED = { fiscal_number: "EMU-1-00000001", auth_code: "AAAA-BBBB-CCCC", timestamp: "2026-02-17T04:00:01Z",
  qr_payload: "FMD2;x", fiscal_authority_id: "EMU-1", counter: 1 };

/** A fake fetch answering from a script of (request) => [status, doc, headers] or an Error to throw. */
function fakeFetch(script) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, method: init.method, headers: init.headers, body: init.body });
    const step = typeof script === "function" ? script(calls.length - 1, calls.at(-1)) : script[calls.length - 1];
    if (step instanceof Error) throw step;
    const [status, doc, headers = {}] = step;
    return new Response(typeof doc === "string" ? doc : JSON.stringify(doc), { status, headers });
  };
  return { fetch, calls };
}

const ok = (payload, code = "OK") => [200, { status: "ok", code, payload }];
const refusal = (status, code, more = {}) => [status, { status: "error", code, detail: code.toLowerCase(), ...more }];

test("each call sends the request the daemon's API documents", async () => {
  const { fetch, calls } = fakeFetch(() => ok(SEALED));
  const client = new Client({ baseUrl: BASE + "/", token: "T".repeat(20), fetch });
  await client.invoices.create(SAMPLE, { idempotencyKey: "till-7-1" });
  await client.invoices.get("EMU-1/00000001");
  await client.invoices.list({ outletId: "outlet-kin001", "client.nif": "123", clientNif: "456", perPage: 20, page: 2 });
  await client.invoices.void("EMU-1-00000001", { reason: "wrong client", adjustments: [{ code: "CONS-001", quantity: "1" }],
    idempotencyKey: "void-1" });
  await client.invoices.void("EMU-1-00000002", { reason: "duplicate" });
  await client.invoices.refund("EMU-1-00000001", { amount: "580.00", currency: "CDF", paymentReference: "AIRTEL-9",
    reason: "returned", idempotencyKey: "refund-1" });
  await client.reports.generate({ type: "Z", outletId: "outlet-kin001", period: "2026-02" });
  await client.reports.generate({ type: "X", outletId: "outlet-kin001" });

  const [create, get, list, void1, void2, refund, z, x] = calls;
  assert.equal(create.url, BASE + "/api/v1/invoices");
  assert.equal(create.method, "POST");
  assert.equal(create.headers.Authorization, "Bearer " + "T".repeat(20));
  assert.equal(create.headers["Idempotency-Key"], "till-7-1");
  assert.equal(create.headers["Content-Type"], "application/json");
  assert.equal(create.body, JSON.stringify(SAMPLE));                     // the canonical order as given
  assert.equal(get.url, BASE + "/api/v1/invoices/EMU-1%2F00000001");
  assert.equal(get.method, "GET");
  assert.equal(get.body, undefined);
  assert.equal(get.headers["Content-Type"], undefined);
  assert.equal(list.url, BASE + "/api/v1/invoices?outlet_id=outlet-kin001&client.nif=123&client.nif=456&per_page=20&page=2");
  assert.equal(void1.url, BASE + "/api/v1/invoices/EMU-1-00000001/void");
  assert.deepEqual(JSON.parse(void1.body), { reason: "wrong client", adjustments: [{ code: "CONS-001", quantity: "1" }] });
  assert.equal(void1.headers["Idempotency-Key"], "void-1");
  assert.deepEqual(JSON.parse(void2.body), { reason: "duplicate" });
  assert.equal(void2.headers["Idempotency-Key"], undefined);
  assert.equal(refund.url, BASE + "/api/v1/invoices/EMU-1-00000001/refund");
  assert.equal(refund.body, JSON.stringify({ amount: "580.00", currency: "CDF", payment_reference: "AIRTEL-9",
    reason: "returned" }));                                               // hostd/sdk/client.py's body, key for key
  assert.equal(refund.headers["Idempotency-Key"], "refund-1");
  assert.equal(z.url, BASE + "/api/v1/reports");
  assert.deepEqual(JSON.parse(z.body), { type: "Z", outlet_id: "outlet-kin001", period: "2026-02" });
  assert.deepEqual(JSON.parse(x.body), { type: "X", outlet_id: "outlet-kin001" });
});

test("every envelope code is its own class, all FiscalError, with code, status, field, detail, envelope", async () => {
  const cases = [
    [refusal(400, "INVALID_CANONICAL_PAYLOAD", { field: "totals.total" }), InvalidPayload],
    [refusal(400, "INVALID_REQUEST", { field: "Idempotency-Key" }), InvalidRequest],
    [refusal(401, "UNAUTHORIZED", { field: "Authorization" }), Unauthorized],
    [refusal(403, "FORBIDDEN", { field: "outlet_id" }), Forbidden],
    [refusal(404, "NOT_FOUND"), NotFound],
    [refusal(422, "IDEMPOTENCY_KEY_REUSED", { field: "Idempotency-Key" }), IdempotencyKeyReused],
    [refusal(422, "FISCALIZATION_FAILED", { device_code: "TAX_RATE_MISMATCH" }), FiscalizationFailed],
    [refusal(429, "RATE_LIMIT_EXCEEDED", { retry_after: 7 }), RateLimited],
    [refusal(503, "DEVICE_UNAVAILABLE", { retry_after: 2 }), DeviceUnavailable],
    [refusal(503, "DEVICE_TIMEOUT", { retry_after: 2 }), DeviceUnavailable],
    [refusal(503, "STORE_UNAVAILABLE"), DeviceUnavailable],
  ];
  for (const [answer, cls] of cases) {
    const client = new Client({ baseUrl: BASE, fetch: fakeFetch([answer]).fetch });
    const err = await client.invoices.get("1").then(() => null, (e) => e);
    assert.ok(err instanceof cls, `${answer[1].code} gave ${err}`);
    assert.ok(err instanceof FiscalError && err instanceof Error);
    assert.equal(err.name, cls.name);
    assert.equal(err.code, cls.code);
    assert.equal(err.status, answer[0]);
    assert.equal(err.field, answer[1].field ?? null);
    assert.equal(err.detail, answer[1].detail);
    assert.deepEqual(err.envelope, answer[1]);
  }
  const failed = await new Client({ baseUrl: BASE, fetch: fakeFetch([cases[6][0]]).fetch }).invoices.get("1").catch((e) => e);
  assert.equal(failed.deviceCode, "TAX_RATE_MISMATCH");
  assert.equal(failed.retryable, false);
  const limited = await new Client({ baseUrl: BASE, fetch: fakeFetch([cases[7][0]]).fetch }).invoices.get("1").catch((e) => e);
  assert.equal(limited.retryAfter, 7);
  assert.equal(limited.retryable, true);
  const header = [429, { status: "error", code: "RATE_LIMIT_EXCEEDED", detail: "busy" }, { "Retry-After": "12" }];
  assert.equal((await new Client({ baseUrl: BASE, fetch: fakeFetch([header]).fetch }).invoices.get("1").catch((e) => e))
    .retryAfter, 12);
  const other = await new Client({ baseUrl: BASE, fetch: fakeFetch([refusal(413, "PAYLOAD_TOO_LARGE")]).fetch })
    .invoices.get("1").catch((e) => e);
  assert.equal(other.constructor, FiscalError);
  assert.equal(other.code, "PAYLOAD_TOO_LARGE");
  const html = await new Client({ baseUrl: BASE, fetch: fakeFetch([[502, "<html>bad gateway</html>"]]).fetch })
    .invoices.get("1").catch((e) => e);
  assert.equal(html.constructor, FiscalError);
  assert.equal(html.status, 502);
  assert.ok(html.cause instanceof SyntaxError);
});

test("a network failure and a timeout are DeviceUnavailable without retryAfter", async () => {
  const refused = new TypeError("fetch failed");
  const err = await new Client({ baseUrl: BASE, fetch: fakeFetch([refused]).fetch }).invoices.get("1").catch((e) => e);
  assert.ok(err instanceof DeviceUnavailable);
  assert.equal(err.retryAfter, null);
  assert.equal(err.status, null);
  assert.equal(err.cause, refused);
  const hanging = (url, init) => new Promise((resolve, reject) => {
    init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
  });
  const late = await new Client({ baseUrl: BASE, timeout: 20, fetch: hanging }).invoices.get("1").catch((e) => e);
  assert.ok(late instanceof DeviceUnavailable);
  assert.match(late.detail, /no answer within 20 ms/);
});

test("the tax-group manifest is cached, and refreshed when an effective_from falls due or after a day", async () => {
  let now = Date.parse("2026-06-01T00:00:00Z");
  const manifest = (extra = []) => ok([
    { code: "TG02", name: "Goods", rate: "0.160000", rate_ppm: 160000, effective_from: "2023-03-03T00:00:00Z" },
    ...extra,
  ], "TAX_GROUPS");
  const change = { code: "TG02", name: "Goods", rate: "0.180000", rate_ppm: 180000, effective_from: "2026-06-01T12:00:00Z" };
  const { fetch, calls } = fakeFetch(() => manifest([change]));
  const client = new Client({ baseUrl: BASE, fetch, now: () => now });
  assert.equal((await client.taxGroups.list()).length, 2);
  await client.taxGroups.list();
  assert.equal(calls.length, 1);                                          // cached
  assert.deepEqual(await client.taxGroups.rates("2026-06-01T11:59:59Z"), { TG02: 160000 });
  assert.deepEqual(await client.taxGroups.rates("2026-06-01T12:00:00Z"), { TG02: 180000 });
  now = Date.parse("2026-06-01T12:00:00Z");                               // the change falls due
  await client.taxGroups.list();
  assert.equal(calls.length, 2);
  assert.deepEqual(await client.taxGroups.rates(), { TG02: 180000 });
  now += 23 * 3600 * 1000;
  await client.taxGroups.list();
  assert.equal(calls.length, 2);
  now += 3600 * 1000;                                                     // a day after the last fetch
  await client.taxGroups.list();
  assert.equal(calls.length, 3);
});

const VECTOR = {   // the Standard Webhooks library's own test vector
  secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
  body: '{"test": 2432232314}',
  headers: { "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" },
};

test("webhooks.verify: the Standard Webhooks vector verifies, and every change is InvalidSignature", async () => {
  const client = new Client({ baseUrl: BASE, fetch: fakeFetch([]).fetch });
  const at = { now: 1614265330 };
  assert.deepEqual(await client.webhooks.verify(VECTOR.body, VECTOR.headers, VECTOR.secret, at), { test: 2432232314 });
  assert.equal(await sdk.signWebhook(VECTOR.secret, VECTOR.headers["webhook-id"], 1614265330, VECTOR.body),
    VECTOR.headers["webhook-signature"]);
  const asHeaders = new Headers(VECTOR.headers);
  assert.deepEqual(await verifyWebhook(new TextEncoder().encode(VECTOR.body), asHeaders, VECTOR.secret, at),
    { test: 2432232314 });
  const several = { ...VECTOR.headers, "webhook-signature": "v1,bm9wZQ== v1a,xyz " + VECTOR.headers["webhook-signature"] };
  assert.ok(await verifyWebhook(VECTOR.body, several, VECTOR.secret, at));
  const refused = async (body, headers, secret, options, field) => {
    const err = await verifyWebhook(body, headers, secret, options).then(() => null, (e) => e);
    assert.ok(err instanceof InvalidSignature, String(err));
    assert.ok(err instanceof FiscalError);
    assert.equal(err.field, field);
  };
  await refused('{"test": 2432232315}', VECTOR.headers, VECTOR.secret, at, "webhook-signature");
  await refused(VECTOR.body, { ...VECTOR.headers, "webhook-id": "msg_other" }, VECTOR.secret, at, "webhook-signature");
  await refused(VECTOR.body, VECTOR.headers, "whsec_" + btoa("another key of 32 bytes........."), at, "webhook-signature");
  await refused(VECTOR.body, VECTOR.headers, VECTOR.secret, { now: 1614265330 + 301 }, "webhook-timestamp");
  await refused(VECTOR.body, VECTOR.headers, VECTOR.secret, { now: 1614265330 - 301 }, "webhook-timestamp");
  assert.ok(await verifyWebhook(VECTOR.body, VECTOR.headers, VECTOR.secret, { now: 1614265330 + 300 }));
  await refused(VECTOR.body, VECTOR.headers, VECTOR.secret, {}, "webhook-timestamp");   // 2021: a replay today
  await refused(VECTOR.body, { "webhook-id": "x" }, VECTOR.secret, at, "headers");
  await refused(VECTOR.body, VECTOR.headers, "whsec_not*base64", at, "secret");
});

/** A queue whose sleeps are recorded, not waited. */
function recordingQueue(options = {}) {
  const slept = [];
  const seen = { queued: [], fiscalized: [], error: [] };
  const queue = new OfflineQueue({ storage: new MemoryStorage(), sleep: async (ms) => { slept.push(ms); },
    onQueued: (d, e) => seen.queued.push([d.id, e?.code]), onFiscalized: (d, p) => seen.fiscalized.push([d.id, p.fiscal_number]),
    onError: (d, e) => seen.error.push([d.id, e.code]), ...options });
  return { queue, slept, seen };
}

const down = () => new TypeError("fetch failed: connect ECONNREFUSED 127.0.0.1:8787");

test("create while the daemon is away stores a draft first and answers a queued handle, never a number", async () => {
  const { queue, seen } = recordingQueue();
  const { fetch, calls } = fakeFetch([down()]);
  const client = new Client({ baseUrl: BASE, fetch, queue });
  const handle = await client.invoices.create(SAMPLE, { idempotencyKey: "till-7-9" });
  assert.deepEqual(Object.keys(handle).sort(), ["id", "idempotencyKey", "status"]);
  assert.equal(handle.status, "queued");
  assert.equal(handle.idempotencyKey, "till-7-9");
  assert.equal(calls.length, 1);                                          // one attempt, no waiting at the till
  const [draft] = await queue.drafts();
  assert.equal(draft.id, handle.id);
  assert.equal(draft.status, "queued");
  assert.equal(draft.body, JSON.stringify(SAMPLE));
  assert.equal(draft.attempts, 1);
  assert.equal(draft.response, undefined);
  assert.deepEqual(seen.queued, [[handle.id, "DEVICE_UNAVAILABLE"]]);
  const keyless = await client.invoices.create(SAMPLE);                   // a fresh key of its own, kept for the flush
  assert.match(keyless.idempotencyKey, /^sdk-[0-9a-f]{32}$/);
});

test("flush retries 100 ms -> 5 s -> 20 s, then stops with the order kept", async () => {
  const { queue, slept, seen } = recordingQueue();
  const { fetch, calls } = fakeFetch(() => down());
  const client = new Client({ baseUrl: BASE, fetch, queue });
  for (const key of ["k1", "k2", "k3"]) await client.invoices.create({ ...SAMPLE, cashier_id: key }, { idempotencyKey: key });
  calls.length = 0;
  seen.queued.length = 0;
  assert.deepEqual(await queue.flush(), { fiscalized: 0, error: 0, queued: 3 });
  assert.deepEqual(slept, [100, 5000, 20000]);                            // at most 3 retries
  assert.equal(calls.length, 4);
  assert.ok(calls.every((c) => c.headers["Idempotency-Key"] === "k1"));   // the oldest blocks the rest
  assert.equal(seen.queued.length, 1);
  assert.equal((await queue.drafts())[0].attempts, 5);
});

test("flush honours Retry-After when it is longer than the next delay", async () => {
  const { queue, slept } = recordingQueue();
  const script = [down(), refusal(429, "RATE_LIMIT_EXCEEDED", { retry_after: 30 }),
    [503, { status: "error", code: "DEVICE_UNAVAILABLE", detail: "busy" }, { "Retry-After": "2" }], ok(SEALED)];
  const client = new Client({ baseUrl: BASE, fetch: fakeFetch(script).fetch, queue });
  await client.invoices.create(SAMPLE, { idempotencyKey: "k1" });
  assert.deepEqual(await queue.flush(), { fiscalized: 1, error: 0, queued: 0 });
  assert.deepEqual(slept, [30000, 5000]);                                 // max(100, 30 s), then max(5 s, 2 s)
});

test("flush sends oldest first with each draft's original body and key; a refusal is marked and skipped", async () => {
  const { queue, seen } = recordingQueue();
  let online = false;
  let counter = 0;
  const { fetch, calls } = fakeFetch((i, call) => {
    if (!online) return down();
    if (JSON.parse(call.body).cashier_id === "c2") return refusal(400, "INVALID_CANONICAL_PAYLOAD", { field: "totals.total" });
    counter += 1;
    return ok({ ...SEALED, fiscal_number: `EMU-1-0000000${counter}`, counter }, "INVOICE_FISCALIZED");
  });
  const client = new Client({ baseUrl: BASE, fetch, queue });
  const bodies = [];
  for (const cashier of ["c1", "c2", "c3", "c4"]) {
    const doc = { ...SAMPLE, cashier_id: cashier };
    bodies.push(JSON.stringify(doc));
    await client.invoices.create(doc, { idempotencyKey: "key-" + cashier });
  }
  online = true;
  calls.length = 0;
  assert.deepEqual(await queue.flush(), { fiscalized: 3, error: 1, queued: 0 });
  assert.deepEqual(calls.map((c) => c.body), bodies);                     // the very text first serialised
  assert.deepEqual(calls.map((c) => c.headers["Idempotency-Key"]), ["key-c1", "key-c2", "key-c3", "key-c4"]);
  assert.deepEqual(seen.fiscalized.map((f) => f[1]), ["EMU-1-00000001", "EMU-1-00000002", "EMU-1-00000003"]);
  const drafts = await queue.drafts();
  assert.deepEqual(drafts.map((d) => d.status), ["fiscalized", "error", "fiscalized", "fiscalized"]);
  assert.equal(drafts[0].response.fiscal_number, "EMU-1-00000001");
  assert.equal(drafts[1].error.field, "totals.total");
  assert.deepEqual(seen.error, [[drafts[1].id, "INVALID_CANONICAL_PAYLOAD"]]);
  calls.length = 0;
  assert.deepEqual(await queue.flush(), { fiscalized: 0, error: 0, queued: 0 });   // nothing twice
  assert.equal(calls.length, 0);
});

test("two flushes at once are one flush", async () => {
  const { queue } = recordingQueue();
  let online = false;
  const { fetch, calls } = fakeFetch(() => (online ? ok(SEALED) : down()));
  const client = new Client({ baseUrl: BASE, fetch, queue });
  await client.invoices.create(SAMPLE, { idempotencyKey: "k1" });
  online = true;
  calls.length = 0;
  const [a, b] = await Promise.all([queue.flush(), queue.flush()]);
  assert.equal(a, b);
  assert.equal(calls.length, 1);
});

test("storage that returns damaged drafts is OfflineQueueCorrupt, with what it returned, then reset", async () => {
  const storage = new MemoryStorage();
  const queue = new OfflineQueue({ storage, sleep: async () => {} });
  new Client({ baseUrl: BASE, fetch: fakeFetch(() => down()).fetch, queue });
  await queue.add(JSON.stringify(SAMPLE), "k1");
  await queue.add(JSON.stringify(SAMPLE), "k2");
  storage.drafts.get([...storage.drafts.keys()][1]).body = "{broken";
  const err = await queue.flush().then(() => null, (e) => e);
  assert.ok(err instanceof OfflineQueueCorrupt && err instanceof FiscalError);
  assert.equal(err.code, "OFFLINE_QUEUE_CORRUPT");
  assert.deepEqual(err.exported.map((d) => d.idempotencyKey), ["k1", "k2"]);
  assert.equal(err.exported[1].body, "{broken");
  await queue.reset();
  assert.deepEqual(await queue.drafts(), []);
  const failing = new OfflineQueue({ storage: { list() { throw new Error("disk I/O error"); } } });
  const unreadable = await failing.drafts().then(() => null, (e) => e);
  assert.ok(unreadable instanceof OfflineQueueCorrupt);
  assert.equal(unreadable.cause.message, "disk I/O error");
  const badStatus = new MemoryStorage();
  badStatus.save({ id: "d1", seq: 1, idempotencyKey: "k", body: "{}", status: "sealed?", created: 0, attempts: 0 });
  assert.ok(await new OfflineQueue({ storage: badStatus }).pending().catch((e) => e) instanceof OfflineQueueCorrupt);
});

test("a storage driver that cannot write is OfflineQueueCorrupt, and nothing is sent unstored", async () => {
  const full = new MemoryStorage();
  full.save = () => { throw new DOMException("the quota is exceeded", "QuotaExceededError"); };
  const { fetch, calls } = fakeFetch(() => ok(SEALED));
  const client = new Client({ baseUrl: BASE, fetch, queue: new OfflineQueue({ storage: full }) });
  const err = await client.invoices.create(SAMPLE, { idempotencyKey: "k1" }).then(() => null, (e) => e);
  assert.ok(err instanceof OfflineQueueCorrupt, String(err));
  assert.equal(err.cause.name, "QuotaExceededError");
  assert.match(err.detail, /failed to save a draft/);
  assert.equal(calls.length, 0);
});

test("the builder makes sample 002 exactly: canonical order, groups and totals by the device's rule", () => {
  const rates = { TG02: 160000, TG03: 160000, TG01: 0 };
  const stamp = "2026-02-17T04:00:00Z";   // seed 002's; the sample leaves it out (the daemon dates it)
  const built = new InvoiceBuilder({ merchantNif: SAMPLE.merchant_nif, outletId: SAMPLE.outlet_id,
    posTerminalId: SAMPLE.pos_terminal_id, cashierId: SAMPLE.cashier_id, timestamp: stamp, rates })
    .client("Acme Ltd", "123456789", "Company")
    .item({ code: "CONS-001", quantity: 2, unitPrice: "500.00", taxGroup: "TG03", description: "Consulting hours",
      taxableUnit: "hour" })
    .pay("mobile_money", { instrumentId: "AIRTEL-001" })
    .build();
  assert.ok(!("timestamp" in SAMPLE));
  const expected = {};
  for (const [key, value] of Object.entries(structuredClone(SAMPLE))) {   // the sample's order, dated
    expected[key] = value;
    if (key === "invoice_type") expected.timestamp = stamp;
  }
  assert.deepEqual(Object.keys(built), Object.keys(expected));
  expected.items[0].quantity = "2";
  expected.tax_groups[0].name = "";
  expected.tax_groups[0].rate = "0.16";
  assert.deepEqual(built, expected);
});

test("the builder rounds half up per group, on integers, and refuses inexact amounts naming the field", () => {
  const b = new InvoiceBuilder({ merchantNif: "1", outletId: "o", posTerminalId: "t", cashierId: "c",
    timestamp: "2026-12-01T10:00:00Z", rates: { TG02: 160000, TG01: 0, TG04: 80000 } })
    .item({ code: "A", quantity: "0.333", unitPrice: "0.10", taxGroup: "TG02" })    // 3.33 minor -> 3
    .item({ code: "B", quantity: "1.5", unitPrice: "0.05", taxGroup: "TG02" })      // 7.5 minor: group 10.83 -> 11
    .item({ code: "C", quantity: 3, unitPrice: "10.01", taxGroup: "TG04" })         // 3003 -> tax 240.24 -> 240
    .item({ code: "D", quantity: 1, unitPrice: "99999999999.99", taxGroup: "TG01" });
  const doc = b.build();
  assert.deepEqual(doc.tax_groups.map((g) => [g.code, g.rate, g.base_amount, g.tax_amount]),
    [["TG01", "0", "99999999999.99", "0.00"], ["TG02", "0.16", "0.11", "0.02"], ["TG04", "0.08", "30.03", "2.40"]]);
  assert.deepEqual(doc.totals, { subtotal: "100000000030.13", total_vat: "2.42", total: "100000000032.55", currency: "CDF" });
  assert.equal(doc.payments[0].amount, doc.totals.total);
  assert.equal(doc.items[0].quantity, "0.333");
  const refused = (fn, field) => {
    assert.throws(fn, (e) => e instanceof InvalidPayload && e.field === field);
  };
  refused(() => b.item({ code: "E", quantity: 1, unitPrice: "0.001", taxGroup: "TG02" }), "items[4].unit_price");
  refused(() => b.item({ code: "E", quantity: 1, unitPrice: 0.1, taxGroup: "TG02" }), "items[4].unit_price");
  refused(() => b.item({ code: "E", quantity: "0.0001", unitPrice: 1, taxGroup: "TG02" }), "items[4].quantity");
  refused(() => b.item({ code: "E", quantity: 1, unitPrice: 1, taxGroup: "TG99" }), "items[4].tax_group");
});
