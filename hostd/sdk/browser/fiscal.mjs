/**
 * fiscal.mjs: the browser SDK of the open fiscal device (issue 14, point 2), for web POS.
 *
 * One ES module, no dependencies, no build step. The daemon serves it at GET /sdk/fiscal.mjs
 * (no token: it is public code); a page imports it from there and talks to the daemon's TCP
 * listener (`fiscal daemon --listen 127.0.0.1:PORT --tokens-file F`, its page's origin allowed
 * with `--cors-origin`) through `fetch`.
 *
 * What it follows:
 * - seed 003 "Invoicing SDK Specification v1": the calls (`invoices.create/get/list/void/refund`,
 *   `reports.generate`, `taxGroups.list`, `webhooks.verify`), the errors (one class per envelope
 *   code), the offline queue ("Offline Queue & Retry": drafts in `draft / queued / fiscalized /
 *   error`, FIFO flush, 100 ms -> 5 s -> 20 s, hooks `onQueued` / `onFiscalized` / `onError`, a
 *   storage driver with `save`, `list`, `delete`, `mark`; IndexedDB in browsers) and its trust
 *   boundary: it never makes up a fiscal number, time stamp or QR; only the device does;
 * - the Python SDK, hostd/sdk/ (client.py, errors.py, queue.py, builders.py), which it mirrors
 *   call for call, in JavaScript spelling (`idempotencyKey`, `retryAfter`, `deviceCode`);
 * - the daemon's API and error envelope `{status, code, detail, field?, retry_after?,
 *   device_code?}` (README "The POS API");
 * - Standard Webhooks 1.0, "Signature scheme", for `webhooks.verify`: the rule of
 *   hostd/books/signing.py, computed with WebCrypto (`crypto.subtle`, HMAC-SHA256).
 *
 * It needs `fetch`, `AbortController`, `crypto.subtle`, `TextEncoder`, `atob`/`btoa` and `BigInt`:
 * every current browser, and Node 18 or later (the tests run it with `node --test`).
 *
 * @module fiscal
 */

// ---------------------------------------------------------------------------------------------
// Errors: one class per envelope code (seed 003 "Error handling"; hostd/sdk/errors.py).

/**
 * The one error class of this SDK; every error it throws is one of its subclasses.
 *
 * A POS branches on the class, shows `detail`, and retries only what `retryable` says.
 * `envelope` is the daemon's error document as answered (empty when the daemon was not reached).
 */
export class FiscalError extends Error {
  static code = "SDK_ERROR";
  static retryable = false;

  /**
   * @param {string} detail what went wrong, for people
   * @param {{field?: ?string, status?: ?number, envelope?: object, code?: string, cause?: unknown}} [options]
   */
  constructor(detail, { field = null, status = null, envelope = {}, code, cause } = {}) {
    super(detail, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    /** The envelope code: the class's own, or (for a plain FiscalError) the code the daemon answered. */
    this.code = code ?? new.target.code;
    /** @type {?number} the HTTP status, or null when the daemon was not reached */
    this.status = status;
    /** @type {?string} the field at fault, as the daemon names it (`totals.total`, `Authorization`) */
    this.field = field;
    this.detail = detail;
    this.envelope = envelope;
  }

  /** True when the same request may be sent again later (with the same Idempotency-Key). */
  get retryable() {
    return this.constructor.retryable;
  }
}

/** 400: the invoice is wrong (missing field, order, totals); re-author it. */
export class InvalidPayload extends FiscalError { static code = "INVALID_CANONICAL_PAYLOAD"; }
/** 400: the request around the invoice is wrong (e.g. an empty Idempotency-Key). */
export class InvalidRequest extends FiscalError { static code = "INVALID_REQUEST"; }
/** 401: no token, or a token the daemon does not know. */
export class Unauthorized extends FiscalError { static code = "UNAUTHORIZED"; }
/** 403: the token may not act for this outlet, or the page's origin is not allowed. */
export class Forbidden extends FiscalError { static code = "FORBIDDEN"; }
/** 404: no such invoice (or endpoint). */
export class NotFound extends FiscalError { static code = "NOT_FOUND"; }
/** 422: this Idempotency-Key was used before with a different body. */
export class IdempotencyKeyReused extends FiscalError { static code = "IDEMPOTENCY_KEY_REUSED"; }

/** 422: the device refused for good; `deviceCode` says why (e.g. TAX_RATE_MISMATCH). */
export class FiscalizationFailed extends FiscalError {
  static code = "FISCALIZATION_FAILED";
  /** @type {?string} */
  get deviceCode() {
    return this.envelope.device_code ?? null;
  }
}

/** 429: wait `retryAfter` seconds, then retry with the same Idempotency-Key. */
export class RateLimited extends FiscalError {
  static code = "RATE_LIMIT_EXCEEDED";
  static retryable = true;
  constructor(detail, options = {}) {
    super(detail, options);
    /** @type {number} seconds (the daemon's Retry-After; 1 when it sent none) */
    this.retryAfter = options.retryAfter ?? 1;
  }
}

/**
 * 503, or the daemon could not be reached at all (network failure, timeout): nothing was sealed
 * that this answer knows of; retry with the same Idempotency-Key (the offline queue does).
 * In a browser, a page whose origin the daemon does not allow (`--cors-origin`) also lands here:
 * the browser hides the daemon's 403 from the page and reports a network failure.
 */
export class DeviceUnavailable extends FiscalError {
  static code = "DEVICE_UNAVAILABLE";
  static retryable = true;
  constructor(detail, options = {}) {
    super(detail, options);
    /** @type {?number} the daemon's Retry-After in seconds, or null when it was not reached */
    this.retryAfter = options.retryAfter ?? null;
  }
}

/**
 * The offline queue's storage returned data that cannot be trusted (seed 003: export, then reset).
 * `exported` holds what the storage returned, for the POS to save or send before `queue.reset()`.
 */
export class OfflineQueueCorrupt extends FiscalError {
  static code = "OFFLINE_QUEUE_CORRUPT";
  constructor(detail, options = {}) {
    super(detail, options);
    /** @type {?Array<unknown>} */
    this.exported = options.exported ?? null;
  }
}

/** A webhook delivery whose signature or time stamp does not verify: do not act on it. */
export class InvalidSignature extends FiscalError { static code = "INVALID_SIGNATURE"; }

/**
 * A void, refund or credit note the daemon refused before sealing anything (issue 11); the
 * subclass says which rule, `deviceCode` the device's rule when it has one.
 */
export class CreditRefused extends FiscalError {
  static code = "CREDIT_REFUSED";
  /** @type {?string} */
  get deviceCode() {
    return this.envelope.device_code ?? null;
  }
}
/** 404: no sealed invoice with that fiscal number to credit. */
export class OriginalNotFound extends CreditRefused { static code = "ORIGINAL_NOT_FOUND"; }
/** The original is itself a credit note (a void of a void). */
export class OriginalIsCredit extends CreditRefused { static code = "ORIGINAL_IS_CREDIT"; }
/** 409: nothing of the original is left to credit (a second full void). */
export class OriginalSettled extends CreditRefused { static code = "ORIGINAL_SETTLED"; }
/** A tax group would go below zero: more than remains of the original. */
export class CreditExceedsBalance extends CreditRefused { static code = "CREDIT_EXCEEDS_BALANCE"; }
/** The credit is in another currency than its original. */
export class CreditCurrencyMismatch extends CreditRefused { static code = "CREDIT_CURRENCY_MISMATCH"; }
/** credit_note credits a sale or advance, export_credit an export. */
export class CreditKindMismatch extends CreditRefused { static code = "CREDIT_KIND_MISMATCH"; }
/** No credit note totals exactly this amount; `detail` names the nearest that do. */
export class RefundAmountUnreachable extends CreditRefused { static code = "REFUND_AMOUNT_UNREACHABLE"; }
/** 409: the daemon lost the original's lines (a lost store): retry the original's own request. */
export class OriginalContentMissing extends CreditRefused { static code = "ORIGINAL_CONTENT_MISSING"; }
/** 409: the daemon cannot prove what was credited so far (its store lacks erased records). */
export class CreditBooksIncomplete extends CreditRefused { static code = "CREDIT_BOOKS_INCOMPLETE"; }

const BY_CODE = Object.fromEntries([InvalidPayload, InvalidRequest, Unauthorized, Forbidden, NotFound,
  IdempotencyKeyReused, FiscalizationFailed, RateLimited, DeviceUnavailable, OriginalNotFound, OriginalIsCredit,
  OriginalSettled, CreditExceedsBalance, CreditCurrencyMismatch, CreditKindMismatch, RefundAmountUnreachable,
  OriginalContentMissing, CreditBooksIncomplete].map((cls) => [cls.code, cls]));
// Envelope codes that mean "not now" rather than "never" (hostd/sdk/errors.py RETRYABLE_CODES).
const RETRYABLE_CODES = ["DEVICE_UNAVAILABLE", "DEVICE_TIMEOUT", "STORE_UNAVAILABLE", "RATE_LIMIT_EXCEEDED",
  "REQUEST_TIMEOUT"];

/** Retry-After as seconds: delta-seconds or an HTTP-date (RFC 9110 section 10.2.3); null if absent. */
function retryAfterOf(value, now) {
  if (value === null || value === undefined || value === "") return null;
  if (/^\d+$/.test(String(value))) return Number(value);
  const when = Date.parse(String(value));
  return Number.isNaN(when) ? null : Math.max(0, (when - now) / 1000);
}

/**
 * The typed error of a daemon error envelope.
 * @param {number} status HTTP status
 * @param {object} doc the envelope
 * @param {{get(name: string): ?string}} [headers] the answer's headers (for Retry-After)
 * @returns {FiscalError}
 */
export function fromEnvelope(status, doc, headers, now = Date.now()) {
  const code = doc && typeof doc.code === "string" ? doc.code : "";
  let cls = BY_CODE[code];
  if (cls === undefined) {
    cls = RETRYABLE_CODES.includes(code) || status > 500 ? DeviceUnavailable : FiscalError;
  }
  const retryAfter = doc?.retry_after ?? retryAfterOf(headers?.get?.("Retry-After"), now);
  return new cls(doc?.detail ?? `HTTP ${status}`, {
    field: doc?.field ?? null, status, envelope: doc ?? {}, retryAfter: retryAfter ?? undefined,
    code: cls === FiscalError && code ? code : undefined,
  });
}

// ---------------------------------------------------------------------------------------------
// The client (seed 003 "SDK Methods"; hostd/sdk/client.py).

/** Retry delays of a flush, in milliseconds (seed 003: 100 ms -> 5 s -> 20 s, at most 3 retries). */
export const RETRY_DELAYS = Object.freeze([100, 5000, 20000]);
/** How long the tax-group manifest is kept at most (ms), when no `effective_from` falls due sooner. */
export const TAX_GROUPS_CACHE_MS = 24 * 3600 * 1000;

/**
 * What a POS calls instead of hand-writing HTTP.
 *
 * @example
 * const client = new Client({baseUrl: "http://127.0.0.1:8787", token, queue: new OfflineQueue()});
 * const sealed = await client.invoices.create(sale, {idempotencyKey: "web-01-000124"});
 */
export class Client {
  /**
   * @param {object} options
   * @param {string} options.baseUrl the daemon's TCP listener, e.g. `http://127.0.0.1:8787`
   * @param {string} [options.token] the bearer token (README "tokens file")
   * @param {number} [options.timeout] milliseconds to wait for an answer (seed 003: 10 s)
   * @param {typeof fetch} [options.fetch] the fetch to use (a test passes a fake)
   * @param {OfflineQueue} [options.queue] queue invoices the daemon cannot take now
   * @param {() => number} [options.now] the clock, in ms (the tax-group cache; tests)
   */
  constructor({ baseUrl, token, timeout = 10000, fetch = globalThis.fetch, queue, now = Date.now } = {}) {
    if (typeof baseUrl !== "string" || !/^https?:\/\//.test(baseUrl)) {
      throw new InvalidRequest("Client needs baseUrl, the daemon's listener (http://127.0.0.1:PORT)",
        { field: "baseUrl" });
    }
    if (typeof fetch !== "function") {
      throw new InvalidRequest("no fetch: pass {fetch} (Node 18+ and browsers have one)", { field: "fetch" });
    }
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = token ?? null;
    this.timeout = timeout;
    // Called as a plain function: a browser's window.fetch refuses any other `this`.
    this.fetch = (...args) => fetch(...args);
    this.now = now;
    this.invoices = new Invoices(this);
    this.reports = new Reports(this);
    this.taxGroups = new TaxGroups(this);
    this.webhooks = new Webhooks();
    /** @type {?OfflineQueue} */
    this.queue = queue ?? null;
    if (this.queue !== null) this.queue.attach(this);
  }

  /**
   * One API call: the answer's envelope, or the typed error of its code.
   * A network failure or a timeout is DeviceUnavailable (retryAfter null): whether a seal was made
   * is then unknown, and a retry with the same Idempotency-Key gets the daemon's first answer.
   * @param {string} method
   * @param {string} path
   * @param {{doc?: unknown, body?: string, key?: ?string}} [request] a JSON document, or a body
   *   already serialised (a queued draft's original text), and its Idempotency-Key
   * @returns {Promise<object>}
   */
  async call(method, path, { doc, body, key } = {}) {
    const headers = { Accept: "application/json" };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    if (key !== undefined && key !== null) headers["Idempotency-Key"] = key;
    if (doc !== undefined) body = JSON.stringify(doc);
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeout);
    let response;
    let text;
    try {
      response = await this.fetch(this.baseUrl + path, { method, headers, body, signal: controller.signal });
      text = await response.text();
    } catch (exc) {
      const why = controller.signal.aborted ? `no answer within ${this.timeout} ms` : String(exc?.message ?? exc);
      throw new DeviceUnavailable(`cannot reach the daemon at ${this.baseUrl}: ${why}`, { cause: exc });
    } finally {
      clearTimeout(timer);
    }
    let answer;
    try {
      answer = JSON.parse(text);
    } catch (exc) {
      throw new FiscalError(`the daemon answered HTTP ${response.status} without JSON`,
        { status: response.status, cause: exc });
    }
    if (!response.ok) throw fromEnvelope(response.status, answer, response.headers, this.now());
    return answer;
  }
}

/** `client.invoices` (seed 003 "SDK Methods"). */
class Invoices {
  constructor(client) {
    this.client = client;
  }

  /**
   * Seal an invoice. With an offline queue the invoice is stored as a draft first; if the daemon
   * or its device cannot take it now, the answer is `{status: "queued", id, idempotencyKey}` and
   * the queue sends it later (never a fiscal number the device did not give). Without a queue,
   * that case throws DeviceUnavailable.
   * @param {object|InvoiceBuilder} doc the canonical invoice (README "Invoices"), or a builder
   * @param {{idempotencyKey?: string}} [options] the key a retry is recognised by
   * @returns {Promise<object>} the sealed payload (`fiscal_number`, `auth_code`, `timestamp`,
   *   `qr_payload`, `fiscal_authority_id`, ...) or the queued handle
   */
  async create(doc, { idempotencyKey } = {}) {
    const invoice = typeof doc?.build === "function" ? doc.build() : doc;   // a builder (of any copy of this module)
    const body = JSON.stringify(invoice);
    const queue = this.client.queue;
    if (queue === null) {
      return (await this.client.call("POST", "/api/v1/invoices", { body, key: idempotencyKey })).payload;
    }
    const draft = await queue.add(body, idempotencyKey);   // stored first: a closed tab now loses nothing
    const sealed = await queue.send(draft, 1);
    return sealed ?? { status: "queued", id: draft.id, idempotencyKey: draft.idempotencyKey };
  }

  /**
   * One sealed invoice, by fiscal number (or counter).
   * @param {string} fiscalNumber
   * @returns {Promise<object>}
   */
  async get(fiscalNumber) {
    return (await this.client.call("GET", "/api/v1/invoices/" + encodeURIComponent(fiscalNumber))).payload;
  }

  /**
   * Sealed invoices, filtered and paginated. Filters take the daemon's names (`outlet_id`,
   * `client.nif`, `status`, `date_range`, `page`, `per_page`, `sort`, ...) or their camelCase
   * (`outletId`, `clientNif`, `dateRange`, `perPage`, ...).
   * @param {Object<string, string|number>} [filters]
   * @returns {Promise<object[]>}
   */
  async list(filters = {}) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filters)) {
      if (value !== undefined && value !== null) query.append(FILTERS[name] ?? name, String(value));
    }
    const text = query.toString();
    return (await this.client.call("GET", "/api/v1/invoices" + (text ? "?" + text : ""))).payload;
  }

  /**
   * A credit note that voids `fiscalNumber` (seed 003 `void(fiscal_number, reason, adjustments)`):
   * in full, or the lines of `adjustments` (`[{code, quantity}]`, `line` when a code appears twice).
   * Never queued, like `refund`: both need the device now to prove what remains of the original;
   * they throw DeviceUnavailable instead, and a retry with the same `idempotencyKey` is safe.
   * Refusals are CreditRefused subclasses (OriginalSettled for a second full void).
   * @param {string} fiscalNumber
   * @param {{reason: string, adjustments?: object[], idempotencyKey?: string}} options
   * @returns {Promise<object>} the credit note's sealed payload
   */
  async void(fiscalNumber, { reason, adjustments, idempotencyKey } = {}) {
    const doc = { reason };
    if (adjustments && adjustments.length) doc.adjustments = adjustments;
    return (await this.client.call("POST", `/api/v1/invoices/${encodeURIComponent(fiscalNumber)}/void`,
      { doc, key: idempotencyKey })).payload;
  }

  /**
   * A refund of `fiscalNumber` (seed 003 `refund(fiscal_number, amount, payment_reference)`): a
   * credit note of the tax-inclusive `amount`, split pro rata of what remains of the original's
   * tax groups (README "Credit notes"). `amount` is sent as a decimal string: give a string
   * ("12.50") or a whole number.
   * @param {string} fiscalNumber
   * @param {{amount: string|number, currency: string, paymentReference?: string, reason?: string,
   *   idempotencyKey?: string}} options
   * @returns {Promise<object>} the credit note's sealed payload
   */
  async refund(fiscalNumber, { amount, currency, paymentReference = "", reason = "", idempotencyKey } = {}) {
    const doc = { amount: String(amount), currency, payment_reference: paymentReference, reason };
    return (await this.client.call("POST", `/api/v1/invoices/${encodeURIComponent(fiscalNumber)}/refund`,
      { doc, key: idempotencyKey })).payload;
  }
}

const FILTERS = { merchantNif: "merchant_nif", outletId: "outlet_id", clientNif: "client.nif", client_nif: "client.nif",
  fiscalNumber: "fiscal_number", dateRange: "date_range", perPage: "per_page" };

/** `client.reports` (seed 003: `POST /api/v1/reports`). */
class Reports {
  constructor(client) {
    this.client = client;
  }

  /**
   * A Z/X/A/audit report.
   * @param {{type: string, outletId: string, period?: string}} options
   * @returns {Promise<object>}
   */
  async generate({ type, outletId, period } = {}) {
    const doc = { type, outlet_id: outletId };
    if (period !== undefined && period !== null) doc.period = period;
    return (await this.client.call("POST", "/api/v1/reports", { doc })).payload;
  }
}

/**
 * `client.taxGroups`: the manifest (code, rate, effective_from), cached until a future
 * `effective_from` falls due, or for a day (seed 003 "caches the 14 tax groups").
 */
class TaxGroups {
  constructor(client) {
    this.client = client;
    this.cached = null;
    this.until = 0;
  }

  /** @returns {Promise<Array<{code: string, name: string, rate: string, rate_ppm: number, effective_from: string}>>} */
  async list() {
    const now = this.client.now();
    if (this.cached === null || now >= this.until) {
      const groups = (await this.client.call("GET", "/api/v1/tax-groups")).payload;
      const future = groups.map((g) => Date.parse(g.effective_from)).filter((t) => t > now);
      this.cached = groups;
      this.until = Math.min(now + TAX_GROUPS_CACHE_MS, ...future);
    }
    return this.cached;
  }

  /**
   * `{code: rate in ppm}` of each group in force at `timestamp` (the latest entry whose
   * `effective_from` is not after it: "the invoice timestamp picks the rate"), for InvoiceBuilder.
   * @param {string} [timestamp] `YYYY-MM-DDTHH:MM:SSZ`; now by default
   * @returns {Promise<Object<string, number>>}
   */
  async rates(timestamp = timeText(this.client.now())) {
    const best = {};
    for (const g of await this.list()) {
      if (g.effective_from <= timestamp && (!best[g.code] || g.effective_from > best[g.code].effective_from)) {
        best[g.code] = g;
      }
    }
    return Object.fromEntries(Object.entries(best).map(([code, g]) => [code, g.rate_ppm]));
  }
}

// ---------------------------------------------------------------------------------------------
// Webhooks: Standard Webhooks 1.0, "Signature scheme" (hostd/books/signing.py).

/** Seconds a webhook-timestamp may be away from the receiver's clock (replays). */
export const WEBHOOK_TOLERANCE = 300;
const encoder = new TextEncoder();

function base64Bytes(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

function bytesOf(body) {
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new InvalidSignature("a webhook body is the raw text or bytes as delivered", { field: "body" });
}

/** The HMAC key of a secret: `whsec_<base64>` decoded, any other secret as its UTF-8 bytes. */
function keyBytes(secret) {
  if (!secret.startsWith("whsec_")) return encoder.encode(secret);
  const text = secret.slice("whsec_".length);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new InvalidSignature("webhook secret whsec_... is not base64", { field: "secret" });
  }
  return base64Bytes(text);
}

/**
 * Check a webhook delivery as Standard Webhooks 1.0 says a receiver must: the signed content is
 * `webhook-id + "." + webhook-timestamp + "." + body`, each `v1,<base64>` in `webhook-signature`
 * (space-separated) is an HMAC-SHA256 of it; one must match (compared by `crypto.subtle.verify`,
 * in constant time), and the time stamp must be within `tolerance` seconds of `now`.
 *
 * @param {string|ArrayBuffer|Uint8Array} body the raw body as delivered (not re-serialised JSON)
 * @param {Headers|Object<string, string>} headers the delivery's headers (any case)
 * @param {string} secret the subscription's secret (`whsec_...`)
 * @param {{now?: number, tolerance?: number}} [options] `now` in seconds (tests), tolerance in seconds
 * @returns {Promise<object>} the event, parsed; throws InvalidSignature naming what is wrong
 */
export async function verifyWebhook(body, headers, secret, { now = Date.now() / 1000, tolerance = WEBHOOK_TOLERANCE } = {}) {
  const get = (name) => (typeof headers?.get === "function" ? headers.get(name)
    : Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1]) ?? null;
  const id = get("webhook-id");
  const stamp = get("webhook-timestamp");
  const signatures = get("webhook-signature");
  if (!id || !stamp || !signatures) {
    throw new InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature", { field: "headers" });
  }
  if (!/^\d+$/.test(stamp)) {
    throw new InvalidSignature("webhook-timestamp is not integer seconds", { field: "webhook-timestamp" });
  }
  if (Math.abs(now - Number(stamp)) > tolerance) {
    throw new InvalidSignature(`webhook-timestamp is more than ${tolerance} s away: a replay, or a clock off`,
      { field: "webhook-timestamp" });
  }
  const raw = bytesOf(body);
  const key = await crypto.subtle.importKey("raw", keyBytes(secret), { name: "HMAC", hash: "SHA-256" }, false,
    ["verify"]);
  const prefix = encoder.encode(`${id}.${stamp}.`);
  const content = new Uint8Array(prefix.length + raw.length);
  content.set(prefix);
  content.set(raw, prefix.length);
  let matched = false;
  for (const given of signatures.split(" ")) {
    const [version, value] = [given.slice(0, 3), given.slice(3)];
    if (version !== "v1," || !/^[A-Za-z0-9+/]+={0,2}$/.test(value) || value.length % 4 !== 0) continue;
    if (await crypto.subtle.verify("HMAC", key, base64Bytes(value), content)) matched = true;
  }
  if (!matched) throw new InvalidSignature("webhook-signature does not match the body", { field: "webhook-signature" });
  try {
    return JSON.parse(new TextDecoder().decode(raw));
  } catch (exc) {
    throw new FiscalError("the signed webhook body is not JSON", { field: "body", cause: exc });
  }
}

/**
 * The signature a sender puts in `webhook-signature` (Standard Webhooks 1.0): for tests and
 * for relaying; a receiver calls verifyWebhook.
 * @returns {Promise<string>} `v1,<base64>`
 */
export async function signWebhook(secret, id, timestamp, body) {
  const key = await crypto.subtle.importKey("raw", keyBytes(secret), { name: "HMAC", hash: "SHA-256" }, false,
    ["sign"]);
  const raw = bytesOf(body);
  const prefix = encoder.encode(`${id}.${timestamp}.`);
  const content = new Uint8Array(prefix.length + raw.length);
  content.set(prefix);
  content.set(raw, prefix.length);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, content));
  return "v1," + btoa(String.fromCharCode(...mac));
}

/** `client.webhooks` (seed 003 `webhooks.verify`; Standard Webhooks headers, not X-BonoPay-Signature). */
class Webhooks {
  /** @see verifyWebhook */
  verify(body, headers, secret, options) {
    return verifyWebhook(body, headers, secret, options);
  }
}

// ---------------------------------------------------------------------------------------------
// The offline queue (seed 003 "Offline Queue & Retry"; hostd/sdk/queue.py).

/** Draft states (seed 003): stored and not yet answered, waiting for the daemon, sealed, refused. */
export const STATES = Object.freeze(["draft", "queued", "fiscalized", "error"]);

/**
 * A draft as stored: `{id, seq, idempotencyKey, body, created, status, attempts, response, error}`;
 * `body` is the invoice's JSON text exactly as first serialised (so a flush resends its original
 * timestamp), `seq` orders drafts oldest first.
 * @typedef {{id: string, seq: number, idempotencyKey: string, body: string, created: number,
 *   status: string, attempts: number, response?: object, error?: object}} Draft
 */

/**
 * Storage driver in memory (lost with the page): the default where IndexedDB is missing, and the
 * shape every driver has: `save(draft)`, `list(status?)` oldest first, `delete(id)`,
 * `mark(id, status, fields)`; each may return a promise.
 */
export class MemoryStorage {
  constructor() {
    this.drafts = new Map();
  }

  save(draft) {
    if (this.drafts.has(draft.id)) throw new OfflineQueueCorrupt(`draft ${draft.id} is already stored`);
    this.drafts.set(draft.id, { ...draft });
  }

  list(status) {
    return [...this.drafts.values()].filter((d) => status === undefined || d.status === status)
      .sort((a, b) => a.seq - b.seq).map((d) => ({ ...d }));
  }

  delete(id) {
    this.drafts.delete(id);
  }

  mark(id, status, fields = {}) {
    const draft = this.drafts.get(id);
    if (draft === undefined) throw new OfflineQueueCorrupt(`draft ${id} is not stored`);
    this.drafts.set(id, { ...draft, ...fields, status });
  }
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * Storage driver in IndexedDB (seed 003: "Browser builds use IndexedDB"): one object store of
 * drafts keyed by id, indexed by seq. Writes ask for `durability: "strict"`, so a draft the POS was
 * told is queued is on disk, not only in a cache.
 */
export class IndexedDBStorage {
  /** @param {{name?: string, indexedDB?: IDBFactory}} [options] */
  constructor({ name = "fiscal-sdk-queue", indexedDB = globalThis.indexedDB } = {}) {
    if (!indexedDB) throw new InvalidRequest("no indexedDB here: use MemoryStorage or your own driver",
      { field: "indexedDB" });
    this.name = name;
    this.factory = indexedDB;
    this.opened = null;
  }

  db() {
    if (this.opened === null) {
      const req = this.factory.open(this.name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore("drafts", { keyPath: "id" })
        .createIndex("seq", "seq", { unique: true });
      this.opened = request(req);
    }
    return this.opened;
  }

  async run(mode, work) {
    const db = await this.db();
    const tx = db.transaction("drafts", mode, { durability: "strict" });
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(tx.error);
      tx.onerror = () => reject(tx.error);
    });
    // Both settle before this returns, and a failure of either is the one thrown.
    const [result] = await Promise.all([(async () => work(tx.objectStore("drafts")))(), done]);
    return result;
  }

  save(draft) {
    return this.run("readwrite", (store) => request(store.add(draft)));
  }

  async list(status) {
    const all = await this.run("readonly", (store) => request(store.index("seq").getAll()));
    return status === undefined ? all : all.filter((d) => d.status === status);
  }

  delete(id) {
    return this.run("readwrite", (store) => request(store.delete(id)));
  }

  mark(id, status, fields = {}) {
    return this.run("readwrite", async (store) => {
      const draft = await request(store.get(id));
      if (draft === undefined) throw new OfflineQueueCorrupt(`draft ${id} is not stored`);
      return request(store.put({ ...draft, ...fields, status }));
    });
  }
}

/** IndexedDBStorage where the runtime has IndexedDB (browsers), MemoryStorage elsewhere. */
export function defaultStorage() {
  return globalThis.indexedDB ? new IndexedDBStorage() : new MemoryStorage();
}

function randomKey(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function checkDraft(d) {
  if (d === null || typeof d !== "object") return "not an object";
  if (typeof d.id !== "string" || !d.id) return "no id";
  if (typeof d.idempotencyKey !== "string" || !d.idempotencyKey) return "no idempotencyKey";
  if (!Number.isFinite(d.seq)) return "no seq";
  if (!STATES.includes(d.status)) return `unknown status ${JSON.stringify(d.status)}`;
  if (typeof d.body !== "string") return "no body";
  try {
    JSON.parse(d.body);
  } catch {
    return "a body that is not JSON";
  }
  return null;
}

/**
 * The offline queue: invoices the daemon could not take are kept here and sent later, oldest
 * first, each with its original body and Idempotency-Key, so a flush interrupted anywhere (a tab
 * closed, a crash) and run again seals nothing twice: the daemon answers a repeated key with its
 * first answer.
 *
 * Retry (seed 003): a flush sends a draft, and after a retryable failure (DeviceUnavailable,
 * RateLimited) waits 100 ms, 5 s, 20 s before each of at most 3 retries, or the daemon's
 * Retry-After when that is longer. A draft still not taken stops the flush (the order is kept)
 * and `onQueued` says so; a draft refused for good is marked `error`, `onError` is called, and
 * the flush goes on.
 */
export class OfflineQueue {
  /**
   * @param {object} [options]
   * @param {object} [options.storage] a driver (`save`, `list`, `delete`, `mark`); IndexedDB or memory
   * @param {number[]} [options.delays] ms before each retry (RETRY_DELAYS)
   * @param {(ms: number) => Promise<void>} [options.sleep] how to wait (a test records instead)
   * @param {(draft: Draft, error: FiscalError) => void} [options.onQueued] a draft waits for the daemon
   * @param {(draft: Draft, sealed: object) => void} [options.onFiscalized] a draft was sealed
   * @param {(draft: Draft, error: FiscalError) => void} [options.onError] a draft was refused for good
   */
  constructor({ storage = defaultStorage(), delays = RETRY_DELAYS, sleep = (ms) => new Promise((r) => setTimeout(r, ms)),
    onQueued, onFiscalized, onError } = {}) {
    this.storage = storage;
    this.delays = [...delays];
    this.sleep = sleep;
    this.hooks = { queued: onQueued, fiscalized: onFiscalized, error: onError };
    this.client = null;
    this.lastSeq = null;
    this.flushing = null;
  }

  /** Called by `new Client({queue})`: the client the queue sends through. */
  attach(client) {
    this.client = client;
  }

  hook(name, ...args) {
    if (typeof this.hooks[name] === "function") this.hooks[name](...args);
  }

  /**
   * One storage call. A driver's own failure (quota, a closed database, I/O) becomes
   * OfflineQueueCorrupt with it as `cause`: the queue can no longer be trusted to hold what the
   * POS was told it holds, and every error of this SDK is a FiscalError.
   */
  async store(what, call) {
    try {
      return await call();
    } catch (exc) {
      if (exc instanceof FiscalError) throw exc;
      throw new OfflineQueueCorrupt(`the offline queue's storage failed to ${what}: ${exc?.message ?? exc}`,
        { cause: exc });
    }
  }

  /**
   * Every stored draft, oldest first, checked: storage that returns anything that is not a
   * well-formed draft raises OfflineQueueCorrupt with what it returned (`exported`).
   * @param {string} [status]
   * @returns {Promise<Draft[]>}
   */
  async drafts(status) {
    const rows = await this.store("read the drafts", () => this.storage.list(status));
    if (!Array.isArray(rows)) {
      throw new OfflineQueueCorrupt("the offline queue's storage did not return a list", { exported: [rows] });
    }
    for (const row of rows) {
      const wrong = checkDraft(row);
      if (wrong !== null) {
        throw new OfflineQueueCorrupt(`the offline queue holds a damaged draft (${wrong}): export it, then reset`,
          { exported: rows });
      }
    }
    return rows;
  }

  /** Drafts still to send (`draft`, `queued`), oldest first. @returns {Promise<Draft[]>} */
  async pending() {
    return (await this.drafts()).filter((d) => d.status === "draft" || d.status === "queued");
  }

  /**
   * Store an invoice body as a draft before anything is sent.
   * @param {string} body the invoice JSON text
   * @param {string} [idempotencyKey] a fresh random key when none is given
   * @returns {Promise<Draft>}
   */
  async add(body, idempotencyKey) {
    if (this.lastSeq === null) {
      this.lastSeq = Math.max(0, ...(await this.drafts()).map((d) => d.seq));
    }
    const now = Date.now();
    this.lastSeq = Math.max(this.lastSeq + 1, now);   // oldest first, even within a millisecond
    const draft = { id: randomKey("draft-"), seq: this.lastSeq, idempotencyKey: idempotencyKey ?? randomKey("sdk-"),
      body, created: now, status: "draft", attempts: 0 };
    await this.store("save a draft", () => this.storage.save(draft));
    return draft;
  }

  /**
   * Send one draft, up to `attempts` times: the sealed payload, or null if it stays queued.
   * Throws (after marking it `error` and calling onError) when the daemon refuses it for good.
   * @param {Draft} draft
   * @param {number} attempts
   * @returns {Promise<?object>}
   */
  async send(draft, attempts) {
    if (this.client === null) throw new InvalidRequest("this queue has no client: new Client({queue})");
    let tried = draft.attempts ?? 0;
    let last = null;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) {
        const delay = this.delays[Math.min(attempt - 1, this.delays.length - 1)];
        await this.sleep(Math.max(delay, (last.retryAfter ?? 0) * 1000));
      }
      let answer;
      try {
        tried += 1;
        answer = await this.client.call("POST", "/api/v1/invoices", { body: draft.body, key: draft.idempotencyKey });
      } catch (exc) {
        if (exc instanceof DeviceUnavailable || exc instanceof RateLimited) {
          last = exc;
          await this.store("mark a draft", () => this.storage.mark(draft.id, "queued",
            { attempts: tried, error: { code: exc.code, detail: exc.detail } }));
          continue;
        }
        const envelope = exc instanceof FiscalError ? exc.envelope : {};
        await this.store("mark a draft", () => this.storage.mark(draft.id, "error", { attempts: tried,
          error: Object.keys(envelope).length ? envelope : { code: exc?.code ?? "SDK_ERROR", detail: String(exc?.message ?? exc) } }));
        this.hook("error", draft, exc);
        throw exc;
      }
      await this.store("mark a draft", () => this.storage.mark(draft.id, "fiscalized",
        { attempts: tried, response: answer.payload }));
      this.hook("fiscalized", draft, answer.payload);
      return answer.payload;
    }
    this.hook("queued", draft, last);
    return null;
  }

  /**
   * Send every pending draft, oldest first (one flush at a time: a second call while one runs
   * gets the same promise). Stops at the first draft the daemon still cannot take, so the order of
   * fiscal numbers is the order of sales.
   * @returns {Promise<{fiscalized: number, error: number, queued: number}>}
   */
  flush() {
    if (this.flushing === null) {
      this.flushing = this.flushOnce().finally(() => { this.flushing = null; });
    }
    return this.flushing;
  }

  async flushOnce() {
    const done = { fiscalized: 0, error: 0, queued: 0 };
    const pending = await this.pending();
    for (let i = 0; i < pending.length; i++) {
      let sealed;
      try {
        sealed = await this.send(pending[i], 1 + this.delays.length);
      } catch (exc) {
        if (!(exc instanceof FiscalError)) throw exc;
        done.error += 1;   // marked `error`, reported through onError; the next draft goes on
        continue;
      }
      if (sealed === null) {
        done.queued = pending.length - i;
        break;
      }
      done.fiscalized += 1;
    }
    return done;
  }

  /** Delete every draft (after OfflineQueueCorrupt, once `exported` was saved). */
  async reset() {
    const rows = await this.store("read the drafts", () => this.storage.list());
    for (const row of Array.isArray(rows) ? rows : []) {
      if (row && typeof row.id === "string") await this.store("delete a draft", () => this.storage.delete(row.id));
    }
    this.lastSeq = null;
  }
}

// ---------------------------------------------------------------------------------------------
// Invoice builder (hostd/sdk/builders.py, net prices): the canonical order and exact totals.

const QTY = 1000n;        // quantities in thousandths (README "Invoices")
const PPM = 1000000n;     // rates in parts per million
const DIGITS = { CDF: 2, USD: 2 };
const CLASSES = ["Individual", "Company", "CommercialIndividual", "Professional", "Embassy"];

/** `YYYY-MM-DDTHH:MM:SSZ` of a time in ms: the invoice timestamp's format. */
export function timeText(ms) {
  return new Date(ms).toISOString().slice(0, 19) + "Z";
}

/** round_half_up(n / d) for non-negative BigInts: protocol/invoice.py's rule. */
function roundHalfUp(n, d) {
  return (2n * n + d) / (2n * d);
}

/** An exact non-negative amount as an integer number of 10^-digits units, or InvalidPayload. */
function scaled(value, digits, field, unit) {
  let text = value;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidPayload(`${field} must be a whole number or a decimal string ("12.50"), got ${value}`, { field });
    }
    text = String(value);
  }
  if (typeof text !== "string" || !/^[0-9]{1,16}(\.[0-9]{1,40})?$/.test(text)) {
    throw new InvalidPayload(`${field} must be a non-negative decimal string, got ${JSON.stringify(value)}`, { field });
  }
  const [whole, fraction = ""] = text.split(".");
  if (/[^0]/.test(fraction.slice(digits))) {
    throw new InvalidPayload(`${field}=${text} is not exact in ${unit}`, { field });
  }
  return BigInt(whole) * 10n ** BigInt(digits) + BigInt(fraction.slice(0, digits).padEnd(digits, "0") || "0");
}

function decimalText(n, digits, trim) {
  const scale = 10n ** BigInt(digits);
  const whole = (n / scale).toString();
  let part = (n % scale).toString().padStart(digits, "0");
  if (trim) part = part.replace(/0+$/, "");
  return part ? `${whole}.${part}` : whole;
}

/**
 * Builds a canonical invoice (README "Invoices"): the 11 fields in the mandated order, each tax
 * group's base and tax and the totals computed with the device's own rule
 * (`base = round_half_up(sum(quantity x unit_price))`, `tax = round_half_up(base x rate)`, on
 * integers), so a POS never hand-computes a total. Prices are net of tax; line discounts and
 * tax-inclusive prices are the Python builder's (hostd/sdk/builders.py), not this one's.
 *
 * @example
 * const rates = await client.taxGroups.rates();
 * const sale = new InvoiceBuilder({merchantNif: "308123456", outletId: "outlet-kin001",
 *   posTerminalId: "web-01", cashierId: "cashier-13", rates})
 *   .client("Acme Ltd", "123456789", "Company")
 *   .item({code: "CONS-001", quantity: 2, unitPrice: "500.00", taxGroup: "TG03", description: "Consulting hours"})
 *   .pay("mobile_money", {instrumentId: "AIRTEL-001"});
 */
export class InvoiceBuilder {
  /**
   * @param {object} fields
   * @param {string} fields.merchantNif
   * @param {string} fields.outletId
   * @param {string} fields.posTerminalId
   * @param {string} fields.cashierId
   * @param {Object<string, number>} fields.rates `{code: rate ppm}` in force (`client.taxGroups.rates()`)
   * @param {string} [fields.currency] CDF or USD
   * @param {string} [fields.invoiceType] sale, advance, credit_note, export, export_credit
   * @param {string} [fields.timestamp] `YYYY-MM-DDTHH:MM:SSZ`; now by default
   */
  constructor({ merchantNif, outletId, posTerminalId, cashierId, rates, currency = "CDF", invoiceType = "sale",
    timestamp = timeText(Date.now()) } = {}) {
    if (!(currency in DIGITS)) {
      throw new InvalidPayload(`currency must be one of ${Object.keys(DIGITS).join(", ")}`, { field: "totals.currency" });
    }
    if (rates === null || typeof rates !== "object") {
      throw new InvalidPayload("InvoiceBuilder needs rates: await client.taxGroups.rates()", { field: "tax_groups" });
    }
    this.fields = { merchant_nif: merchantNif, outlet_id: outletId, pos_terminal_id: posTerminalId,
      cashier_id: cashierId, invoice_type: invoiceType, timestamp };
    this.currency = currency;
    this.digits = DIGITS[currency];
    this.rates = rates;
    this.party = { name: "", nif: "", classification: "Individual" };
    this.lines = [];
    this.payments = [];
  }

  /** The client (seed: `client.classification`). @returns {InvoiceBuilder} */
  client(name = "", nif = "", classification = "Individual") {
    if (!CLASSES.includes(classification)) {
      throw new InvalidPayload(`client.classification must be one of ${CLASSES.join(", ")}`,
        { field: "client.classification" });
    }
    this.party = { name, nif, classification };
    return this;
  }

  /**
   * A line at a net unit price (a decimal string such as "500.00", or a whole number of units).
   * @param {{code: string, quantity: string|number, unitPrice: string|number, taxGroup: string,
   *   description?: string, taxableUnit?: string}} line
   * @returns {InvoiceBuilder}
   */
  item({ code, quantity, unitPrice, taxGroup, description = "", taxableUnit = "" }) {
    const where = `items[${this.lines.length}]`;
    const q = scaled(quantity, 3, where + ".quantity", "thousandths");
    if (q === 0n) throw new InvalidPayload(`${where}.quantity must be greater than 0`, { field: where + ".quantity" });
    if (!(taxGroup in this.rates)) {
      throw new InvalidPayload(`${where}.tax_group ${taxGroup} is not in force`, { field: where + ".tax_group" });
    }
    this.lines.push({ code, description, quantity: q, unitPrice: scaled(unitPrice, this.digits, where + ".unit_price",
      "the currency's minor unit"), taxGroup, taxableUnit });
    return this;
  }

  /**
   * A payment; without `amount` it pays what is left of the total.
   * @param {string} method
   * @param {{amount?: string|number, instrumentId?: string}} [options]
   * @returns {InvoiceBuilder}
   */
  pay(method, { amount, instrumentId = "" } = {}) {
    this.payments.push({ method, instrumentId,
      amount: amount === undefined ? null : scaled(amount, this.digits, "payments.amount", "the currency's minor unit") });
    return this;
  }

  /**
   * Per-group `{code, rate, base, tax}` and the totals, in minor units (BigInt).
   * @returns {{groups: Array<{code: string, rate: bigint, base: bigint, tax: bigint}>,
   *   subtotal: bigint, totalVat: bigint, total: bigint}}
   */
  totals() {
    const sums = new Map();
    for (const line of this.lines) sums.set(line.taxGroup, (sums.get(line.taxGroup) ?? 0n) + line.quantity * line.unitPrice);
    const groups = [...sums.keys()].sort().map((code) => {
      const rate = BigInt(this.rates[code]);
      const base = roundHalfUp(sums.get(code), QTY);
      return { code, rate, base, tax: roundHalfUp(base * rate, PPM) };
    });
    const subtotal = groups.reduce((s, g) => s + g.base, 0n);
    const totalVat = groups.reduce((s, g) => s + g.tax, 0n);
    return { groups, subtotal, totalVat, total: subtotal + totalVat };
  }

  /** The canonical JSON document, ready for `client.invoices.create`. @returns {object} */
  build() {
    if (!this.lines.length) throw new InvalidPayload("an invoice needs at least one item", { field: "items" });
    const { groups, subtotal, totalVat, total } = this.totals();
    const money = (n) => decimalText(n, this.digits, false);
    let paid = 0n;
    const payments = (this.payments.length ? this.payments : [{ method: "cash", instrumentId: "", amount: null }])
      .map((p) => {
        const amount = p.amount === null ? total - paid : p.amount;
        paid += amount;
        return { method: p.method, amount: money(amount), instrument_id: p.instrumentId, currency: this.currency };
      });
    return {
      ...this.fields,
      client: { ...this.party },
      items: this.lines.map((l) => ({ code: l.code, description: l.description, quantity: decimalText(l.quantity, 3, true),
        unit_price: money(l.unitPrice), tax_group: l.taxGroup, taxable_unit: l.taxableUnit })),
      tax_groups: groups.map((g) => ({ code: g.code, name: "", rate: decimalText(g.rate, 6, true),
        base_amount: money(g.base), tax_amount: money(g.tax) })),
      totals: { subtotal: money(subtotal), total_vat: money(totalVat), total: money(total), currency: this.currency },
      payments,
    };
  }
}
