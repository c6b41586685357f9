// What the page knows: alerts (merged from snapshots and the live stream), devices and rules.

import { api, LiveStream, query } from './api.js';

export const DISTRICTS = [
  'Vị Thanh', 'Ngã Bảy', 'Long Mỹ', 'Huyện Long Mỹ', 'Vị Thủy', 'Châu Thành', 'Châu Thành A',
  'Phụng Hiệp',
];
export const SEVERITIES = ['critical', 'warning', 'info'];
export const NO_DISTRICT = '';

const STATE_RANK = { firing: 0, acknowledged: 1, resolved: 2 };
const KEEP_RESOLVED = 500;
const OPEN_MAX = 20_000;
const DEVICES_REFRESH_MS = 30_000;

export const isOpen = (alert) => alert.state !== 'resolved';

/**
 * Orders two versions of one alert. An alert's state only moves forward (firing →
 * acknowledged → resolved) and its count and last_seen_at only grow, so whichever copy
 * arrives last — from a snapshot, the live stream or a replay after reconnecting — the
 * page keeps the newest one.
 */
function compareVersions(a, b) {
  return (STATE_RANK[a.state] - STATE_RANK[b.state]) || (a.count - b.count)
    || (Date.parse(a.last_seen_at) - Date.parse(b.last_seen_at));
}

const startedMsOf = new WeakMap();

/**
 * When ``alert`` started, in ms, parsed once per alert object (a version never changes): in a
 * storm every render sorts and groups thousands of alerts by it.
 */
export function startedMs(alert) {
  let ms = startedMsOf.get(alert);
  if (ms === undefined) {
    ms = Date.parse(alert.started_at);
    startedMsOf.set(alert, ms);
  }
  return ms;
}

/** Newest first: by start time, then id. */
function byNewest(a, b) {
  return startedMs(b) - startedMs(a) || b.id - a.id;
}

/**
 * Alerts by id. Emits "change" ({alert, fresh}) for every new or newer alert — ``fresh`` when
 * it was first seen after the initial load — and "loaded" after each snapshot.
 */
export class AlertStore extends EventTarget {
  constructor() {
    super();
    this.byId = new Map();
    this.loaded = false;
    this.error = null;
    this.stream = new LiveStream();
    this.stream.addEventListener('open', () => this.load());
    // A correction from late data may move an alert back (reopen it, start it earlier): it
    // replaces the alert whatever its state.
    this.stream.addEventListener('alert', (e) => this.put(e.detail, e.detail.change === 'corrected'));
  }

  start() {
    this.stream.start();
  }

  stop() {
    this.stream.stop();
  }

  put(alert, replace = false) {
    const current = this.byId.get(alert.id);
    if (current && !replace && compareVersions(alert, current) <= 0) return;
    this.byId.set(alert.id, alert);
    this.dispatchEvent(new CustomEvent('change', { detail: { alert, fresh: !current && this.loaded } }));
  }

  /**
   * Open alerts and the latest ones, fetched each time the stream (re)opens: the server has
   * subscribed us by then, so together with the stream nothing is missed.
   */
  async load() {
    try {
      const [open, recent] = await Promise.all([
        this.openAlerts(),
        api(`/alerts${query({ limit: 200 })}`),
      ]);
      for (const alert of [...open.items, ...recent.items]) this.put(alert);
      if (open.complete) await this.recheck(new Set(open.items.map((a) => a.id)));
      this.loaded = true;
      this.error = null;
      this.prune();
    } catch (err) {
      this.error = err;
    }
    this.dispatchEvent(new Event('loaded'));
  }

  /** The open alerts, page by page, up to ``OPEN_MAX`` (a storm has thousands). */
  async openAlerts() {
    const items = [];
    let cursor = null;
    do {
      const page = await api(`/alerts${query({ state: 'open', limit: 1000, cursor })}`);
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && items.length < OPEN_MAX);
    return { items, complete: !cursor };
  }

  /**
   * Alerts this page holds as open that the server no longer lists as open were resolved
   * while the stream was down (a stream with no event id yet cannot replay): fetch them.
   */
  async recheck(openIds) {
    const stale = [...this.byId.values()].filter((a) => isOpen(a) && !openIds.has(a.id));
    await Promise.all(stale.map((a) => api(`/alerts/${a.id}`).then((fresh) => this.put(fresh), (err) => {
      if (err.status !== 404) throw err;
      this.byId.delete(a.id);
    })));
  }

  async loadDevice(deviceId) {
    const page = await api(`/alerts${query({ device_id: deviceId, limit: 50 })}`);
    for (const alert of page.items) this.put(alert);
  }

  prune() {
    const resolved = [...this.byId.values()].filter((a) => !isOpen(a)).sort(byNewest);
    for (const alert of resolved.slice(KEEP_RESOLVED)) this.byId.delete(alert.id);
  }

  list(filter = () => true) {
    return [...this.byId.values()].filter(filter).sort(byNewest);
  }
}

/** Devices with their online state and last values, refreshed every 30 s. */
export class DeviceStore extends EventTarget {
  constructor() {
    super();
    this.byId = new Map();
    this.timer = null;
  }

  start() {
    this.refresh();
    this.timer = setInterval(() => this.refresh(), DEVICES_REFRESH_MS);
  }

  stop() {
    clearInterval(this.timer);
  }

  async refresh() {
    try {
      const page = await api(`/devices${query({ limit: 10000 })}`);
      this.byId = new Map(page.items.map((d) => [d.id, d]));
      this.dispatchEvent(new Event('change'));
    } catch (err) {
      console.warn('devices:', err);
    }
  }

  name(deviceId) {
    return this.byId.get(deviceId)?.name ?? deviceId;
  }
}

/** The rules (for threshold lines); none when they cannot be read. */
export async function loadRules() {
  try {
    return (await api('/rules')).items.map((r) => r.definition ?? r);
  } catch (err) {
    console.warn('rules:', err);
    return [];
  }
}

/** Does ``rule`` watch ``device`` for ``kind``? (where: district/districts/device_ids/tags). */
export function ruleApplies(rule, device, kind) {
  if (rule.kind !== kind || rule.enabled === false) return false;
  const where = rule.where ?? {};
  const districts = where.districts ?? (where.district ? [where.district] : null);
  if (districts && !districts.includes(device.district)) return false;
  if (where.device_ids && !where.device_ids.includes(device.id)) return false;
  if (where.tags && !where.tags.some((tag) => device.tags.includes(tag))) return false;
  return true;
}

/** The districts shown: the key's own, or the province's and any others seen. */
export function districtsFor(me, devices, alerts) {
  if (me.districts) return me.districts;
  const seen = new Set(DISTRICTS);
  for (const d of devices.byId.values()) seen.add(d.district ?? NO_DISTRICT);
  for (const a of alerts.byId.values()) seen.add(a.district ?? NO_DISTRICT);
  return [...seen];
}
