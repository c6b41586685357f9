// The API client: Bearer key from sessionStorage, JSON errors, and the SSE stream over fetch().

const KEY = 'ioc.apiKey';
const BASE = '/api/v1';

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(typeof detail === 'string' ? detail : (detail?.message ?? code));
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

function headers(extra = {}) {
  const out = { Accept: 'application/json', ...extra };
  if (session.key) out.Authorization = `Bearer ${session.key}`;
  return out;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

export async function api(path, { method = 'GET', body } = {}) {
  const init = { method, cache: 'no-store', headers: headers() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(BASE + path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data?.error ?? 'http_error', data?.detail ?? res.statusText);
  return data;
}

/**
 * Parse a text/event-stream body (the WHATWG rules for id, data, retry and comments).
 * Calls onChunk for every chunk read (keepalives included) and onEvent({id, data}).
 */
async function readEventStream(body, { onChunk, onEvent, onRetry }) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let data = [];
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onChunk();
    buffer += value;
    const lines = buffer.split('\n');
    buffer = lines.pop();
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '') {
        if (data.length) onEvent({ id, data: data.join('\n') });
        data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'data') data.push(val);
      else if (field === 'id' && !val.includes('\0')) id = val;
      else if (field === 'retry' && /^\d+$/.test(val)) onRetry(Number(val));
    }
  }
}

const STALL_MS = 40_000; // the server sends a keepalive every 15 s
const MAX_DELAY_MS = 10_000;

/**
 * The live alert stream. EventSource cannot send an Authorization header, so this reads the
 * stream with fetch() and does what EventSource does: remembers the last event id, reconnects
 * with backoff and resumes with Last-Event-ID, so that the server replays exactly the changes
 * missed meanwhile. A stream silent for longer than two keepalives counts as dropped.
 * Emits "status" ({state: connecting|live|reconnecting, since, retryAt}), "open" (the server
 * has subscribed this client), "alert" (the alert JSON with its change) and "denied".
 */
export class LiveStream extends EventTarget {
  constructor(path = '/alerts/stream') {
    super();
    this.path = path;
    this.lastEventId = null;
    this.retryMs = 2000;
    this.since = null;
    this.stopped = true;
    this.controller = null;
    this.wake = null;
    // The browser knows first when the network goes: drop the stream then, not after a stall.
    window.addEventListener('offline', () => this.controller?.abort());
    window.addEventListener('online', () => this.wake?.());
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.run();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
    this.wake?.();
  }

  status(state, extra = {}) {
    this.dispatchEvent(new CustomEvent('status', { detail: { state, since: this.since, ...extra } }));
  }

  async run() {
    let failures = 0;
    this.status('connecting');
    while (!this.stopped) {
      if (await this.connect()) failures = 0;
      if (this.stopped) return;
      this.since ??= new Date();
      const delay = Math.min(this.retryMs * 1.5 ** failures, MAX_DELAY_MS) * (0.8 + 0.4 * Math.random());
      failures += 1;
      this.status('reconnecting', { retryAt: Date.now() + delay });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.wake = () => { clearTimeout(timer); resolve(); };
      });
      this.wake = null;
      if (!this.stopped) this.status('reconnecting', { retryAt: null });
    }
  }

  /** One connection, until it ends; true when the server had accepted it. */
  async connect() {
    const controller = (this.controller = new AbortController());
    let opened = false;
    let stall;
    const arm = () => {
      clearTimeout(stall);
      stall = setTimeout(() => controller.abort(), STALL_MS);
    };
    try {
      arm();
      const extra = { Accept: 'text/event-stream' };
      if (this.lastEventId != null) extra['Last-Event-ID'] = this.lastEventId;
      const res = await fetch(BASE + this.path, {
        headers: headers(extra), signal: controller.signal, cache: 'no-store',
      });
      if (res.status === 401 || res.status === 403) {
        this.stopped = true;
        this.dispatchEvent(new CustomEvent('denied', { detail: res.status }));
        return false;
      }
      if (!res.ok || !res.body) return false;
      await readEventStream(res.body, {
        onChunk: () => {
          arm();
          if (opened) return;
          opened = true;
          this.since = null;
          this.status('live');
          this.dispatchEvent(new Event('open'));
        },
        onRetry: (ms) => { this.retryMs = ms; },
        onEvent: ({ id, data }) => {
          if (id != null) this.lastEventId = id;
          this.dispatchEvent(new CustomEvent('alert', { detail: JSON.parse(data) }));
        },
      });
    } catch (err) {
      if (err.name !== 'AbortError') console.warn('alert stream:', err);
    } finally {
      clearTimeout(stall);
    }
    return opened;
  }
}
