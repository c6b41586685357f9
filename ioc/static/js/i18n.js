// Vietnamese (default) and English labels, and times shown in Asia/Ho_Chi_Minh.

export const TZ = 'Asia/Ho_Chi_Minh';
const LANG_KEY = 'ioc.lang';

const STRINGS = {
  vi: {
    'app.title': 'Trung tâm điều hành',
    'app.province': 'Tỉnh Hậu Giang',
    'login.key': 'Khóa API',
    'login.submit': 'Đăng nhập',
    'login.invalid': 'Khóa không hợp lệ hoặc đã bị thu hồi.',
    'login.ingest': 'Khóa này chỉ dùng để gửi dữ liệu, không xem được bảng điều hành.',
    'login.failed': 'Không kết nối được máy chủ.',
    'nav.label': 'Điều hướng',
    'nav.overview': 'Tổng quan',
    'nav.devices': 'Thiết bị',
    'ctl.sound': 'Âm báo khi có cảnh báo nghiêm trọng',
    'ctl.wall': 'Màn hình tường',
    'ctl.logout': 'Đăng xuất',
    'conn.connecting': 'Đang kết nối…',
    'conn.live': 'Trực tuyến',
    'conn.reconnecting': 'Mất kết nối — thử lại sau {s} giây',
    'conn.retrying': 'Đang kết nối lại…',
    'conn.banner': 'Mất kết nối tới máy chủ từ {t}. Danh sách cảnh báo có thể chưa cập nhật; đang tự kết nối lại.',
    'conn.denied': 'Khóa API không còn hiệu lực. Hãy đăng nhập lại.',
    'role.admin': 'Quản trị',
    'role.operator': 'Điều hành viên',
    'role.agency': 'Cơ quan',
    'sev.critical': 'Nghiêm trọng',
    'sev.warning': 'Cảnh báo',
    'sev.info': 'Thông tin',
    'state.firing': 'Đang báo',
    'state.acknowledged': 'Đã xác nhận',
    'state.resolved': 'Đã xử lý',
    'state.open': 'Đang mở',
    'filter.all': 'Tất cả',
    'filter.district': 'Địa bàn',
    'filter.severity': 'Mức độ',
    'filter.state': 'Trạng thái',
    'filter.kind': 'Loại',
    'filter.search': 'Tìm thiết bị',
    'feed.title': 'Cảnh báo',
    'feed.empty': 'Không có cảnh báo nào khớp bộ lọc.',
    'feed.loading': 'Đang tải cảnh báo…',
    'feed.forbidden': 'Khóa này không được xem cảnh báo.',
    'feed.more': 'Còn {n} cảnh báo khác',
    'storm.title': 'Bão cảnh báo: {n} thiết bị',
    'alarm.many': '{n} cảnh báo nghiêm trọng mới, trong đó: {message}',
    'storm.firing': '{n} đang báo',
    'storm.acknowledged': '{n} đã xác nhận',
    'storm.resolved': '{n} đã xử lý',
    'storm.worst': 'Nặng nhất',
    'storm.first': 'Từ',
    'storm.last': 'gần nhất',
    'storm.expand': 'Xem {n} cảnh báo',
    'storm.collapse': 'Thu gọn',
    'storm.ack': 'Xác nhận cả nhóm ({n})',
    'storm.ackTitle': 'Xác nhận cả nhóm cảnh báo',
    'storm.ackMessage': '{n} cảnh báo đang báo · {rule} · {district}',
    'storm.ackConfirm': 'Xác nhận {n} cảnh báo',
    'storm.ackDone': 'Đã xác nhận {n} cảnh báo',
    'storm.ackSkipped': '{n} cảnh báo không còn đang báo',
    'alert.repeats': 'Lặp lại {n} lần',
    'alert.started': 'Bắt đầu',
    'alert.lastSeen': 'Gần nhất',
    'alert.ackBy': 'Xác nhận: {who}',
    'alert.resolvedBy': 'Xử lý: {who}',
    'alert.withdrawn': 'Đã rút: dữ liệu đến muộn cho thấy không xảy ra',
    'alert.silenced': 'Đã tắt thông báo',
    'alert.value': 'Giá trị',
    'alert.noDistrict': 'Chưa rõ địa bàn',
    'action.ack': 'Xác nhận',
    'action.resolve': 'Xử lý xong',
    'action.ackTitle': 'Xác nhận cảnh báo',
    'action.resolveTitle': 'Đánh dấu đã xử lý',
    'action.note': 'Ghi chú (không bắt buộc)',
    'action.cancel': 'Hủy',
    'action.conflict': 'Cảnh báo đã ở trạng thái “{state}”.',
    'action.failed': 'Không thực hiện được: {detail}',
    'board.title': 'Tình hình theo địa bàn',
    'board.normal': 'Bình thường',
    'board.devices': 'Thiết bị',
    'board.online': 'hoạt động',
    'board.offline': 'mất tín hiệu',
    'board.open': 'Đang mở',
    'wall.open': 'Cảnh báo đang mở',
    'wall.none': 'Không có cảnh báo đang mở',
    'devices.title': 'Thiết bị',
    'devices.name': 'Thiết bị',
    'devices.kind': 'Loại',
    'devices.last': 'Giá trị mới nhất',
    'devices.seen': 'Lần cuối',
    'devices.status': 'Tình trạng',
    'devices.online': 'Hoạt động',
    'devices.offline': 'Mất tín hiệu',
    'devices.never': 'Chưa gửi dữ liệu',
    'devices.count': '{n} thiết bị',
    'device.back': '← Danh sách thiết bị',
    'device.notFound': 'Không tìm thấy thiết bị {id}.',
    'device.lastValues': 'Giá trị mới nhất',
    'device.history': 'Diễn biến',
    'device.alerts': 'Cảnh báo gần đây',
    'device.noAlerts': 'Chưa có cảnh báo nào cho thiết bị này.',
    'device.noValues': 'Thiết bị chưa gửi dữ liệu.',
    'device.interval': 'Chu kỳ gửi',
    'device.tags': 'Thẻ',
    'device.location': 'Vị trí',
    'unit.minutes': '{n} phút',
    'chart.time': 'Thời gian',
    'chart.avg': 'Trung bình',
    'chart.min': 'Thấp nhất',
    'chart.max': 'Cao nhất',
    'chart.gaps': '{n} khoảng không có dữ liệu (để trống, không nội suy)',
    'chart.noGaps': 'Dữ liệu đầy đủ trong khoảng thời gian này',
    'chart.empty': 'Không có dữ liệu trong khoảng thời gian này.',
    'chart.missing': 'Thiếu thư viện biểu đồ: chạy “make setup” trên máy chủ.',
    'chart.when': 'Ngưỡng báo động {op} {v}',
    'chart.clear': 'Ngưỡng hết báo động {op} {v}',
    'chart.label': 'Biểu đồ {kind}, {range}',
    'range.1h': '1 giờ',
    'range.24h': '24 giờ',
    'range.7d': '7 ngày',
    'time.now': 'vừa xong',
    'kind.water_level': 'Mực nước',
    'kind.rainfall': 'Lượng mưa',
    'kind.salinity': 'Độ mặn',
    'kind.pm25': 'Bụi PM2.5',
    'kind.traffic_count': 'Lưu lượng xe',
    'kind.traffic_speed': 'Tốc độ xe',
    'kind.camera.fire': 'Camera: cháy',
    'kind.camera.smoke': 'Camera: khói',
    'kind.camera.crowd': 'Camera: đám đông',
    'kind.camera.flooding': 'Camera: ngập',
    'kind.camera': 'Camera',
  },
  en: {
    'app.title': 'Operations Centre',
    'app.province': 'Hậu Giang province',
    'login.key': 'API key',
    'login.submit': 'Sign in',
    'login.invalid': 'Unknown or revoked API key.',
    'login.ingest': 'This key can only send data; it cannot open the console.',
    'login.failed': 'Cannot reach the server.',
    'nav.label': 'Navigation',
    'nav.overview': 'Overview',
    'nav.devices': 'Devices',
    'ctl.sound': 'Sound on critical alerts',
    'ctl.wall': 'Wall screen',
    'ctl.logout': 'Sign out',
    'conn.connecting': 'Connecting…',
    'conn.live': 'Live',
    'conn.reconnecting': 'Disconnected — retrying in {s} s',
    'conn.retrying': 'Reconnecting…',
    'conn.banner': 'Connection to the server lost since {t}. Alerts may be out of date; reconnecting automatically.',
    'conn.denied': 'The API key is no longer valid. Please sign in again.',
    'role.admin': 'Administrator',
    'role.operator': 'Operator',
    'role.agency': 'Agency',
    'sev.critical': 'Critical',
    'sev.warning': 'Warning',
    'sev.info': 'Info',
    'state.firing': 'Firing',
    'state.acknowledged': 'Acknowledged',
    'state.resolved': 'Resolved',
    'state.open': 'Open',
    'filter.all': 'All',
    'filter.district': 'District',
    'filter.severity': 'Severity',
    'filter.state': 'State',
    'filter.kind': 'Kind',
    'filter.search': 'Find a device',
    'feed.title': 'Alerts',
    'feed.empty': 'No alert matches the filters.',
    'feed.loading': 'Loading alerts…',
    'feed.forbidden': 'This key may not read alerts.',
    'feed.more': '{n} more alerts',
    'storm.title': 'Alert storm: {n} devices',
    'alarm.many': '{n} new critical alerts, among them: {message}',
    'storm.firing': '{n} firing',
    'storm.acknowledged': '{n} acknowledged',
    'storm.resolved': '{n} resolved',
    'storm.worst': 'Worst',
    'storm.first': 'From',
    'storm.last': 'latest',
    'storm.expand': 'Show {n} alerts',
    'storm.collapse': 'Collapse',
    'storm.ack': 'Acknowledge group ({n})',
    'storm.ackTitle': 'Acknowledge the group of alerts',
    'storm.ackMessage': '{n} firing alerts · {rule} · {district}',
    'storm.ackConfirm': 'Acknowledge {n} alerts',
    'storm.ackDone': '{n} alerts acknowledged',
    'storm.ackSkipped': '{n} alerts no longer firing',
    'alert.repeats': 'Repeated {n} times',
    'alert.started': 'Started',
    'alert.lastSeen': 'Last seen',
    'alert.ackBy': 'Acknowledged by {who}',
    'alert.resolvedBy': 'Resolved by {who}',
    'alert.withdrawn': 'Withdrawn: late data shows it did not happen',
    'alert.silenced': 'Silenced',
    'alert.value': 'Value',
    'alert.noDistrict': 'No district',
    'action.ack': 'Acknowledge',
    'action.resolve': 'Resolve',
    'action.ackTitle': 'Acknowledge alert',
    'action.resolveTitle': 'Mark as resolved',
    'action.note': 'Note (optional)',
    'action.cancel': 'Cancel',
    'action.conflict': 'The alert is already “{state}”.',
    'action.failed': 'Could not do it: {detail}',
    'board.title': 'Situation by district',
    'board.normal': 'Normal',
    'board.devices': 'Devices',
    'board.online': 'online',
    'board.offline': 'offline',
    'board.open': 'Open',
    'wall.open': 'Open alerts',
    'wall.none': 'No open alerts',
    'devices.title': 'Devices',
    'devices.name': 'Device',
    'devices.kind': 'Kind',
    'devices.last': 'Latest value',
    'devices.seen': 'Last seen',
    'devices.status': 'Status',
    'devices.online': 'Online',
    'devices.offline': 'Offline',
    'devices.never': 'No data yet',
    'devices.count': '{n} devices',
    'device.back': '← All devices',
    'device.notFound': 'No device {id}.',
    'device.lastValues': 'Latest values',
    'device.history': 'History',
    'device.alerts': 'Recent alerts',
    'device.noAlerts': 'No alerts for this device yet.',
    'device.noValues': 'The device has not sent data yet.',
    'device.interval': 'Reports every',
    'device.tags': 'Tags',
    'device.location': 'Location',
    'unit.minutes': '{n} min',
    'chart.time': 'Time',
    'chart.avg': 'Average',
    'chart.min': 'Min',
    'chart.max': 'Max',
    'chart.gaps': '{n} buckets without data (left empty, not interpolated)',
    'chart.noGaps': 'No missing data in this range',
    'chart.empty': 'No data in this range.',
    'chart.missing': 'Chart library missing: run “make setup” on the server.',
    'chart.when': 'Alarm threshold {op} {v}',
    'chart.clear': 'Clear threshold {op} {v}',
    'chart.label': 'Chart of {kind}, {range}',
    'range.1h': '1 hour',
    'range.24h': '24 hours',
    'range.7d': '7 days',
    'time.now': 'just now',
    'kind.water_level': 'Water level',
    'kind.rainfall': 'Rainfall',
    'kind.salinity': 'Salinity',
    'kind.pm25': 'PM2.5',
    'kind.traffic_count': 'Traffic count',
    'kind.traffic_speed': 'Traffic speed',
    'kind.camera.fire': 'Camera: fire',
    'kind.camera.smoke': 'Camera: smoke',
    'kind.camera.crowd': 'Camera: crowd',
    'kind.camera.flooding': 'Camera: flooding',
    'kind.camera': 'Camera',
  },
};

const UNITS = {
  water_level: 'm', rainfall: 'mm', salinity: 'g/L', pm25: 'µg/m³',
  traffic_count: '', traffic_speed: 'km/h',
};

let lang = localStorage.getItem(LANG_KEY) === 'en' ? 'en' : 'vi';
const listeners = new Set();

export function getLang() {
  return lang;
}

export function setLang(next) {
  lang = next;
  localStorage.setItem(LANG_KEY, next);
  document.documentElement.lang = next;
  applyStatic(document);
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

export function t(key, vars = {}) {
  const text = STRINGS[lang][key] ?? STRINGS.vi[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ''));
}

export function kindLabel(kind) {
  if (!kind) return '';
  const key = `kind.${kind}`;
  return key in STRINGS[lang] ? t(key) : kind;
}

/** Labels in the static markup: data-i18n (text), data-i18n-title, data-i18n-aria. */
export function applyStatic(root) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nAria));
  }
  for (const el of root.querySelectorAll('[data-lang-toggle]')) {
    el.textContent = lang === 'vi' ? 'English' : 'Tiếng Việt';
    el.lang = lang === 'vi' ? 'en' : 'vi';
  }
}

const locale = () => (lang === 'vi' ? 'vi-VN' : 'en-GB');

const formatters = new Map();

/**
 * One Intl formatter per kind, locale and options: making one costs far more than using it,
 * and a storm's rows format thousands of times and numbers in one render.
 */
function formatter(Kind, localeName, options) {
  const key = `${Kind.name}|${localeName}|${JSON.stringify(options)}`;
  let made = formatters.get(key);
  if (!made) {
    made = new Kind(localeName, options);
    formatters.set(key, made);
  }
  return made;
}

export function formatNumber(value, digits = 2) {
  if (value == null || !Number.isFinite(value)) return '—';
  return formatter(Intl.NumberFormat, locale(), { maximumFractionDigits: digits }).format(value);
}

export function formatValue(kind, value) {
  if (value == null) return '—';
  if (kind && kind.startsWith('camera.')) return `${formatNumber(value * 100, 0)} %`;
  const unit = UNITS[kind] ?? '';
  return unit ? `${formatNumber(value)} ${unit}` : formatNumber(value);
}

function vnParts(date) {
  const parts = formatter(Intl.DateTimeFormat, 'en-GB', {
    timeZone: TZ, hour: '2-digit', minute: '2-digit', second: '2-digit', day: '2-digit',
    month: '2-digit', year: 'numeric', hourCycle: 'h23',
  }).formatToParts(date);
  return Object.fromEntries(parts.map((p) => [p.type, p.value]));
}

/** "14:05:09 23/11" in Vietnam time (the same in both languages); ``full`` adds the year. */
export function formatTime(iso, { full = false } = {}) {
  if (!iso) return '';
  const p = vnParts(new Date(iso));
  return `${p.hour}:${p.minute}:${p.second} ${p.day}/${p.month}${full ? `/${p.year}` : ''}`;
}

/** Chart axis ticks: "14:00", or "23/11" at midnight. */
export function formatTick(date) {
  const p = vnParts(date);
  return p.hour === '00' && p.minute === '00' ? `${p.day}/${p.month}` : `${p.hour}:${p.minute}`;
}

export function formatClock(date) {
  const time = formatter(Intl.DateTimeFormat, locale(), {
    timeZone: TZ, hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false,
  }).format(date);
  const day = formatter(Intl.DateTimeFormat, locale(), {
    timeZone: TZ, weekday: 'short', day: '2-digit', month: '2-digit', year: 'numeric',
  }).format(date);
  return { time, day };
}

export function formatRelative(iso, now = Date.now()) {
  if (!iso) return '';
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return t('time.now');
  const rtf = formatter(Intl.RelativeTimeFormat, locale(), { numeric: 'auto' });
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), 'minute');
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), 'hour');
  return rtf.format(Math.round(seconds / 86400), 'day');
}
