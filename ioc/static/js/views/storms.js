// Storms: many alerts of one rule in one district, one after another, shown as one row that
// says how many devices, the worst value and the span, opens to its devices and is
// acknowledged as a whole. In a flood the feed stays readable and the operator acts once.

import { api } from '../api.js';
import { h, icon, timeEl } from '../dom.js';
import { formatTime, formatValue, getLang, t } from '../i18n.js';
import { startedMs } from '../store.js';
import { alertRow, confirmWithNote, reconcile, renderAlertList, severityBadge } from './alerts.js';

/** Fewer alerts than this stay rows of their own: two gauges on one river are not a storm. */
export const STORM_MIN = 5;
const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
const ACK_CHUNK = 20_000; // the most ids POST /alerts/acknowledge takes at once

const MEMBERS_FIRST = 10; // rows of a storm shown in the click that opens it (a screenful)
const MEMBERS_STEP = 25; // rows added per task after it

const shownMembers = new Map(); // key of a storm the operator opened -> how many rows it shows
const shownStorm = new WeakMap(); // row -> the storm it shows now

/** Does ``rule`` fire below a value (so that its worst reading is the lowest)? */
function firesBelow(rule) {
  return typeof rule?.when?.op === 'string' && rule.when.op.startsWith('<');
}

function makeStorm(run, rule) {
  const below = firesBelow(rule);
  let worst = null;
  let severity = run[0].severity;
  let last = run[0].last_seen_at;
  const counts = { firing: 0, acknowledged: 0, resolved: 0 };
  for (const a of run) {
    counts[a.state] += 1;
    if (SEVERITY_RANK[a.severity] < SEVERITY_RANK[severity]) severity = a.severity;
    if (Date.parse(a.last_seen_at) > Date.parse(last)) last = a.last_seen_at;
    if (a.value != null && (worst === null || (below ? a.value < worst.value : a.value > worst.value))) worst = a;
  }
  return {
    storm: true,
    key: `${run[0].rule_id}|${run[0].district ?? ''}|${run[0].id}`,
    rule_id: run[0].rule_id,
    district: run[0].district,
    kind: run[0].kind,
    severity,
    alerts: run.slice().reverse(), // newest first, like the feed
    devices: new Set(run.map((a) => a.device_id)).size,
    counts,
    worst,
    first: run[0].started_at,
    last,
  };
}

/**
 * ``alerts`` (newest first) with every storm — ``STORM_MIN`` or more alerts of one rule and
 * district, each starting within ``windowMs`` of the one before — replaced by one entry, at
 * the place of its newest alert. A window of 0 groups nothing.
 */
export function groupStorms(alerts, windowMs, rules = []) {
  if (!(windowMs > 0)) return alerts;
  const byKey = new Map();
  for (const a of alerts) {
    const k = `${a.rule_id}\u0000${a.district ?? ''}`;
    if (!byKey.has(k)) byKey.set(k, []);
    byKey.get(k).push(a);
  }
  const ruleById = new Map(rules.map((r) => [r.id, r]));
  const stormOf = new Map();
  for (const same of byKey.values()) {
    if (same.length < STORM_MIN) continue;
    const oldestFirst = same.slice().sort((a, b) => startedMs(a) - startedMs(b) || a.id - b.id);
    let run = [];
    const close = () => {
      if (run.length >= STORM_MIN) {
        const storm = makeStorm(run, ruleById.get(run[0].rule_id));
        for (const a of run) stormOf.set(a, storm);
      }
      run = [];
    };
    let previous = null;
    for (const a of oldestFirst) {
      const at = startedMs(a);
      if (previous !== null && at - previous > windowMs) close();
      run.push(a);
      previous = at;
    }
    close();
  }
  if (!stormOf.size) return alerts;
  const out = [];
  const placed = new Set();
  for (const a of alerts) {
    const storm = stormOf.get(a);
    if (!storm) out.push(a);
    else if (!placed.has(storm)) {
      placed.add(storm);
      out.push(storm);
    }
  }
  return out;
}

function stormState(storm) {
  if (storm.counts.firing) return 'firing';
  return storm.counts.acknowledged ? 'acknowledged' : 'resolved';
}

function chips(storm) {
  return ['firing', 'acknowledged', 'resolved'].filter((s) => storm.counts[s]).map((s) =>
    h('span', { class: `state-chip state-${s}`, dataset: { state: s } }, t(`storm.${s}`, { n: storm.counts[s] })));
}

function ackGroup(storm, ctx) {
  const ids = storm.alerts.filter((a) => a.state === 'firing').map((a) => a.id);
  confirmWithNote({
    title: t('storm.ackTitle'),
    message: [severityBadge(storm.severity), ' ', t('storm.ackMessage', {
      n: ids.length, rule: storm.rule_id, district: storm.district || t('alert.noDistrict'),
    })],
    confirmLabel: t('storm.ackConfirm', { n: ids.length }),
    action: 'ack',
    send: async (note) => {
      let done = 0;
      let skipped = 0;
      for (let i = 0; i < ids.length; i += ACK_CHUNK) {
        const body = { ids: ids.slice(i, i + ACK_CHUNK), ...(note ? { note } : {}) };
        const out = await api('/alerts/acknowledge', { method: 'POST', body });
        done += out.acknowledged.length;
        skipped += out.not_firing.length + out.not_found.length;
      }
      // The changed alerts arrive on the live feed; say now what happened.
      document.getElementById('announcer').textContent = [t('storm.ackDone', { n: done }),
        skipped ? t('storm.ackSkipped', { n: skipped }) : ''].filter(Boolean).join(' · ');
    },
    explain: (err) => t('action.failed', { detail: err.message }),
  });
}

function stormHead(storm, ctx, { wall }) {
  const district = storm.district || t('alert.noDistrict');
  const sample = storm.worst ?? storm.alerts[0];
  const canAck = !wall && ctx.canAct && storm.counts.firing > 0;
  return [
    h('div', { class: 'alert-sev' }, icon(storm.severity, 'sev-icon'),
      h('span', { class: 'sev-label' }, t(`sev.${storm.severity}`))),
    h('div', { class: 'alert-main' },
      h('p', { class: 'alert-msg' }, t('storm.title', { n: storm.devices })),
      h('p', { class: 'alert-meta' },
        h('span', { class: 'district-tag' }, district),
        wall ? null : h('span', { class: 'mono muted rule-id' }, storm.rule_id),
        storm.worst ? h('span', {}, t('storm.worst'), ' ',
          h('span', { class: 'value' }, formatValue(storm.kind, storm.worst.value))) : null),
      wall ? null : h('p', { class: 'storm-sample muted' }, sample.message),
      h('p', { class: 'alert-times' },
        h('span', {}, t('storm.first'), ' ', h('span', { class: 'abs' }, formatTime(storm.first))),
        h('span', {}, t('storm.last'), ' ', timeEl(storm.last)))),
    h('div', { class: 'alert-side' },
      h('div', { class: 'storm-chips' }, chips(storm)),
      wall ? null : h('div', { class: 'actions' },
        h('button', {
          type: 'button', class: 'btn ghost expand',
          onclick: (e) => toggle(e.currentTarget.closest('li'), ctx),
        }),
        canAck ? h('button', { type: 'button', class: 'btn ack-group', onclick: () => ackGroup(storm, ctx) },
          t('storm.ack', { n: storm.counts.firing })) : null)),
  ];
}

/**
 * Open or close a storm row at once (not at the next render): the operator clicked it. Its
 * first rows come at once, the others ``MEMBERS_STEP`` at a time, a task each, so that the
 * page answers the next click while hundreds of rows are still being added.
 */
function toggle(row, ctx) {
  const { key } = shownStorm.get(row);
  if (shownMembers.has(key)) shownMembers.delete(key);
  else shownMembers.set(key, MEMBERS_FIRST);
  stormRow(shownStorm.get(row), row, ctx);
  // Each step after a frame has been drawn: steps queued as plain tasks would run before it.
  const later = (step) => requestAnimationFrame(() => setTimeout(step));
  const grow = () => {
    const storm = shownStorm.get(row);
    const shown = shownMembers.get(key);
    if (!row.isConnected || shown === undefined || shown >= storm.alerts.length) return;
    shownMembers.set(key, shown + MEMBERS_STEP);
    stormRow(storm, row, ctx);
    later(grow);
  };
  later(grow);
}

/** The row of ``storm``: its head is rebuilt only when what it shows changed. */
export function stormRow(storm, li, ctx, { wall = false } = {}) {
  const row = li?.dataset.storm ? li : h('li', { dataset: { storm: '1' } }, h('ol', { class: 'feed storm-members' }));
  const members = row.lastChild;
  const shown = wall ? undefined : shownMembers.get(storm.key);
  const version = [storm.key, storm.alerts.length, storm.devices, storm.counts.firing, storm.counts.acknowledged,
    storm.counts.resolved, storm.severity, storm.worst?.id, storm.last, wall, getLang()].join('|');
  if (row.dataset.version !== version) {
    row.dataset.version = version;
    row.className = `alert storm sev-${storm.severity} state-${stormState(storm)}`;
    Object.assign(row.dataset, {
      rule: storm.rule_id, district: storm.district ?? '', severity: storm.severity,
      devices: storm.devices, firing: storm.counts.firing,
    });
    row.replaceChildren(...stormHead(storm, ctx, { wall }), members);
  }
  const expand = row.querySelector('button.expand');
  if (expand) {
    expand.setAttribute('aria-expanded', String(shown !== undefined));
    expand.textContent = shown !== undefined ? t('storm.collapse') : t('storm.expand', { n: storm.alerts.length });
  }
  members.hidden = shown === undefined;
  if (shown === undefined) {
    // Hidden now; the rows go after the frame (removing hundreds is no part of the answer).
    if (members.firstChild) {
      requestAnimationFrame(() => setTimeout(() => { if (members.hidden) members.replaceChildren(); }));
    }
  } else renderAlertList(members, storm.alerts.slice(0, shown), ctx, { calm: true });
  shownStorm.set(row, storm);
  return row;
}

/** Alerts and storms (from ``groupStorms``) as rows of ``list``, in order. */
export function renderFeed(list, entries, ctx, options = {}) {
  reconcile(list, entries, (e) => (e.storm ? `storm:${e.key}` : String(e.id)),
    (e, li) => (e.storm ? stormRow(e, li, ctx, options) : alertRow(e, li, ctx, options)));
}
