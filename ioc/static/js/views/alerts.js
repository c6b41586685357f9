// One alert as a feed row, the keyed list that keeps rows in place, and the ack/resolve dialog.

import { api, ApiError } from '../api.js';
import { h, icon, timeEl } from '../dom.js';
import { formatTime, formatValue, getLang, t } from '../i18n.js';

const FLASH_MS = 12_000;
const flashing = new Map(); // alert id -> until (ms)

export function markFlash(alertId) {
  flashing.set(alertId, Date.now() + FLASH_MS);
}

function isFlashing(alertId) {
  const until = flashing.get(alertId);
  if (until === undefined) return false;
  if (until > Date.now()) return true;
  flashing.delete(alertId);
  return false;
}

export function severityBadge(severity) {
  return h('span', { class: `sev-badge sev-${severity}` }, icon(severity), t(`sev.${severity}`));
}

function who(alert, ctx) {
  const name = ctx.devices.name(alert.device_id);
  return h('span', { class: 'who-line' },
    h('a', { href: `#/device/${encodeURIComponent(alert.device_id)}`, class: 'device-link' }, name),
    name !== alert.device_id ? h('span', { class: 'mono muted' }, alert.device_id) : null,
    h('span', { class: 'district-tag' }, alert.district || t('alert.noDistrict')));
}

function actions(alert, ctx) {
  if (!ctx.canAct || alert.state === 'resolved') return null;
  return h('div', { class: 'actions' },
    alert.state === 'firing'
      ? h('button', { type: 'button', class: 'btn ack', onclick: () => openAction(alert, 'ack', ctx) },
        t('action.ack'))
      : null,
    h('button', { type: 'button', class: 'btn ghost resolve', onclick: () => openAction(alert, 'resolve', ctx) },
      t('action.resolve')));
}

/**
 * A row of the feed; ``wall`` drops the controls and the secondary details, ``calm`` the flash
 * of a new critical alert (a storm's own row says it).
 */
function alertItem(alert, ctx, { wall = false, calm = false } = {}) {
  const handled = [];
  if (alert.acknowledged_by) {
    handled.push(h('span', {}, t('alert.ackBy', { who: alert.acknowledged_by }), ' · ',
      formatTime(alert.acknowledged_at)));
  }
  if (alert.state === 'resolved' && alert.resolved_by === 'late-data') {
    handled.push(h('span', { class: 'withdrawn' }, t('alert.withdrawn')));
  } else if (alert.state === 'resolved' && alert.resolved_by) {
    handled.push(h('span', {}, t('alert.resolvedBy', { who: alert.resolved_by }), ' · ',
      formatTime(alert.resolved_at)));
  }
  const classes = ['alert', `sev-${alert.severity}`, `state-${alert.state}`];
  if (!calm && isFlashing(alert.id)) classes.push('flash');
  return h('li', {
    class: classes.join(' '),
    dataset: {
      id: alert.id, rule: alert.rule_id, device: alert.device_id, district: alert.district ?? '',
      state: alert.state, severity: alert.severity, version: versionKey(alert),
    },
  },
  h('div', { class: 'alert-sev' }, icon(alert.severity, 'sev-icon'),
    h('span', { class: 'sev-label' }, t(`sev.${alert.severity}`))),
  h('div', { class: 'alert-main' },
    h('p', { class: 'alert-msg' }, alert.message),
    h('p', { class: 'alert-meta' }, who(alert, ctx),
      wall ? null : h('span', { class: 'mono muted rule-id' }, alert.rule_id),
      alert.value != null ? h('span', { class: 'value' }, formatValue(alert.kind, alert.value)) : null),
    h('p', { class: 'alert-times' },
      timeEl(alert.started_at),
      h('span', { class: 'abs' }, formatTime(alert.started_at)),
      alert.count > 1 && !wall
        ? h('span', {}, t('alert.lastSeen'), ' ', timeEl(alert.last_seen_at)) : null,
      wall ? null : handled,
      alert.silenced && !wall ? h('span', { class: 'silenced' }, t('alert.silenced')) : null)),
  h('div', { class: 'alert-side' },
    h('span', { class: `state-chip state-${alert.state}` }, t(`state.${alert.state}`)),
    alert.count > 1
      ? h('span', { class: 'repeat', title: t('alert.repeats', { n: alert.count }) }, `×${alert.count}`)
      : null,
    wall ? null : actions(alert, ctx)));
}

function versionKey(alert) {
  return [alert.state, alert.count, alert.started_at, alert.last_seen_at, alert.resolved_at,
    alert.resolved_by, alert.silenced, getLang()].join('|');
}

/**
 * Put ``items`` into ``list`` in order, keyed by ``keyOf``: ``rowFor(item, li)`` gives the row
 * for an item (``li`` is its current row, if any, to reuse), and rows move only when out of
 * place, so that an update never makes the whole feed jump or re-flash.
 */
export function reconcile(list, items, keyOf, rowFor) {
  const rows = new Map([...list.children].map((li) => [li.dataset.key, li]));
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    const current = rows.get(key);
    rows.delete(key);
    const li = rowFor(item, current);
    li.dataset.key = key;
    if (current && current !== li) current.replaceWith(li);
    const wanted = previous ? previous.nextSibling : list.firstChild;
    if (wanted !== li) list.insertBefore(li, wanted);
    previous = li;
  }
  for (const li of rows.values()) li.remove();
}

/** The row of ``alert``: ``li`` again when nothing shown has changed, else a new one. */
export function alertRow(alert, li, ctx, options = {}) {
  if (li && li.dataset.version === versionKey(alert)
      && li.classList.contains('flash') === (!options.calm && isFlashing(alert.id))) return li;
  return alertItem(alert, ctx, options);
}

/** ``alerts`` as rows of ``list``, in order. */
export function renderAlertList(list, alerts, ctx, options = {}) {
  reconcile(list, alerts, (a) => String(a.id), (a, li) => alertRow(a, li, ctx, options));
}

// ---- acknowledge / resolve -------------------------------------------------------------

/**
 * The note dialog: ``send(note)`` does the action (``note`` undefined when left empty); an
 * error it throws is shown in the dialog by ``explain(err)``, which returns the text.
 */
export function confirmWithNote({ title, message, confirmLabel, action, send, explain }) {
  const dialog = document.getElementById('action-dialog');
  const form = document.getElementById('action-form');
  const note = document.getElementById('action-note');
  const error = document.getElementById('action-error');
  const confirm = document.getElementById('action-confirm');
  document.getElementById('action-title').textContent = title;
  document.getElementById('action-message').replaceChildren(...message);
  confirm.textContent = confirmLabel;
  confirm.className = `btn primary ${action}`;
  confirm.disabled = false;
  note.value = '';
  error.textContent = '';
  form.onsubmit = async (event) => {
    event.preventDefault();
    confirm.disabled = true;
    try {
      await send(note.value.trim() || undefined);
      dialog.close();
    } catch (err) {
      confirm.disabled = false;
      error.textContent = explain(err);
    }
  };
  document.getElementById('action-cancel').onclick = () => dialog.close();
  dialog.showModal();
  note.focus();
}

function openAction(alert, action, ctx) {
  confirmWithNote({
    title: t(action === 'ack' ? 'action.ackTitle' : 'action.resolveTitle'),
    message: [severityBadge(alert.severity), ' ', alert.message],
    confirmLabel: t(action === 'ack' ? 'action.ack' : 'action.resolve'),
    action,
    send: async (note) => {
      const body = note ? { note } : {};
      ctx.alerts.put(await api(`/alerts/${alert.id}/${action}`, { method: 'POST', body }));
    },
    explain: (err) => {
      if (err instanceof ApiError && err.status === 409) {
        ctx.alerts.loadDevice(alert.device_id);
        return t('action.conflict', { state: t(`state.${err.detail?.state ?? 'resolved'}`) });
      }
      return t('action.failed', { detail: err.message });
    },
  });
}
