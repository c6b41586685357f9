// A device's history as a uPlot chart: average line, min–max band, rule thresholds as lines.

import { formatNumber, formatTick, formatTime, t, TZ } from './i18n.js';

const BUCKETS = [['1m', 60], ['5m', 300], ['15m', 900], ['30m', 1800], ['1h', 3600], ['6h', 21600],
  ['12h', 43200], ['1d', 86400]];
// The aggregate API counts buckets from midnight in Vietnam (UTC+7).
const ORIGIN_S = -7 * 3600;

export const RANGES = { '1h': [3600, 60], '24h': [86400, 300], '7d': [7 * 86400, 3600] };

export const SEVERITY_COLOURS = { critical: '#ff5c5c', warning: '#ffb224', info: '#4aa8ff' };
const LINE = '#5fd4ff';

/**
 * The aggregate request for a range: buckets no finer than the device reports, so that an
 * empty bucket means a missed reading, not a reading that is simply not due yet.
 */
export function rangeWindow(range, intervalS, nowMs = Date.now()) {
  const [spanS, minStep] = RANGES[range];
  const [bucket, step] = BUCKETS.find(([, s]) => s >= Math.max(minStep, intervalS ?? 0)) ?? BUCKETS.at(-1);
  const toS = Math.floor(nowMs / 1000);
  const fromS = Math.floor((toS - spanS - ORIGIN_S) / step) * step + ORIGIN_S;
  return { bucket, step, fromS, toS };
}

/** Every bucket of the window, null where no row came: gaps stay gaps, never interpolated. */
export function toSeries(rows, { step, fromS, toS }) {
  const byBucket = new Map(rows.map((r) => [Math.round(Date.parse(r.bucket) / 1000), r]));
  const xs = [];
  const avg = [];
  const min = [];
  const max = [];
  let gaps = 0;
  for (let x = fromS; x < toS; x += step) {
    const row = byBucket.get(x);
    xs.push(x);
    avg.push(row?.avg ?? null);
    min.push(row?.min ?? null);
    max.push(row?.max ?? null);
    if (!row && x + step <= toS) gaps += 1;
  }
  return { data: [xs, avg, min, max], gaps, points: rows.length };
}

function drawThresholds(lines) {
  return (u) => {
    const { ctx, bbox } = u;
    const px = devicePixelRatio;
    ctx.save();
    ctx.font = `600 ${12 * px}px system-ui, sans-serif`;
    ctx.textAlign = 'right';
    for (const line of lines) {
      const y = Math.round(u.valToPos(line.value, 'y', true)) + 0.5;
      ctx.strokeStyle = line.colour;
      ctx.fillStyle = line.colour;
      ctx.lineWidth = 2 * px;
      ctx.setLineDash(line.dashed ? [7 * px, 6 * px] : []);
      ctx.beginPath();
      ctx.moveTo(bbox.left, y);
      ctx.lineTo(bbox.left + bbox.width, y);
      ctx.stroke();
      // Alarm labels above their line, clear labels below, so that close pairs stay legible.
      ctx.textBaseline = line.dashed ? 'top' : 'bottom';
      ctx.fillText(line.label, bbox.left + bbox.width - 8 * px, line.dashed ? y + 5 * px : y - 5 * px);
    }
    ctx.restore();
  };
}

function yRange(lines) {
  return (u, lo, hi) => {
    const values = [lo, hi, ...lines.map((l) => l.value)].filter((v) => v != null && Number.isFinite(v));
    if (!values.length) return [0, 1];
    const low = Math.min(...values);
    const high = Math.max(...values);
    const pad = (high - low) * 0.1 || Math.abs(high) * 0.1 || 1;
    return [low - pad, high + pad];
  };
}

/** A chart of ``series`` in ``el``; it follows the element's width. Returns a destroy(). */
export function drawChart(el, series, lines) {
  const height = Math.round(Math.min(540, Math.max(320, innerHeight * 0.46)));
  const uPlot = window.uPlot;
  const axis = {
    stroke: '#a9b8cf',
    font: '13px system-ui, sans-serif',
    grid: { stroke: 'rgba(160, 180, 210, 0.09)', width: 1 },
    ticks: { stroke: 'rgba(160, 180, 210, 0.2)', width: 1 },
  };
  const value = (u, v) => (v == null ? '—' : formatNumber(v));
  const plot = new uPlot({
    width: Math.max(el.clientWidth, 300),
    height,
    // Ticks fall on Vietnamese hours and midnights whatever the browser's own time zone.
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), TZ),
    scales: { x: { time: true }, y: { range: yRange(lines) } },
    series: [
      { label: t('chart.time'), value: (u, v) => (v == null ? '—' : formatTime(new Date(v * 1000).toISOString())) },
      { label: t('chart.avg'), stroke: LINE, width: 2.5, spanGaps: false, value },
      { label: t('chart.min'), stroke: 'rgba(95, 212, 255, 0.4)', width: 1, spanGaps: false, value },
      { label: t('chart.max'), stroke: 'rgba(95, 212, 255, 0.4)', width: 1, spanGaps: false, value },
    ],
    bands: [{ series: [3, 2], fill: 'rgba(95, 212, 255, 0.10)' }],
    axes: [
      { ...axis, values: (u, ticks) => ticks.map((v) => formatTick(new Date(v * 1000))) },
      { ...axis, size: 64, values: (u, ticks) => ticks.map((v) => formatNumber(v)) },
    ],
    cursor: { y: false, points: { size: 8 } },
    hooks: { draw: [drawThresholds(lines)] },
  }, series.data, el);
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 300), height }));
  resize.observe(el);
  return () => {
    resize.disconnect();
    plot.destroy();
  };
}
