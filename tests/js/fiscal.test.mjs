/**
 * hostd/sdk/browser/fiscal.mjs against a real daemon and emulator (issue 14: "node --test against
 * a real daemon seals, lists and surfaces a 401 and a 400 as typed errors").
 *
 * tests/test_browser_sdk.py starts the emulator and `fiscal daemon --tokens-file F --listen
 * 127.0.0.1:PORT`, then runs this file in phases, passing through the environment:
 *
 *   FISCAL_BASE_URL   http://127.0.0.1:PORT (the TCP listener)
 *   FISCAL_TOKEN      a token of the tokens file
 *   FISCAL_PHASE      live      the daemon is up: seal, get, list, typed errors, webhooks, /sdk/fiscal.mjs
 *                     offline   the daemon is stopped: invoices are queued in FISCAL_QUEUE_FILE
 *                     restored  the daemon is back: the queue is flushed, oldest first, exactly once
 *   FISCAL_WEBHOOK    JSON {secret, body, headers}: a delivery the daemon sent (signed by
 *                     hostd/books/signing.py), as a receiver got it
 *   FISCAL_QUEUE_FILE where tests/js/filestore.mjs keeps the drafts between the two node runs
 *
 * The tests of the other phases are skipped; the pytest side checks that the ones of its phase
 * ran and passed. Without FISCAL_BASE_URL every test here is skipped (the unit tests are in
 * fiscal.unit.test.mjs).
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as sdk from "../../hostd/sdk/browser/fiscal.mjs";
import { FileStorage } from "./filestore.mjs";

const { Client, DeviceUnavailable, FiscalError, InvalidPayload, InvalidSignature, InvoiceBuilder, NotFound,
  OfflineQueue, Unauthorized } = sdk;

const BASE = process.env.FISCAL_BASE_URL;
const TOKEN = process.env.FISCAL_TOKEN;
const PHASE = BASE ? process.env.FISCAL_PHASE ?? "live" : null;
const MODULE = new URL("../../hostd/sdk/browser/fiscal.mjs", import.meta.url);
const SAMPLE = JSON.parse(readFileSync(new URL("../../samples/invoice-002-services.json", import.meta.url), "utf8"));
const OFFLINE = 5;

const only = (phase) => ({ skip: PHASE === phase ? false : `phase ${phase} (FISCAL_PHASE=${PHASE})` });

/** Sample 002 (samples/invoice-002-services.json) built in JS, at the current time, with the daemon's rates. */
async function sale(client, cashier) {
  return new InvoiceBuilder({ merchantNif: SAMPLE.merchant_nif, outletId: SAMPLE.outlet_id,
    posTerminalId: SAMPLE.pos_terminal_id, cashierId: cashier, rates: await client.taxGroups.rates() })
    .client(SAMPLE.client.name, SAMPLE.client.nif, SAMPLE.client.classification)
    .item({ code: "CONS-001", quantity: 2, unitPrice: "500.00", taxGroup: "TG03", description: "Consulting hours",
      taxableUnit: "hour" })
    .pay("mobile_money", { instrumentId: "AIRTEL-001" });
}

async function rejection(promise) {
  return promise.then((value) => assert.fail(`expected an error, got ${JSON.stringify(value)}`), (err) => err);
}

test("seals an invoice built in JS with the sample's totals, gets it back and finds it in the list", only("live"),
  async () => {
    const client = new Client({ baseUrl: BASE, token: TOKEN });
    const built = (await sale(client, "js-live")).build();
    assert.deepEqual(built.totals, SAMPLE.totals);
    assert.deepEqual(built.tax_groups.map((g) => [g.code, g.base_amount, g.tax_amount]),
      SAMPLE.tax_groups.map((g) => [g.code, g.base_amount, g.tax_amount]));
    const sealed = await client.invoices.create(built, { idempotencyKey: "js-live-1" });
    assert.match(sealed.fiscal_number, /^EMU-[0-9A-F]+-\d{8}$/);
    assert.ok(sealed.auth_code && sealed.qr_payload && sealed.timestamp && sealed.fiscal_authority_id);
    assert.notEqual(sealed.status, "queued");
    const again = await client.invoices.create(built, { idempotencyKey: "js-live-1" });   // a retry: the same seal
    assert.deepEqual(again, sealed);
    const got = await client.invoices.get(sealed.fiscal_number);
    assert.equal(got.fiscal_number, sealed.fiscal_number);
    assert.equal(got.auth_code, sealed.auth_code);
    assert.equal(got.invoice.totals.total, "1160.00");
    assert.equal(got.invoice.cashier_id, "js-live");
    const listed = await client.invoices.list({ outletId: SAMPLE.outlet_id, sort: "-fiscal_number" });
    assert.ok(listed.some((i) => i.fiscal_number === sealed.fiscal_number), JSON.stringify(listed));
    assert.deepEqual(await client.invoices.list({ outletId: "outlet-nowhere" }), []);
  });

test("voids and refunds a sealed invoice; a second full void is OriginalSettled", only("live"), async () => {
  const client = new Client({ baseUrl: BASE, token: TOKEN });
  const original = await client.invoices.create((await sale(client, "js-credit")).build(),
    { idempotencyKey: "js-credit-sale" });
  const refund = await client.invoices.refund(original.fiscal_number,
    { amount: "100.00", currency: "CDF", paymentReference: "JS-RF-1", idempotencyKey: "js-credit-r1" });
  assert.notEqual(refund.fiscal_number, original.fiscal_number);
  assert.deepEqual(await client.invoices.refund(original.fiscal_number,
    { amount: "100.00", currency: "CDF", paymentReference: "JS-RF-1", idempotencyKey: "js-credit-r1" }), refund);
  const over = await rejection(client.invoices.refund(original.fiscal_number,
    { amount: "1060.01", currency: "CDF", idempotencyKey: "js-credit-r2" }));
  assert.ok(over instanceof sdk.CreditExceedsBalance && over instanceof sdk.CreditRefused, String(over));
  assert.equal(over.field, "amount");
  assert.equal(over.deviceCode, "CREDIT_EXCEEDS");
  const part = await client.invoices.void(original.fiscal_number,
    { reason: "one hour", adjustments: [{ code: "CONS-001", quantity: 1 }], idempotencyKey: "js-credit-v1" });
  const got = await client.invoices.get(original.fiscal_number);
  assert.deepEqual(got.credits.map((c) => c.fiscal_number), [refund.fiscal_number, part.fiscal_number]);
  assert.equal(got.balance.total, "480.00");
  const whole = await client.invoices.create((await sale(client, "js-credit-2")).build());
  await client.invoices.void(whole.fiscal_number, { reason: "cancelled" });
  const again = await rejection(client.invoices.void(whole.fiscal_number, { reason: "cancelled" }));
  assert.ok(again instanceof sdk.OriginalSettled, String(again));
  assert.equal(again.status, 409);
});

test("a wrong token is Unauthorized: HTTP 401, field Authorization", only("live"), async () => {
  const client = new Client({ baseUrl: BASE, token: "W".repeat(20) });
  for (const call of [() => client.taxGroups.list(), () => client.invoices.create(SAMPLE, { idempotencyKey: "js-401" })]) {
    const err = await rejection(call());
    assert.ok(err instanceof Unauthorized, String(err));
    assert.ok(err instanceof FiscalError);
    assert.equal(err.status, 401);
    assert.equal(err.code, "UNAUTHORIZED");
    assert.equal(err.field, "Authorization");
    assert.equal(err.envelope.status, "error");
  }
});

test("a broken invoice is InvalidPayload: HTTP 400 naming the field", only("live"), async () => {
  const client = new Client({ baseUrl: BASE, token: TOKEN });
  const broken = (await sale(client, "js-400")).build();
  broken.totals.total = "1.00";
  const err = await rejection(client.invoices.create(broken, { idempotencyKey: "js-400" }));
  assert.ok(err instanceof InvalidPayload, String(err));
  assert.equal(err.status, 400);
  assert.equal(err.code, "INVALID_CANONICAL_PAYLOAD");
  assert.equal(err.field, "totals.total");
  assert.ok(err.detail.length > 0);
  const { client: party, ...rest } = (await sale(client, "js-400b")).build();
  const missing = await rejection(client.invoices.create(rest));
  assert.ok(missing instanceof InvalidPayload);
  assert.equal(missing.field, "client");
  const absent = await rejection(client.invoices.get("EMU-NOPE-00000001"));
  assert.ok(absent instanceof NotFound);
  assert.equal(absent.status, 404);
  assert.ok(party);
});

test("webhooks.verify accepts the Standard Webhooks vector and a delivery signed by Python, and refuses a change",
  only("live"), async () => {
    const client = new Client({ baseUrl: BASE, token: TOKEN });
    const vector = { "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" };
    assert.deepEqual(await client.webhooks.verify('{"test": 2432232314}', vector, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
      { now: 1614265330 }), { test: 2432232314 });
    const delivery = JSON.parse(process.env.FISCAL_WEBHOOK);
    const event = await client.webhooks.verify(delivery.body, delivery.headers, delivery.secret);
    assert.equal(event.event, "invoice.sealed");
    assert.match(event.fiscal_number, /^EMU-/);
    const changed = delivery.body.replace(event.fiscal_number, "EMU-FORGED-00000099");
    assert.notEqual(changed, delivery.body);
    const err = await rejection(client.webhooks.verify(changed, delivery.headers, delivery.secret));
    assert.ok(err instanceof InvalidSignature);
    assert.equal(err.field, "webhook-signature");
  });

test("the daemon serves this very module at /sdk/fiscal.mjs, without a token", only("live"), async () => {
  const answer = await fetch(BASE + "/sdk/fiscal.mjs");
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get("content-type"), "text/javascript; charset=utf-8");
  const text = await answer.text();
  assert.equal(text, readFileSync(MODULE, "utf8"));
  const served = await import("data:text/javascript;base64," + Buffer.from(text).toString("base64"));
  assert.deepEqual(Object.keys(served), Object.keys(sdk));
});

test("with the daemon stopped, create queues each invoice and answers no fiscal number", only("offline"), async () => {
  const queued = [];
  const slept = [];
  const queue = new OfflineQueue({ storage: new FileStorage(process.env.FISCAL_QUEUE_FILE),
    sleep: async (ms) => { slept.push(ms); }, onQueued: (draft, err) => queued.push([draft.id, err]) });
  const client = new Client({ baseUrl: BASE, token: TOKEN, queue });
  const rates = { TG03: 160000 };   // the manifest cannot be fetched now; a POS keeps it
  for (let i = 0; i < OFFLINE; i++) {
    const doc = new InvoiceBuilder({ merchantNif: SAMPLE.merchant_nif, outletId: SAMPLE.outlet_id,
      posTerminalId: SAMPLE.pos_terminal_id, cashierId: `js-off-${i}`, rates })
      .item({ code: "CONS-001", quantity: i + 1, unitPrice: "500.00", taxGroup: "TG03" });
    const handle = await client.invoices.create(doc, { idempotencyKey: `js-off-${i}` });
    assert.deepEqual(handle, { status: "queued", id: handle.id, idempotencyKey: `js-off-${i}` });
    assert.equal("fiscal_number" in handle, false);
  }
  assert.equal(queued.length, OFFLINE);
  assert.ok(queued.every(([, err]) => err instanceof DeviceUnavailable && err.retryAfter === null));
  assert.deepEqual(await queue.flush(), { fiscalized: 0, error: 0, queued: OFFLINE });   // still down: all kept
  assert.deepEqual(slept, [100, 5000, 20000]);
  assert.deepEqual((await queue.drafts()).map((d) => d.status), Array(OFFLINE).fill("queued"));
  const direct = await rejection(new Client({ baseUrl: BASE, token: TOKEN }).invoices.create(SAMPLE));
  assert.ok(direct instanceof DeviceUnavailable);                        // without a queue: the error itself
  assert.equal(direct.status, null);
});

test("after the restart, flush seals the queued invoices oldest first, exactly once", only("restored"), async () => {
  const sealed = [];
  const queue = new OfflineQueue({ storage: new FileStorage(process.env.FISCAL_QUEUE_FILE),
    onFiscalized: (draft, payload) => sealed.push([draft.idempotencyKey, payload.counter, payload.fiscal_number]) });
  const client = new Client({ baseUrl: BASE, token: TOKEN, queue });
  assert.deepEqual(await queue.flush(), { fiscalized: OFFLINE, error: 0, queued: 0 });
  assert.deepEqual(sealed.map((s) => s[0]), Array.from({ length: OFFLINE }, (_, i) => `js-off-${i}`));
  const counters = sealed.map((s) => s[1]);
  assert.deepEqual(counters, [...counters].sort((a, b) => a - b));
  for (const [key, , number] of sealed) {
    const got = await client.invoices.get(number);
    assert.equal(got.invoice.cashier_id, key);
  }
  const drafts = await queue.drafts();
  assert.deepEqual(drafts.map((d) => d.response.fiscal_number), sealed.map((s) => s[2]));
  assert.deepEqual(await queue.flush(), { fiscalized: 0, error: 0, queued: 0 });          // nothing twice
});
