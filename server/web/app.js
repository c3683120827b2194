// trueshot studio page: plain JavaScript, no framework, nothing loaded from elsewhere.
// The contract with the server is server/API.md.
'use strict';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get('token') || sessionStorage.getItem('ts_token') || '';
if (params.has('token')) {
  sessionStorage.setItem('ts_token', token);
  // Keep the secret out of the address bar, history and screenshots.
  history.replaceState(null, '', location.pathname);
}

const state = {
  styles: [],
  style: null,
  photo: null,
  best: null,
  before: false,
  retouchTouched: false,
  rendered: new Map(), // look key -> render result
  previewAbort: null,
  previewTimer: 0,
  live: false,
  stream: null,
};

function status(msg, isError) {
  const s = $('status');
  s.textContent = msg || '';
  s.classList.toggle('error', !!isError);
}

async function api(path, opts = {}) {
  const headers = Object.assign({ 'X-Trueshot-Token': token }, opts.headers || {});
  let r;
  try {
    r = await fetch(path, Object.assign({}, opts, { headers, credentials: 'same-origin' }));
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new Error('The studio does not answer: it may have stopped. Start `trueshot studio` again.');
  }
  if (!r.ok) {
    let msg = r.status + ' ' + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return r;
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

function verdictClass(v) {
  return v === 'good' ? 'v-good' : v === 'could be better' ? 'v-could' : 'v-not';
}

// ---- photos ----

async function uploadBlob(blob, name) {
  status('Checking ' + name + '…');
  try {
    const r = await api('/api/photos', {
      method: 'POST',
      headers: { 'X-Filename': encodeURIComponent(name), 'Content-Type': 'application/octet-stream' },
      body: blob,
    });
    const p = await r.json();
    status(name + ': readiness ' + p.check.score + ' (' + p.check.verdict + ').');
    $('forget-done').hidden = true;
    if (!state.photo) state.photo = p.id;
    return p;
  } catch (e) {
    status(name + ': ' + e.message, true);
    return null;
  }
}

async function uploadFiles(files) {
  for (const f of files) await uploadBlob(f, f.name);
  await refreshPhotos();
}

async function refreshPhotos() {
  let data;
  try {
    data = await (await api('/api/photos')).json();
  } catch (e) {
    status(e.message, true);
    return;
  }
  state.best = data.best;
  state.photos = data.photos;
  const why = $('best-reason');
  why.hidden = !data.best_reason;
  why.textContent = data.best_reason ? 'Best photo: ' + data.best_reason + '.' : '';
  const ids = data.photos.map((p) => p.id);
  if (!ids.includes(state.photo)) state.photo = data.best || ids[0] || null;
  const list = $('photos');
  list.replaceChildren();
  for (const p of data.photos) {
    const c = p.check;
    const tips = el('ul', { class: 'tips' });
    for (const comp of c.components) if (comp.tip) tips.append(el('li', { text: comp.tip }));
    const card = el('li', {
      class: 'photo-card' + (p.id === state.photo ? ' selected' : ''),
      'data-id': p.id,
      tabindex: '0',
      role: 'button',
      'aria-pressed': p.id === state.photo ? 'true' : 'false',
      'aria-label': p.name + ', readiness ' + c.score + ', ' + c.verdict,
    },
    el('img', { src: '/api/photos/' + p.id + '/thumb', alt: '' }),
    el('div', { class: 'name', text: p.name }),
    el('div', {},
      el('span', { class: 'readiness ' + verdictClass(c.verdict), text: String(c.score) }),
      el('span', { class: 'verdict ' + verdictClass(c.verdict), text: c.verdict })),
    p.best ? el('div', {}, el('span', { class: 'best', text: 'Best' })) : el('div'),
    tips);
    const remove = el('button', { type: 'button', class: 'remove', 'aria-label': 'Remove ' + p.name, text: '×' });
    remove.addEventListener('click', async (ev) => {
      ev.stopPropagation();
      try { await api('/api/photos/' + p.id, { method: 'DELETE' }); } catch (e) { status(e.message, true); }
      refreshPhotos();
    });
    card.append(remove);
    const pick = () => selectPhoto(p.id);
    card.addEventListener('click', pick);
    card.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); pick(); }
    });
    list.append(card);
  }
  showSuggestedBackdrops();
  if (!data.photos.length) {
    $('preview').removeAttribute('src');
    $('preview-caption').textContent = 'Add a photo to see a preview.';
  }
  schedulePreview();
}

// The backdrop colours the check suggests for the chosen photo's clothes and hair.
function showSuggestedBackdrops() {
  const group = $('suggested');
  const p = (state.photos || []).find((x) => x.id === state.photo);
  const list = (p && p.check.backdrops) || [];
  const sel = $('background');
  const keep = sel.value;
  group.replaceChildren(...list.map((b) => el('option', { value: b.rgb, text: b.name + ' (' + b.rgb + ')' })));
  group.hidden = !list.length;
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep; else sel.value = 'style';
}

function selectPhoto(id) {
  state.photo = id;
  showSuggestedBackdrops();
  for (const c of document.querySelectorAll('.photo-card')) {
    const on = c.dataset.id === id;
    c.classList.toggle('selected', on);
    c.setAttribute('aria-pressed', on ? 'true' : 'false');
  }
  schedulePreview();
}

// ---- looks and controls ----

async function loadStyles() {
  const data = await (await api('/api/styles')).json();
  state.styles = data.styles;
  const box = $('looks');
  box.replaceChildren();
  for (const s of data.styles) {
    const b = el('button', { type: 'button', class: 'look', 'data-style': s.name, 'aria-pressed': 'false', title: s.description, text: s.title });
    b.addEventListener('click', () => selectStyle(s.name));
    box.append(b);
  }
  const first = data.styles.find((s) => s.name === 'linkedin') || data.styles[0];
  if (first) selectStyle(first.name);
}

function selectStyle(name) {
  state.style = name;
  for (const b of document.querySelectorAll('.look')) b.setAttribute('aria-pressed', b.dataset.style === name ? 'true' : 'false');
  const s = state.styles.find((x) => x.name === name);
  if (s && !state.retouchTouched) {
    $('retouch').value = s.retouch;
    $('retouch-value').textContent = "look's own (" + s.retouch + ')';
  }
  schedulePreview();
}

function lookQuery(extra) {
  const q = new URLSearchParams({
    photo: state.photo,
    style: state.style,
    background: $('background').value,
    crop: $('crop').value,
    brightness: $('brightness').value,
  });
  if (state.retouchTouched) q.set('retouch', $('retouch').value);
  if (extra) for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q;
}

function lookBody() {
  const b = {
    photo: state.photo,
    style: state.style,
    background: $('background').value,
    crop: $('crop').value,
    brightness: Number($('brightness').value),
    format: 'jpeg',
  };
  if (state.retouchTouched) b.retouch = Number($('retouch').value);
  return b;
}

function lookKey() {
  return JSON.stringify(lookBody());
}

function schedulePreview() {
  clearTimeout(state.previewTimer);
  state.previewTimer = setTimeout(loadPreview, 60);
}

async function loadPreview() {
  if (!state.photo || !state.style) return;
  if (state.previewAbort) state.previewAbort.abort();
  const ctl = new AbortController();
  state.previewAbort = ctl;
  const q = lookQuery(state.before ? { before: '1' } : null);
  const key = q.toString();
  const t0 = performance.now();
  try {
    const r = await api('/api/preview?' + key, { signal: ctl.signal });
    const blob = await r.blob();
    if (ctl.signal.aborted) return;
    const img = $('preview');
    const url = URL.createObjectURL(blob);
    await new Promise((resolve) => {
      img.onload = resolve;
      img.onerror = resolve;
      img.src = url;
    });
    if (img.dataset.url) URL.revokeObjectURL(img.dataset.url);
    img.dataset.url = url;
    const ms = performance.now() - t0;
    img.dataset.key = key;
    img.dataset.ms = ms.toFixed(1);
    img.alt = (state.before ? 'The original, framed' : 'Preview of the ' + state.style + ' look');
    $('preview-caption').textContent = (state.before ? 'Before (original, same framing)' : 'After') +
      ' · preview in ' + Math.round(ms) + ' ms (server ' + (r.headers.get('X-Render-Ms') || '?') + ' ms)';
  } catch (e) {
    if (e.name === 'AbortError') return;
    status(e.message, true);
  }
}

// ---- full-size files and the authenticity panel ----

function showAuthenticity(res) {
  const map = $('edit-map');
  if (res.edit_map_url) map.src = res.edit_map_url; else map.removeAttribute('src');
  const id = $('identity');
  id.textContent = (res.identity.pass ? 'Passed: ' : 'Failed: ') + res.identity.message;
  id.className = res.identity.pass ? 'pass' : 'fail';
  const d = $('disclosure');
  d.replaceChildren(
    el('p', {}, 'Digital source type: ', el('strong', { text: res.disclosure.digital_source_type })),
    el('p', { text: 'Creator tool: ' + res.disclosure.creator_tool }),
    el('p', { text: 'Edits listed in the file:' }));
  const ul = el('ul');
  for (const e of res.disclosure.edits) ul.append(el('li', { text: e }));
  d.append(ul);
}

async function renderCurrent() {
  if (!state.photo || !state.style) {
    status('Add a photo and pick a look first.', true);
    return null;
  }
  const key = lookKey();
  status('Making the full-size file and checking it…');
  $('render').disabled = true;
  try {
    const r = await api('/api/render', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: key,
    });
    const res = await r.json();
    state.rendered.set(key, res);
    showAuthenticity(res);
    const a = el('a', { href: res.url, download: res.name, text: res.name });
    $('files').append(el('li', {}, a, ' ' + res.width + '×' + res.height + ', ' + Math.round(res.bytes / 1024) + ' KB'));
    status(res.name + ' is ready (' + res.width + '×' + res.height + ').');
    return res;
  } catch (e) {
    status(e.message, true);
    return null;
  } finally {
    $('render').disabled = false;
  }
}

function clickDownload(href, name) {
  const a = el('a', { href, download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

async function downloadCurrent() {
  const res = state.rendered.get(lookKey()) || await renderCurrent();
  if (res) clickDownload(res.url, res.name);
}

async function downloadAll() {
  if (!$('files').children.length) {
    status('Make at least one full-size file first.', true);
    return;
  }
  clickDownload('/api/zip', 'trueshot-headshots.zip');
}

// ---- webcam with live coaching ----

async function startCamera() {
  if (state.live) return stopCamera();
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false });
  } catch (e) {
    status('The camera could not be started: ' + e.message, true);
    return;
  }
  $('camera-view').hidden = false;
  const v = $('camera');
  v.srcObject = state.stream;
  await v.play().catch(() => {});
  state.live = true;
  $('camera-start').textContent = 'Stop camera';
  $('capture').disabled = false;
  liveLoop();
}

function stopCamera() {
  state.live = false;
  if (state.stream) for (const t of state.stream.getTracks()) t.stop();
  state.stream = null;
  $('camera').srcObject = null;
  $('camera-view').hidden = true;
  $('camera-start').textContent = 'Start camera';
  $('capture').disabled = true;
  const o = $('camera-overlay');
  o.getContext('2d').clearRect(0, 0, o.width, o.height);
}

function frameBlob(video, w, h, quality) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  c.getContext('2d').drawImage(video, 0, 0, w, h);
  return new Promise((resolve) => c.toBlob(resolve, 'image/jpeg', quality));
}

function drawOverlay(res, fw, fh) {
  const o = $('camera-overlay');
  const W = o.clientWidth, H = o.clientHeight;
  o.width = W;
  o.height = H;
  const g = o.getContext('2d');
  g.clearRect(0, 0, W, H);
  if (!res.face) return;
  // The video is drawn with object-fit: contain.
  const s = Math.min(W / fw, H / fh), ox = (W - fw * s) / 2, oy = (H - fh * s) / 2;
  const ok = !res.tips.length;
  g.lineWidth = 3;
  g.strokeStyle = ok ? '#2fbf5b' : '#f0b429';
  g.strokeRect(ox + res.face.x * s, oy + res.face.y * s, res.face.w * s, res.face.h * s);
}

async function liveLoop() {
  const v = $('camera');
  const times = [];
  // One frame in flight; the next one is grabbed and encoded while the server works on it.
  const grab = () => {
    const w = 640, h = Math.round(640 * v.videoHeight / v.videoWidth); // 640x480 for 4:3
    return frameBlob(v, w, h, 0.8).then((blob) => ({ blob, w, h }));
  };
  let next = null;
  while (state.live) {
    if (!v.videoWidth) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    const frame = await (next || grab());
    next = null;
    try {
      const pending = api('/api/live', { method: 'POST', headers: { 'Content-Type': 'image/jpeg' }, body: frame.blob });
      next = grab();
      const res = await (await pending).json();
      if (!state.live) break;
      drawOverlay(res, frame.w, frame.h);
      const tips = $('live-tips');
      tips.replaceChildren(...(res.tips.length ? res.tips : ['Looks good: take the photo.']).map((t) => el('li', { text: t })));
      const now = performance.now();
      times.push(now);
      while (times.length && now - times[0] > 2000) times.shift();
      if (times.length > 1) $('live-rate').textContent = ((times.length - 1) * 1000 / (now - times[0])).toFixed(1) + '/s';
    } catch (e) {
      status('Live coaching: ' + e.message, true);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function capture() {
  const v = $('camera');
  if (!v.videoWidth) return;
  const blob = await frameBlob(v, v.videoWidth, v.videoHeight, 0.92);
  const name = 'webcam-' + new Date().toISOString().replace(/[:.]/g, '-') + '.jpg';
  const p = await uploadBlob(blob, name);
  if (p) state.photo = p.id;
  await refreshPhotos();
}

// ---- forget ----

async function forgetEverything() {
  try {
    const r = await api('/api/forget', { method: 'POST' });
    const res = await r.json();
    state.photo = null;
    state.rendered.clear();
    state.photos = [];
    showSuggestedBackdrops();
    $('best-reason').hidden = true;
    $('photos').replaceChildren();
    $('files').replaceChildren();
    $('preview').removeAttribute('src');
    $('edit-map').removeAttribute('src');
    $('identity').textContent = '–';
    $('disclosure').textContent = '–';
    $('preview-caption').textContent = 'Add a photo to see a preview.';
    $('forget-done').hidden = false;
    status('Forgot everything: ' + res.forgotten + ' files deleted.');
  } catch (e) {
    status(e.message, true);
  }
}

// ---- wiring ----

function wire() {
  const drop = $('drop'), input = $('photo-input');
  input.addEventListener('change', () => { uploadFiles([...input.files]); input.value = ''; });
  drop.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); input.click(); }
  });
  for (const t of ['dragenter', 'dragover']) drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  for (const t of ['dragleave', 'drop']) drop.addEventListener(t, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => { ev.preventDefault(); uploadFiles([...ev.dataTransfer.files]); });

  $('background').addEventListener('change', schedulePreview);
  $('crop').addEventListener('change', schedulePreview);
  $('retouch').addEventListener('input', () => {
    state.retouchTouched = true;
    $('retouch-value').textContent = $('retouch').value;
    schedulePreview();
  });
  $('brightness').addEventListener('input', () => {
    const b = Number($('brightness').value);
    $('brightness-value').textContent = (b > 0 ? '+' : '') + b.toFixed(1);
    schedulePreview();
  });
  $('compare').addEventListener('click', () => {
    state.before = !state.before;
    $('compare').setAttribute('aria-pressed', state.before ? 'true' : 'false');
    loadPreview();
  });
  $('render').addEventListener('click', renderCurrent);
  $('download').addEventListener('click', downloadCurrent);
  $('download-all').addEventListener('click', downloadAll);
  $('camera-start').addEventListener('click', startCamera);
  $('capture').addEventListener('click', capture);
  const dlg = $('forget-dialog');
  $('forget').addEventListener('click', () => dlg.showModal());
  dlg.addEventListener('close', () => { if (dlg.returnValue === 'confirm') forgetEverything(); });
}

async function main() {
  wire();
  if (!token) status('Open the address that `trueshot studio` printed (it carries this session\'s key).', true);
  try {
    await loadStyles();
    await refreshPhotos();
    status('Ready. Add photos to begin.');
  } catch (e) {
    status(e.message, true);
  }
}

main();
