// Building DOM from data without innerHTML: every text goes in as a text node.

import { formatRelative, formatTime } from './i18n.js';

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : value);
  }
  el.append(...children.flat().filter((c) => c != null && c !== false));
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

/** An icon from the sprite in index.html (decorative: the text next to it says the same). */
export function icon(name, className = 'icon') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', className);
  svg.setAttribute('aria-hidden', 'true');
  const use = document.createElementNS(SVG, 'use');
  use.setAttribute('href', `#i-${name}`);
  svg.append(use);
  return svg;
}

/** "5 phút trước" with the Vietnam time as title; refreshed by refreshTimes(). */
export function timeEl(iso) {
  const el = h('time', { datetime: iso, class: 'rel', title: formatTime(iso, { full: true }) });
  el.textContent = formatRelative(iso);
  return el;
}

export function refreshTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('time.rel')) {
    el.textContent = formatRelative(el.dateTime, now);
    el.title = formatTime(el.dateTime, { full: true });
  }
}

export function select(label, options, value, onChange, id) {
  return h('label', { class: 'field', for: id },
    h('span', {}, label),
    h('select', { id, onchange: (e) => onChange(e.target.value) },
      options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
}
