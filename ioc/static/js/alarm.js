// Drawing attention to a new critical alert: a screen-edge flash and an optional beep.

const SOUND_KEY = 'ioc.sound';
let audio = null;

export function soundOn() {
  return localStorage.getItem(SOUND_KEY) === 'on';
}

function context() {
  audio ??= new AudioContext();
  // Browsers start audio suspended until the user interacts with the page.
  if (audio.state === 'suspended') audio.resume();
  return audio;
}

export function setSound(on) {
  localStorage.setItem(SOUND_KEY, on ? 'on' : 'off');
  if (on) context();
}

// A page reloaded with sound on may play only after a click or key press.
for (const type of ['pointerdown', 'keydown']) {
  document.addEventListener(type, () => { if (soundOn()) context(); }, { once: true });
}

/** Three short 880 Hz beeps. */
export function beep() {
  if (!soundOn()) return;
  const ac = context();
  const start = ac.currentTime + 0.02;
  for (let i = 0; i < 3; i++) {
    const at = start + i * 0.28;
    const osc = ac.createOscillator();
    const gain = ac.createGain();
    osc.type = 'square';
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.25, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
    osc.connect(gain).connect(ac.destination);
    osc.start(at);
    osc.stop(at + 0.2);
  }
}

export function flashScreen() {
  const el = document.getElementById('flash');
  el.classList.remove('on');
  void el.offsetWidth; // restart the animation
  el.classList.add('on');
}
