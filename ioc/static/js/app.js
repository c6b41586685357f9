// The console's shell: sign-in, header (connection, clock, sound, language), and the views.

import { api, session } from './api.js';
import { beep, flashScreen, setSound, soundOn } from './alarm.js';
import { h, refreshTimes } from './dom.js';
import { applyStatic, formatClock, formatTime, getLang, onLangChange, setLang, t } from './i18n.js';
import { AlertStore, DeviceStore, loadRules } from './store.js';
import { markFlash } from './views/alerts.js';
import { mountWall } from './views/board.js';
import { mountDevice, mountDeviceList } from './views/devices.js';
import { mountOverview } from './views/overview.js';

const $ = (id) => document.getElementById(id);

let ctx = null; // { me, canAct, alerts, devices } while signed in
let view = null;
let connection = { state: 'connecting', since: null, retryAt: null };
let updateTimer = null;
const ALARM_GAP_MS = 3000;
const alarmQueue = [];
let alarmTimer = null;
let lastAlarm = 0;

function route() {
  const path = location.hash.replace(/^#/, '') || '/';
  if (path === '/wall') return { name: 'wall' };
  if (path === '/devices') return { name: 'devices' };
  const device = path.match(/^\/device\/(.+)$/);
  if (device) return { name: 'device', id: decodeURIComponent(device[1]) };
  return { name: 'overview' };
}

function mountView() {
  view?.destroy();
  const el = $('view');
  el.replaceChildren();
  const r = route();
  document.body.classList.toggle('wall-mode', r.name === 'wall');
  const tab = r.name === 'device' ? 'devices' : r.name;
  for (const a of document.querySelectorAll('[data-route]')) {
    if (a.dataset.route === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (r.name === 'wall') view = mountWall(el, ctx);
  else if (r.name === 'devices') view = mountDeviceList(el, ctx);
  else if (r.name === 'device') view = mountDevice(el, ctx, r.id);
  else view = mountOverview(el, ctx);
  view.update();
}

/** Many changes in a burst make one render. */
function scheduleUpdate() {
  updateTimer ??= setTimeout(() => {
    updateTimer = null;
    view?.update();
  }, 30);
}

// ---- header ------------------------------------------------------------------------------

function renderConnection() {
  const { state, since, retryAt } = connection;
  const el = $('conn');
  el.dataset.state = state;
  let text = t('conn.connecting');
  if (state === 'live') text = t('conn.live');
  else if (state === 'reconnecting' && retryAt) {
    text = t('conn.reconnecting', { s: Math.max(0, Math.ceil((retryAt - Date.now()) / 1000)) });
  } else if (state === 'reconnecting') text = t('conn.retrying');
  if ($('conn-text').textContent !== text) $('conn-text').textContent = text;
  const banner = $('banner');
  banner.hidden = !since;
  if (since) banner.textContent = t('conn.banner', { t: formatTime(since.toISOString()) });
}

function renderClock() {
  const { time, day } = formatClock(new Date());
  $('clock').replaceChildren(h('strong', {}, time), ' ', h('span', { class: 'clock-day' }, day));
}

function renderWho() {
  if (!ctx) return;
  const { me } = ctx;
  const parts = [me.name, t(`role.${me.role}`)];
  if (me.districts) parts.push(me.districts.join(', '));
  $('who').textContent = parts.filter(Boolean).join(' · ');
}

function renderSound() {
  const on = soundOn();
  const btn = $('sound-toggle');
  btn.setAttribute('aria-pressed', String(on));
  btn.title = t('ctl.sound');
  btn.querySelector('use').setAttribute('href', on ? '#i-bell' : '#i-bell-off');
}

/**
 * Flash, beep and announce new critical alerts at most once per ``ALARM_GAP_MS``: a storm
 * brings hundreds within a second, and one alarm each would be one long noise and a frozen
 * page (every flash restarts an animation, a layout of the page).
 */
function alarm(alert) {
  alarmQueue.push(alert);
  alarmTimer ??= setTimeout(() => {
    alarmTimer = null;
    lastAlarm = Date.now();
    const [first, ...more] = alarmQueue.splice(0);
    flashScreen();
    beep();
    $('announcer').textContent = more.length
      ? t('alarm.many', { n: more.length + 1, message: first.message })
      : `${t(`sev.${first.severity}`)}: ${first.message}`;
  }, Math.max(0, lastAlarm + ALARM_GAP_MS - Date.now()));
}

// ---- sign-in -----------------------------------------------------------------------------

function showLogin(message = '') {
  $('app').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('login-key').value = '';
  $('login-key').focus();
}

function start(me) {
  const alerts = new AlertStore();
  const devices = new DeviceStore();
  ctx = {
    me, canAct: me.role === 'admin' || me.role === 'operator', alerts, devices,
    stormWindowMs: (me.storm_window_s ?? 0) * 1000, rules: [],
  };
  // Rules tell which way a storm's worst value lies; the feed shows without them meanwhile.
  loadRules().then((rules) => {
    if (ctx?.alerts !== alerts) return;
    ctx.rules = rules;
    scheduleUpdate();
  });
  alerts.addEventListener('change', (e) => {
    const { alert, fresh } = e.detail;
    if (fresh && alert.state === 'firing' && alert.severity === 'critical') {
      markFlash(alert.id);
      alarm(alert);
    }
    scheduleUpdate();
  });
  alerts.addEventListener('loaded', scheduleUpdate);
  alerts.stream.addEventListener('status', (e) => {
    connection = e.detail;
    renderConnection();
  });
  alerts.stream.addEventListener('denied', (e) => {
    if (e.detail === 401) signOut(t('conn.denied'));
    else alerts.error = { status: 403 };
    scheduleUpdate();
  });
  devices.addEventListener('change', scheduleUpdate);
  $('login').hidden = true;
  $('app').hidden = false;
  renderWho();
  renderSound();
  renderConnection();
  alerts.start();
  devices.start();
  mountView();
}

function signOut(message = '') {
  if (ctx) {
    ctx.alerts.stop();
    ctx.devices.stop();
  }
  view?.destroy();
  view = null;
  ctx = null;
  session.key = null;
  showLogin(message);
}

async function signIn(event) {
  event.preventDefault();
  session.key = $('login-key').value.trim();
  try {
    const me = await api('/me');
    if (me.role === 'ingest') {
      session.key = null;
      $('login-error').textContent = t('login.ingest');
      return;
    }
    start(me);
  } catch (err) {
    session.key = null;
    $('login-error').textContent = err.status === 401 ? t('login.invalid') : t('login.failed');
  }
}

// ---- boot --------------------------------------------------------------------------------

async function boot() {
  document.documentElement.lang = getLang();
  applyStatic(document);
  for (const btn of document.querySelectorAll('[data-lang-toggle]')) {
    btn.addEventListener('click', () => setLang(getLang() === 'vi' ? 'en' : 'vi'));
  }
  onLangChange(() => {
    document.title = `IOC Hậu Giang — ${t('app.title')}`;
    renderClock();
    renderConnection();
    if (!ctx) return;
    renderWho();
    renderSound();
    mountView();
  });
  $('login-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', () => signOut());
  $('sound-toggle').addEventListener('click', () => {
    setSound(!soundOn());
    renderSound();
  });
  window.addEventListener('hashchange', () => { if (ctx) mountView(); });
  renderClock();
  setInterval(() => {
    renderClock();
    if (ctx) renderConnection();
  }, 1000);
  setInterval(() => refreshTimes(), 20_000);
  try {
    // Also answers without a key when the service runs with IOC_AUTH=off.
    const me = await api('/me');
    if (me.role !== 'ingest') {
      start(me);
      return;
    }
    showLogin(t('login.ingest'));
  } catch (err) {
    showLogin(err.status === 401 ? '' : t('login.failed'));
  }
  session.key = null;
}

boot();
