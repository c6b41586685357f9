// The situation board (per district: open alerts by severity, devices online/offline) and the
// wall-screen view built from it.

import { h, icon } from '../dom.js';
import { t } from '../i18n.js';
import { districtsFor, isOpen, NO_DISTRICT, SEVERITIES } from '../store.js';
import { groupStorms, renderFeed } from './storms.js';

const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
const WALL_ROWS = 30;

function districtStats(ctx) {
  const stats = new Map(districtsFor(ctx.me, ctx.devices, ctx.alerts).map((d) => [d, {
    district: d, critical: 0, warning: 0, info: 0, online: 0, offline: 0,
  }]));
  for (const alert of ctx.alerts.byId.values()) {
    const row = stats.get(alert.district ?? NO_DISTRICT);
    if (row && isOpen(alert)) row[alert.severity] += 1;
  }
  for (const device of ctx.devices.byId.values()) {
    const row = stats.get(device.district ?? NO_DISTRICT);
    if (row) row[device.online ? 'online' : 'offline'] += 1;
  }
  return [...stats.values()].filter((s) => s.district !== NO_DISTRICT
    || s.critical + s.warning + s.info + s.online + s.offline > 0);
}

function worst(stat) {
  return SEVERITIES.find((s) => stat[s] > 0) ?? 'ok';
}

function districtCard(stat, { onPick, selected }) {
  const level = worst(stat);
  const total = stat.online + stat.offline;
  const name = stat.district || t('alert.noDistrict');
  const counts = h('ul', { class: 'sev-counts' }, SEVERITIES.map((s) => h('li', {
    class: `sev-count sev-${s}${stat[s] ? '' : ' zero'}`,
    dataset: { severity: s },
  }, h('strong', {}, String(stat[s])), h('span', {}, t(`sev.${s}`)))));
  const body = [
    h('header', { class: 'card-head' },
      h('h3', {}, name),
      level === 'ok'
        ? h('span', { class: 'status-ok' }, icon('ok'), t('board.normal'))
        : h('span', { class: `status-sev sev-${level}` }, icon(level), t(`sev.${level}`))),
    counts,
    h('div', { class: 'device-health' },
      h('p', {},
        h('span', {}, h('span', { class: 'dot online', 'aria-hidden': 'true' }), `${stat.online} ${t('board.online')}`),
        h('span', {}, h('span', { class: 'dot offline', 'aria-hidden': 'true' }), `${stat.offline} ${t('board.offline')}`)),
      h('div', { class: 'meter', role: 'presentation' },
        h('span', { style: `width:${total ? (100 * stat.online) / total : 0}%` }))),
  ];
  const attrs = {
    class: `district-card level-${level}${selected === stat.district ? ' selected' : ''}`,
    dataset: { district: stat.district },
  };
  if (!onPick) return h('section', attrs, body);
  return h('button', {
    ...attrs, type: 'button', 'aria-pressed': String(selected === stat.district),
    onclick: () => onPick(stat.district),
  }, body);
}

export function renderBoard(grid, ctx, options = {}) {
  const stats = districtStats(ctx);
  grid.classList.toggle('single', stats.length === 1);
  grid.replaceChildren(...stats.map((s) => districtCard(s, options)));
}

function totals(ctx) {
  const out = { critical: 0, warning: 0, info: 0 };
  for (const alert of ctx.alerts.byId.values()) if (isOpen(alert)) out[alert.severity] += 1;
  return out;
}

export function totalsStrip(ctx) {
  const sum = totals(ctx);
  return h('ul', { class: 'totals' }, SEVERITIES.map((s) => h('li', {
    class: `total sev-${s}${sum[s] ? '' : ' zero'}`,
  }, icon(s), h('strong', {}, String(sum[s])), h('span', {}, t(`sev.${s}`)))));
}

/** Wall screen: large type, no controls; Escape goes back to the desk view. */
export function mountWall(container, ctx) {
  const totalsSlot = h('div', { class: 'wall-totals' });
  const grid = h('div', { class: 'board-grid wall-grid' });
  const list = h('ol', { class: 'feed wall-feed' });
  const none = h('p', { class: 'wall-none' }, icon('ok'), h('span', {}));
  const more = h('p', { class: 'wall-more muted' });
  container.append(h('div', { class: 'wall' },
    h('section', { class: 'wall-board', 'aria-labelledby': 'wall-board-title' },
      h('h2', { id: 'wall-board-title', class: 'section-title' }, t('board.title')), grid),
    h('section', { class: 'wall-alerts', 'aria-labelledby': 'wall-alerts-title' },
      h('div', { class: 'section-head' },
        h('h2', { id: 'wall-alerts-title', class: 'section-title' }, t('wall.open')), totalsSlot),
      none, list, more)));
  const onKey = (e) => {
    if (e.key === 'Escape') location.hash = '#/';
  };
  const view = {
    update() {
      container.querySelector('#wall-board-title').textContent = t('board.title');
      container.querySelector('#wall-alerts-title').textContent = t('wall.open');
      renderBoard(grid, ctx);
      totalsSlot.replaceChildren(totalsStrip(ctx));
      const open = groupStorms(ctx.alerts.list(isOpen), ctx.stormWindowMs, ctx.rules)
        .sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]);
      renderFeed(list, open.slice(0, WALL_ROWS), ctx, { wall: true });
      none.hidden = open.length > 0;
      none.lastChild.textContent = t('wall.none');
      // A wall screen cannot scroll: show the rows that fit, and how many do not.
      const rows = [...list.children];
      for (const li of rows) li.hidden = false;
      const bottom = list.getBoundingClientRect().bottom + 1;
      const cut = rows.findIndex((li) => li.getBoundingClientRect().bottom > bottom);
      const shown = cut < 0 ? rows.length : cut;
      for (const li of rows.slice(shown)) li.hidden = true;
      more.textContent = open.length > shown ? t('feed.more', { n: open.length - shown }) : '';
    },
    destroy() {
      document.removeEventListener('keydown', onKey);
      window.removeEventListener('resize', view.update);
    },
  };
  document.addEventListener('keydown', onKey);
  window.addEventListener('resize', view.update);
  return view;
}
