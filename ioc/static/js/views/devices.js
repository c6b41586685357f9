// The device list and one device: last values, history chart with thresholds, recent alerts.

import { api, query } from '../api.js';
import { drawChart, RANGES, rangeWindow, SEVERITY_COLOURS, toSeries } from '../chart.js';
import { h, select, timeEl } from '../dom.js';
import { formatNumber, formatValue, kindLabel, t } from '../i18n.js';
import { DISTRICTS, loadRules, NO_DISTRICT, ruleApplies } from '../store.js';
import { renderAlertList } from './alerts.js';

const CHART_REFRESH_MS = 60_000;

function statusChip(device) {
  if (!device.last_seen) return h('span', { class: 'chip chip-never' }, t('devices.never'));
  return device.online
    ? h('span', { class: 'chip chip-online' }, h('span', { class: 'dot online', 'aria-hidden': 'true' }), t('devices.online'))
    : h('span', { class: 'chip chip-offline' }, h('span', { class: 'dot offline', 'aria-hidden': 'true' }), t('devices.offline'));
}

function districtOrder(d) {
  const i = DISTRICTS.indexOf(d ?? NO_DISTRICT);
  return i < 0 ? DISTRICTS.length : i;
}

/** The main kind's last value, else the newest of any kind (a camera sends camera.*). */
function latestValue(device) {
  const values = device.last_values ?? {};
  if (values[device.kind]) return [device.kind, values[device.kind]];
  const newest = Object.entries(values).sort(([, a], [, b]) => Date.parse(b.ts) - Date.parse(a.ts))[0];
  return newest ?? [device.kind, null];
}

export function mountDeviceList(container, ctx) {
  const filters = { district: '', kind: '', search: '' };
  const bar = h('div', { class: 'filters' });
  const count = h('p', { class: 'muted' });
  const body = h('tbody');
  const search = h('input', {
    type: 'search', id: 'd-search', autocomplete: 'off',
    oninput: (e) => { filters.search = e.target.value.trim().toLowerCase(); view.update(); },
  });
  container.append(h('section', { class: 'panel devices-panel', 'aria-labelledby': 'devices-title' },
    h('div', { class: 'section-head' }, h('h2', { id: 'devices-title', class: 'section-title' }), count),
    bar,
    h('div', { class: 'table-wrap' }, h('table', { class: 'devices' },
      h('thead', {}, h('tr', {}, ['devices.status', 'devices.name', 'filter.district', 'devices.kind',
        'devices.last', 'devices.seen'].map((k) => h('th', { scope: 'col', dataset: { i18n: k } }, t(k))))),
      body))));

  let signature = '';
  const view = {
    update() {
      container.querySelector('#devices-title').textContent = t('devices.title');
      for (const th of container.querySelectorAll('th')) th.textContent = t(th.dataset.i18n);
      const devices = [...ctx.devices.byId.values()];
      const districts = [...new Set(devices.map((d) => d.district ?? NO_DISTRICT))]
        .sort((a, b) => districtOrder(a) - districtOrder(b));
      const kinds = [...new Set(devices.map((d) => d.kind).filter(Boolean))].sort();
      const sig = [t('filter.all'), ...districts, ...kinds].join('|');
      if (sig !== signature) {
        signature = sig;
        bar.replaceChildren(
          select(t('filter.district'), [['', t('filter.all')], ...districts.map((d) => [d, d || t('alert.noDistrict')])],
            filters.district, (v) => { filters.district = v; view.update(); }, 'd-district'),
          select(t('filter.kind'), [['', t('filter.all')], ...kinds.map((k) => [k, kindLabel(k)])],
            filters.kind, (v) => { filters.kind = v; view.update(); }, 'd-kind'),
          h('label', { class: 'field' }, h('span', {}, t('filter.search')), search));
      }
      const shown = devices
        .filter((d) => !filters.district || (d.district ?? NO_DISTRICT) === filters.district)
        .filter((d) => !filters.kind || d.kind === filters.kind)
        .filter((d) => !filters.search || `${d.id} ${d.name ?? ''}`.toLowerCase().includes(filters.search))
        .sort((a, b) => districtOrder(a.district) - districtOrder(b.district) || a.id.localeCompare(b.id));
      count.textContent = t('devices.count', { n: shown.length });
      body.replaceChildren(...shown.map((d) => {
        const [kind, last] = latestValue(d);
        return h('tr', { class: d.online ? 'online' : 'offline' },
          h('td', {}, statusChip(d)),
          h('td', {}, h('a', { href: `#/device/${encodeURIComponent(d.id)}` }, d.name ?? d.id),
            h('span', { class: 'mono muted sub' }, d.id)),
          h('td', {}, d.district || t('alert.noDistrict')),
          h('td', {}, kindLabel(d.kind)),
          h('td', { class: 'num' }, last ? formatValue(kind, last.value) : '—'),
          h('td', {}, d.last_seen ? timeEl(d.last_seen) : '—'));
      }));
    },
    destroy() {},
  };
  return view;
}

function thresholdLines(rules, device, kind) {
  const lines = [];
  const seen = new Set();
  for (const rule of rules.filter((r) => ruleApplies(r, device, kind))) {
    const colour = SEVERITY_COLOURS[rule.severity] ?? SEVERITY_COLOURS.info;
    for (const [part, dashed] of [['when', false], ['clear', true]]) {
      const cond = rule[part];
      if (!cond || typeof cond.value !== 'number') continue;
      const key = `${part}|${cond.op}|${cond.value}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const label = t(part === 'when' ? 'chart.when' : 'chart.clear', { op: cond.op, v: formatNumber(cond.value) });
      lines.push({ value: cond.value, colour: dashed ? `${colour}b0` : colour, dashed, label, rule: rule.id });
    }
  }
  return lines;
}

export function mountDevice(container, ctx, deviceId) {
  const state = { range: '24h', kind: null, device: null, error: null };
  const head = h('header', { class: 'device-head' });
  const values = h('div', { class: 'last-values' });
  const facts = h('dl', { class: 'device-facts' });
  const kindTabs = h('div', { class: 'seg', role: 'group' });
  const rangeTabs = h('div', { class: 'seg', role: 'group' });
  const chartEl = h('div', { class: 'chart', role: 'img' });
  const legend = h('ul', { class: 'threshold-legend' });
  const note = h('p', { class: 'chart-note muted' });
  const alertList = h('ol', { class: 'feed compact' });
  const noAlerts = h('p', { class: 'muted' });
  container.append(
    h('a', { href: '#/devices', class: 'back-link', dataset: { i18n: 'device.back' } }, t('device.back')),
    head,
    h('div', { class: 'device-grid' },
      h('section', { class: 'panel chart-panel', 'aria-labelledby': 'chart-title' },
        h('div', { class: 'section-head' }, h('h2', { id: 'chart-title', class: 'section-title' }),
          h('div', { class: 'chart-controls' }, kindTabs, rangeTabs)),
        chartEl, legend, note),
      h('div', { class: 'device-side' },
        h('section', { class: 'panel', 'aria-labelledby': 'values-title' },
          h('h2', { id: 'values-title', class: 'section-title' }), values, facts),
        h('section', { class: 'panel', 'aria-labelledby': 'dalerts-title' },
          h('h2', { id: 'dalerts-title', class: 'section-title' }), noAlerts, alertList))));

  let destroyChart = () => {};
  let request = 0;

  const segButtons = (el, options, current, onPick) => {
    el.replaceChildren(...options.map(([value, label]) => h('button', {
      type: 'button', class: 'seg-btn', 'aria-pressed': String(value === current), dataset: { value },
      onclick: () => onPick(value),
    }, label)));
  };

  async function loadChart() {
    const { device, kind, range } = state;
    if (!device || !kind) return;
    const mine = ++request;
    const win = rangeWindow(range, kind === device.kind ? device.interval : null);
    const [page, rules] = await Promise.all([
      api(`/events/aggregate${query({
        device_id: device.id, kind, bucket: win.bucket, agg: 'avg,min,max,count',
        from: new Date(win.fromS * 1000).toISOString(), to: new Date(win.toS * 1000).toISOString(),
      })}`),
      loadRules(),
    ]);
    if (mine !== request) return;
    const series = toSeries(page.items, win);
    const lines = thresholdLines(rules, device, kind);
    destroyChart();
    chartEl.replaceChildren();
    chartEl.setAttribute('aria-label', t('chart.label', { kind: kindLabel(kind), range: t(`range.${range}`) }));
    chartEl.dataset.gaps = String(series.gaps);
    if (!window.uPlot) {
      chartEl.append(h('p', { class: 'chart-empty' }, t('chart.missing')));
      destroyChart = () => {};
    } else {
      destroyChart = drawChart(chartEl, series, lines);
    }
    legend.replaceChildren(...lines.map((l) => h('li', { dataset: { rule: l.rule } },
      h('span', { class: `swatch${l.dashed ? ' dashed' : ''}`, style: `--c:${l.colour}` }),
      l.label, h('span', { class: 'mono muted' }, l.rule))));
    if (!series.points) note.textContent = t('chart.empty');
    else note.textContent = series.gaps ? t('chart.gaps', { n: series.gaps }) : t('chart.noGaps');
    note.classList.toggle('has-gaps', series.gaps > 0);
  }

  function renderHead() {
    const d = state.device;
    if (!d) {
      const error = state.error?.status === 404 ? t('device.notFound', { id: deviceId }) : state.error?.message;
      head.replaceChildren(h('h2', {}, deviceId), error ? h('p', { class: 'form-error', role: 'alert' }, error) : null);
      return;
    }
    head.replaceChildren(
      h('div', {}, h('h2', {}, d.name ?? d.id),
        h('p', { class: 'muted' }, h('span', { class: 'mono' }, d.id), ' · ', kindLabel(d.kind), ' · ',
          d.district || t('alert.noDistrict'), d.ward ? ` · ${d.ward}` : '')),
      h('p', { class: 'device-status' }, statusChip(d), d.last_seen ? timeEl(d.last_seen) : null));
    const kinds = Object.keys(d.last_values ?? {});
    if (d.kind && !kinds.includes(d.kind)) kinds.unshift(d.kind);
    state.kind ??= d.kind ?? kinds[0] ?? null;
    container.querySelector('#chart-title').textContent = `${t('device.history')} — ${kindLabel(state.kind)}`;
    kindTabs.setAttribute('aria-label', t('filter.kind'));
    kindTabs.hidden = kinds.length < 2;
    segButtons(kindTabs, kinds.map((k) => [k, kindLabel(k)]), state.kind, (k) => {
      state.kind = k;
      reload();
    });
    rangeTabs.setAttribute('aria-label', t('device.history'));
    segButtons(rangeTabs, Object.keys(RANGES).map((r) => [r, t(`range.${r}`)]), state.range, (r) => {
      state.range = r;
      reload();
    });
    const last = Object.entries(d.last_values ?? {});
    values.replaceChildren(...(last.length
      ? last.map(([k, v]) => h('div', { class: 'value-card' },
        h('span', { class: 'value-kind' }, kindLabel(k)),
        h('strong', {}, formatValue(k, v.value)),
        timeEl(v.ts)))
      : [h('p', { class: 'muted' }, t('device.noValues'))]));
    facts.replaceChildren(
      ...(d.interval ? [h('dt', {}, t('device.interval')),
        h('dd', {}, t('unit.minutes', { n: formatNumber(d.interval / 60, 1) }))] : []),
      ...(d.tags.length ? [h('dt', {}, t('device.tags')), h('dd', {}, d.tags.join(', '))] : []),
      ...(d.lat != null ? [h('dt', {}, t('device.location')),
        h('dd', { class: 'mono' }, `${formatNumber(d.lat, 4)}, ${formatNumber(d.lon, 4)}`)] : []));
  }

  async function loadDevice() {
    try {
      state.device = await api(`/devices/${encodeURIComponent(deviceId)}`);
      state.error = null;
    } catch (err) {
      state.error = err;
    }
    renderHead();
  }

  const reload = () => loadDevice().then(loadChart).catch((err) => {
    note.textContent = err.message;
  });
  const refresh = setInterval(reload, CHART_REFRESH_MS);
  reload();
  ctx.alerts.loadDevice(deviceId).catch((err) => console.warn('device alerts:', err));

  return {
    update() {
      container.querySelector('#values-title').textContent = t('device.lastValues');
      container.querySelector('#dalerts-title').textContent = t('device.alerts');
      const mine = ctx.alerts.list((a) => a.device_id === deviceId).slice(0, 20);
      renderAlertList(alertList, mine, ctx);
      noAlerts.textContent = mine.length ? '' : t('device.noAlerts');
      noAlerts.hidden = mine.length > 0;
    },
    destroy() {
      clearInterval(refresh);
      destroyChart();
    },
  };
}
