// The desk view: the live alert feed with filters beside the situation board.

import { h, select } from '../dom.js';
import { t } from '../i18n.js';
import { districtsFor, isOpen, NO_DISTRICT, SEVERITIES } from '../store.js';
import { renderBoard, totalsStrip } from './board.js';
import { groupStorms, renderFeed } from './storms.js';

const FILTER_KEY = 'ioc.filters';
const MAX_ROWS = 300;

function loadFilters() {
  try {
    return { district: '', severity: '', state: 'open', ...JSON.parse(localStorage.getItem(FILTER_KEY)) };
  } catch {
    return { district: '', severity: '', state: 'open' };
  }
}

function matches(alert, f) {
  if (f.district && (alert.district ?? NO_DISTRICT) !== f.district) return false;
  if (f.severity && alert.severity !== f.severity) return false;
  if (f.state === 'open') return isOpen(alert);
  return !f.state || alert.state === f.state;
}

export function mountOverview(container, ctx) {
  const filters = loadFilters();
  const filterBar = h('div', { class: 'filters', role: 'group' });
  const totals = h('div', { class: 'feed-totals' });
  const list = h('ol', { class: 'feed', 'aria-labelledby': 'feed-title' });
  const status = h('p', { class: 'feed-status muted' });
  const grid = h('div', { class: 'board-grid' });

  container.append(h('div', { class: 'overview' },
    h('section', { class: 'panel feed-panel', 'aria-labelledby': 'feed-title' },
      h('div', { class: 'section-head' }, h('h2', { id: 'feed-title', class: 'section-title' }), totals),
      filterBar, status, list),
    h('section', { class: 'panel board-panel', 'aria-labelledby': 'board-title' },
      h('h2', { id: 'board-title', class: 'section-title' }), grid)));

  const setFilter = (name, value) => {
    filters[name] = value;
    localStorage.setItem(FILTER_KEY, JSON.stringify(filters));
    view.update();
  };

  const renderFilters = () => {
    const districts = districtsFor(ctx.me, ctx.devices, ctx.alerts);
    if (filters.district && !districts.includes(filters.district)) filters.district = '';
    filterBar.setAttribute('aria-label', t('feed.title'));
    filterBar.replaceChildren(
      select(t('filter.district'), [['', t('filter.all')],
        ...districts.map((d) => [d, d || t('alert.noDistrict')])],
      filters.district, (v) => setFilter('district', v), 'f-district'),
      select(t('filter.severity'), [['', t('filter.all')], ...SEVERITIES.map((s) => [s, t(`sev.${s}`)])],
        filters.severity, (v) => setFilter('severity', v), 'f-severity'),
      select(t('filter.state'), [['open', t('state.open')], ['firing', t('state.firing')],
        ['acknowledged', t('state.acknowledged')], ['resolved', t('state.resolved')], ['', t('filter.all')]],
      filters.state, (v) => setFilter('state', v), 'f-state'));
  };

  let filterSignature = '';
  const view = {
    update() {
      container.querySelector('#feed-title').textContent = t('feed.title');
      container.querySelector('#board-title').textContent = t('board.title');
      const signature = [t('filter.all'), ...districtsFor(ctx.me, ctx.devices, ctx.alerts),
        JSON.stringify(filters)].join('|');
      if (signature !== filterSignature) {
        filterSignature = signature;
        renderFilters();
      }
      totals.replaceChildren(totalsStrip(ctx));
      const shown = groupStorms(ctx.alerts.list((a) => matches(a, filters)), ctx.stormWindowMs, ctx.rules);
      renderFeed(list, shown.slice(0, MAX_ROWS), ctx);
      if (ctx.alerts.error) {
        status.textContent = ctx.alerts.error.status === 403 ? t('feed.forbidden') : ctx.alerts.error.message;
      } else if (!ctx.alerts.loaded) {
        status.textContent = t('feed.loading');
      } else if (!shown.length) {
        status.textContent = t('feed.empty');
      } else {
        status.textContent = shown.length > MAX_ROWS ? t('feed.more', { n: shown.length - MAX_ROWS }) : '';
      }
      status.hidden = !status.textContent;
      renderBoard(grid, ctx, {
        selected: filters.district,
        onPick: (d) => setFilter('district', filters.district === d ? '' : d),
      });
    },
    destroy() {},
  };
  return view;
}
