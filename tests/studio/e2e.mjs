#!/usr/bin/env node
// End-to-end test of `trueshot studio` in Debian's chromium driven by playwright-core (issue 7):
// a person uploads real photos, reads the grades and tips, switches looks and moves the sliders
// (each preview is a fresh, decodable image), compares before/after, renders, reads the
// authenticity panel, downloads one file and the ZIP (both checked on disk: size, XMP
// disclosure), then "forget everything". Also, outside the browser: requests with a foreign Host
// header, from a foreign Origin or without the token are refused; SIGTERM removes the session
// directory. Every request the page makes must stay on the studio's loopback origin.
//
//   node tests/studio/e2e.mjs            (after scripts/setup.sh --test and ninja -C build)
//
// Prints `ok N - ...` / `not ok N - ...` lines; exits 1 on any failure. Environment: see lib.mjs;
// TS_STUDIO_KEEP=DIR keeps the downloads in DIR.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import {
  Tap, repo, photo, loadPlaywright, checkChromium, checkCommand, checkStudio, launch, startStudio,
  filesUnder,
} from './lib.mjs';

const T = new Tap('studio e2e');
const WAIT = 90000; // analysis of a photo on a loaded 2-core machine can take seconds

checkChromium();
checkCommand('vipsheader', 'libvips-tools');
const pw = loadPlaywright();
checkStudio();

const samplePath = path.join(repo, 'samples', 'sample.jpg');
const secondPath = photo('franck_02045.jpg');
const dlDir = process.env.TS_STUDIO_KEEP || fs.mkdtempSync(path.join(os.tmpdir(), 'ts-e2e-'));
fs.mkdirSync(dlDir, { recursive: true });

// raw HTTP (node's fetch will not send an arbitrary Host header)
function request(s, { method = 'GET', pathname = '/api/health', host = s.host, headers = {}, body = null,
  token = s.token } = {}) {
  return new Promise((resolve, reject) => {
    const h = { Host: host, ...headers };
    if (token) h['X-Trueshot-Token'] = token;
    if (body) h['Content-Length'] = Buffer.byteLength(body);
    const req = http.request({ host: '127.0.0.1', port: s.port, method, path: pathname, headers: h,
      setHost: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
        body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(60000, () => req.destroy(new Error(`${method} ${pathname}: no answer in 60 s`)));
    if (body) req.write(body);
    req.end();
  });
}
const show = (r) => `HTTP ${r.status} ${r.headers['content-type'] || ''} ${r.body.toString('utf8', 0, 300)}`;

function vipsheader(file) {
  const r = spawnSync('vipsheader', ['-f', 'width', file], { encoding: 'utf8' });
  const r2 = spawnSync('vipsheader', ['-f', 'height', file], { encoding: 'utf8' });
  if (r.status !== 0 || r2.status !== 0) return { error: (r.stderr || r2.stderr).trim() };
  return { width: Number(r.stdout), height: Number(r2.stdout) };
}

// the XMP packet of a file: searched in the raw bytes (JPEG APP1, PNG iTXt, WebP XMP chunk all
// keep it as plain UTF-8), falling back to libvips' view of it
function xmpOf(file) {
  const b = fs.readFileSync(file).toString('latin1');
  const i = b.indexOf('<x:xmpmeta');
  if (i >= 0) {
    const j = b.indexOf('</x:xmpmeta>', i);
    return Buffer.from(b.slice(i, j > i ? j + 12 : i + 65536), 'latin1').toString('utf8');
  }
  const r = spawnSync('vipsheader', ['-f', 'xmp-data', file], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : '';
}

// entries of a ZIP: `unzip -l` when installed, else the central directory read here
function zipEntries(file) {
  const u = spawnSync('unzip', ['-Z1', file], { encoding: 'utf8' });
  if (!u.error) {
    if (u.status !== 0) throw new Error(`unzip -Z1: ${u.stderr.trim() || u.stdout.trim()}`);
    const t = spawnSync('unzip', ['-tq', file], { encoding: 'utf8' });
    if (t.status !== 0) throw new Error(`unzip -t: ${t.stdout.trim()} ${t.stderr.trim()}`);
    return u.stdout.split('\n').filter(Boolean);
  }
  const b = fs.readFileSync(file);
  let e = -1;
  for (let i = b.length - 22; i >= Math.max(0, b.length - 65557); i--) {
    if (b.readUInt32LE(i) === 0x06054b50) { e = i; break; }
  }
  if (e < 0) throw new Error('no end-of-central-directory record');
  const n = b.readUInt16LE(e + 10), off = b.readUInt32LE(e + 16);
  const names = [];
  for (let k = 0, p = off; k < n; k++) {
    if (b.readUInt32LE(p) !== 0x02014b50) throw new Error(`bad central directory entry ${k}`);
    const nl = b.readUInt16LE(p + 28), xl = b.readUInt16LE(p + 30), cl = b.readUInt16LE(p + 32);
    names.push(b.toString('utf8', p + 46, p + 46 + nl));
    p += 46 + nl + xl + cl;
  }
  return names;
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

let studio, browser;
const previews = []; // {key, status, renderMs, ms (browser), bytes}
const foreign = []; // requests that left the studio's origin
const pageErrors = [];
let renderJson = null;

try {
  // small limits, so that the limit checks below need no big files
  studio = await startStudio({ args: ['--max-upload-mb', '2', '--max-megapixels', '20'] });
  T.note(`studio at ${studio.origin}, session directory ${studio.sessionDir}`);

  await T.step('session directory exists with mode 0700', () => {
    const st = fs.statSync(studio.sessionDir);
    const mode = (st.mode & 0o777).toString(8);
    return { ok: st.isDirectory() && mode === '700', note: `mode ${mode}` };
  });

  await T.step('GET /api/health answers 200 with the token', async () => {
    const r = await request(studio);
    return { ok: r.status === 200, detail: show(r) };
  });

  browser = await launch(pw);
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console.error: ${m.text()}`); });
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (!['data:', 'blob:', 'about:'].includes(u.protocol) && u.origin !== studio.origin) foreign.push(r.url());
  });
  const t0 = new Map();
  const inflight = new Set();
  page.on('request', (r) => {
    if (!r.url().includes('/api/preview')) return;
    t0.set(r, Date.now());
    inflight.add(r);
  });
  page.on('requestfinished', (r) => inflight.delete(r));
  page.on('requestfailed', (r) => inflight.delete(r));
  page.on('response', async (r) => {
    if (!r.url().includes('/api/preview')) return;
    const ms = Date.now() - (t0.get(r.request()) ?? Date.now());
    const rec = { key: new URL(r.url()).search, status: r.status(), renderMs: Number(r.headers()['x-render-ms']),
      ms, type: r.headers()['content-type'] };
    previews.push(rec);
  });

  // ---------------------------------------------------------------- the page
  await T.step('the page loads from the tokened URL and shows the drop zone', async () => {
    const resp = await page.goto(studio.url, { waitUntil: 'load' });
    await page.locator('#drop').waitFor({ state: 'visible' });
    return { ok: resp.status() === 200, note: `HTTP ${resp.status()}, title "${await page.title()}"` };
  });

  await T.step('the token cookie is set (ts_token) and the address bar token still works after reload', async () => {
    const cookies = await context.cookies(studio.origin);
    const c = cookies.find((x) => x.name === 'ts_token');
    await page.reload();
    await page.locator('#drop').waitFor({ state: 'visible' });
    return { ok: !!c && c.value === studio.token, note: c ? `HttpOnly=${c.httpOnly} SameSite=${c.sameSite}` : 'no cookie',
      detail: cookies };
  });

  await T.step('every button, input and select has an accessible name', async () => {
    const unnamed = await page.evaluate(() => {
      const out = [];
      for (const el of document.querySelectorAll('button, input, select, textarea')) {
        if (el.type === 'hidden') continue;
        const byLabel = el.labels && [...el.labels].some((l) => l.textContent.trim());
        const aria = el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.getAttribute('title');
        const text = el.tagName === 'BUTTON' && el.textContent.trim();
        // a file input hidden behind a labelled drop zone is fine when it is labelled itself
        if (!byLabel && !aria && !text) out.push(el.outerHTML.slice(0, 120));
      }
      return out;
    });
    return { ok: unnamed.length === 0, detail: unnamed };
  });

  // ---------------------------------------------------------------- upload and grades
  // waits for N graded cards (readiness number and tips on each; the list is sorted best first,
  // so a new card is found by its id, not its place) and returns the one whose id is not in SEEN
  const cardReady = async (n, seen = []) => {
    await page.waitForFunction((n) => {
      const cards = [...document.querySelectorAll('#photos .photo-card[data-id]')];
      return cards.length >= n && cards.every((c) =>
        /\d/.test(c.querySelector('.readiness')?.textContent || '') && c.querySelectorAll('ul.tips > li').length >= 1);
    }, n, { timeout: WAIT });
    return page.evaluate((seen) => {
      const c = [...document.querySelectorAll('#photos .photo-card[data-id]')].find((x) => !seen.includes(x.dataset.id));
      return { id: c.dataset.id, readiness: c.querySelector('.readiness').textContent.trim(),
        verdict: c.querySelector('.verdict')?.textContent.trim() ?? null,
        tips: [...c.querySelectorAll('ul.tips > li')].map((li) => li.textContent.trim()) };
    }, seen);
  };

  let card1, card2;
  await T.step('upload samples/sample.jpg through #photo-input: a graded card with a readiness number and tips', async () => {
    const t = Date.now();
    await page.setInputFiles('input#photo-input', samplePath);
    card1 = await cardReady(1);
    return { ok: true, note: `${Date.now() - t} ms; readiness "${card1.readiness}", verdict "${card1.verdict}", ${card1.tips.length} tip(s): ${card1.tips[0]}` };
  });

  await T.step('upload a second real photo (franck_02045.jpg): graded too, and one card carries the .best badge', async () => {
    await page.setInputFiles('input#photo-input', secondPath);
    card2 = await cardReady(2, [card1.id]);
    await page.waitForFunction(() => document.querySelectorAll('#photos .photo-card .best').length >= 1, null, { timeout: 15000 });
    const best = await page.evaluate(() => [...document.querySelectorAll('#photos .photo-card')]
      .filter((c) => { const b = c.querySelector('.best'); return b && b.offsetParent !== null; }).map((c) => c.dataset.id));
    return { ok: card2.id !== card1.id && best.length === 1, note: `readiness "${card2.readiness}", best ${best.join(',')}`, detail: { card2, best } };
  });

  let card3;
  await T.step('dropping a PNG (astronaut.png) on #drop uploads it: graded with tips too', async () => {
    const b64 = fs.readFileSync(photo('astronaut.png')).toString('base64');
    await page.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'astronaut.png', { type: 'image/png' }));
      const drop = document.querySelector('#drop');
      for (const type of ['dragenter', 'dragover', 'drop']) {
        drop.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
      }
    }, b64);
    card3 = await cardReady(3, [card1.id, card2.id]);
    return { ok: true, note: `readiness "${card3.readiness}", ${card3.tips.length} tip(s)` };
  });

  await T.step('GET /api/photos lists the photos with their checks and names a best one', async () => {
    const r = await request(studio, { pathname: '/api/photos' });
    const j = JSON.parse(r.body.toString());
    const ids = (j.photos || []).map((p) => String(p.id));
    return { ok: r.status === 200 && [card1, card2, card3].every((c) => !c || ids.includes(c.id)) && j.best != null,
      detail: show(r) };
  });

  await T.step('clicking the other photo card selects it and the preview shows that photo', async () => {
    const sel = await page.$$eval('#photos .photo-card[aria-pressed="true"]', (cs) => cs.map((c) => c.dataset.id));
    const other = [card1.id, card2.id].find((id) => !sel.includes(id)) || card1.id;
    await page.locator(`#photos .photo-card[data-id="${other}"]`).click();
    await page.waitForFunction((id) => {
      const i = document.querySelector('img#preview');
      return i && i.complete && i.naturalWidth > 0 && new URLSearchParams(i.dataset.key || '').get('photo') === id;
    }, other, { timeout: WAIT });
    const now = await page.$$eval('#photos .photo-card[aria-pressed="true"]', (cs) => cs.map((c) => c.dataset.id));
    return { ok: now.length === 1 && now[0] === other, note: `selected ${sel.join(',')} -> ${now.join(',')}` };
  });

  // ---------------------------------------------------------------- looks and previews
  const previewState = () => page.evaluate(() => {
    const img = document.querySelector('img#preview');
    return img ? { key: img.dataset.key || '', ms: img.dataset.ms ?? null, w: img.naturalWidth,
      complete: img.complete } : null;
  });
  // waits for a decoded preview whose key differs from PREV and matches the regular expression
  // RE (a string; NEG: must not match); strings, not functions, so a strict CSP on the page is fine
  const nextPreview = async (prev, re = '', what = 'preview', neg = false) => {
    const t = Date.now();
    await page.waitForFunction(({ prev, re, neg }) => {
      const img = document.querySelector('img#preview');
      if (!img || !img.complete || img.naturalWidth === 0) return false;
      const k = img.dataset.key || '';
      return k !== '' && k !== prev && img.dataset.ms !== undefined && (!re || new RegExp(re).test(k) !== neg);
    }, { prev, re, neg }, { timeout: WAIT }).catch((e) => {
      throw new Error(`no new decoded ${what} (data-key still "${prev}"): ${e.message.split('\n')[0]}`);
    });
    const s = await previewState();
    s.wallMs = Date.now() - t;
    return s;
  };
  // waits until no preview request has been in flight for 400 ms, then for the image to decode
  const settle = async () => {
    for (let quiet = 0, n = 0; quiet < 4 && n < WAIT / 100; n++) {
      await page.waitForTimeout(100);
      quiet = inflight.size === 0 ? quiet + 1 : 0;
    }
    await page.waitForFunction(() => { const i = document.querySelector('img#preview'); return i && i.complete && i.naturalWidth > 0; });
    return previewState();
  };

  let looks = [];
  await T.step('#looks offers the built-in looks (at least two button.look[data-style])', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#looks button.look[data-style]').length >= 2);
    looks = await page.$$eval('#looks button.look[data-style]', (bs) => bs.map((b) => b.dataset.style));
    const r = await request(studio, { pathname: '/api/styles' });
    const names = JSON.parse(r.body.toString()).styles.map((s) => s.name);
    return { ok: looks.every((l) => names.includes(l)), note: `${looks.length}: ${looks.join(', ')}`, detail: { looks, names } };
  });

  const previewMs = [];
  let state = (await previewState()) || { key: '' };
  const pressed0 = await page.$$eval('#looks button.look[aria-pressed="true"]', (bs) => bs.map((b) => b.dataset.style));
  for (const look of looks.filter((l) => !pressed0.includes(l)).slice(0, 2)) {
    await T.step(`click look "${look}": aria-pressed, a new preview for it decodes`, async () => {
      const t = Date.now();
      await page.locator(`#looks button.look[data-style="${look}"]`).click();
      const first = await nextPreview(state.key, '(^|[?&])style=', `preview of ${look}`);
      const s = await settle();
      s.wallMs = first.wallMs ?? Date.now() - t;
      const pressed = await page.getAttribute(`#looks button.look[data-style="${look}"]`, 'aria-pressed');
      const others = await page.$$eval('#looks button.look[aria-pressed="true"]', (bs) => bs.map((b) => b.dataset.style));
      const keyStyle = new URLSearchParams(s.key.replace(/^[^?]*\?/, '')).get('style');
      state = s;
      previewMs.push(Number(s.ms));
      return { ok: pressed === 'true' && others.length === 1 && keyStyle === look && s.w > 0,
        note: `${s.w}px wide, data-ms ${s.ms}, shown ${s.wallMs} ms after the click`,
        detail: { pressed, others, key: s.key } };
    });
  }

  await T.step('keyboard only: Enter on a focused look button and Space on a focused photo card select them', async () => {
    const pressed = await page.$$eval('#looks button.look[aria-pressed="true"]', (bs) => bs.map((b) => b.dataset.style));
    const look = looks.find((l) => !pressed.includes(l));
    await page.focus(`#looks button.look[data-style="${look}"]`);
    await page.keyboard.press('Enter');
    const lookOk = await page.getAttribute(`#looks button.look[data-style="${look}"]`, 'aria-pressed');
    const sel = await page.$$eval('#photos .photo-card[aria-pressed="true"]', (cs) => cs.map((c) => c.dataset.id));
    const other = [card1.id, card2.id].find((id) => !sel.includes(id));
    await page.focus(`#photos .photo-card[data-id="${other}"]`);
    await page.keyboard.press(' ');
    const cardOk = await page.getAttribute(`#photos .photo-card[data-id="${other}"]`, 'aria-pressed');
    await page.waitForFunction(({ id, look }) => {
      const i = document.querySelector('img#preview');
      const q = new URLSearchParams(i?.dataset.key || '');
      return i.complete && i.naturalWidth > 0 && q.get('photo') === id && q.get('style') === look;
    }, { id: other, look }, { timeout: WAIT });
    state = await settle();
    return { ok: lookOk === 'true' && cardOk === 'true', note: `look ${look}, photo ${other}` };
  });

  await T.step('moving #retouch with the keyboard gives a new preview with another retouch value', async () => {
    const before = new URLSearchParams(state.key.replace(/^[^?]*\?/, '')).get('retouch');
    const slider = page.locator('input#retouch[type=range]');
    await slider.focus();
    for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowRight');
    const s = await nextPreview(state.key, '(^|[?&])retouch=', 'retouch preview');
    const s2 = await settle(); // the last of the five key presses may still be in flight
    const after = new URLSearchParams(s2.key.replace(/^[^?]*\?/, '')).get('retouch');
    state = s2;
    previewMs.push(Number(s.ms));
    return { ok: after !== before && s2.w > 0, note: `retouch ${before} -> ${after}, data-ms ${s.ms}`, detail: s2 };
  });

  await T.step('#brightness and select#background each give a new preview', async () => {
    const q = (k) => new URLSearchParams(k.replace(/^[^?]*\?/, ''));
    await page.locator('input#brightness[type=range]').focus();
    await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('ArrowLeft');
    await nextPreview(state.key, '(^|[?&])brightness=', 'brightness preview');
    let s = await settle();
    const b1 = q(state.key).get('brightness'), b2 = q(s.key).get('brightness');
    state = s;
    previewMs.push(Number(s.ms));
    const opts = await page.$$eval('select#background option', (os) => os.map((o) => o.value));
    const cur = await page.inputValue('select#background');
    const other = opts.find((o) => o !== cur);
    await page.selectOption('select#background', other);
    await nextPreview(state.key, '(^|[?&])background=', 'background preview');
    s = await settle();
    const bg = q(s.key).get('background');
    state = s;
    previewMs.push(Number(s.ms));
    return { ok: b1 !== b2 && bg === other, note: `brightness ${b1} -> ${b2}; background ${cur} -> ${bg} (of ${opts.length})` };
  });

  await T.step('select#crop gives a new preview of another shape', async () => {
    const opts = await page.$$eval('select#crop option', (os) => os.map((o) => o.value));
    const cur = await page.inputValue('select#crop');
    const before = await page.evaluate(() => { const i = document.querySelector('img#preview'); return [i.naturalWidth, i.naturalHeight]; });
    const other = opts.find((o) => o !== cur);
    await page.selectOption('select#crop', other);
    await nextPreview(state.key, '(^|[?&])crop=', 'crop preview');
    const s = await settle();
    const after = await page.evaluate(() => { const i = document.querySelector('img#preview'); return [i.naturalWidth, i.naturalHeight]; });
    state = s;
    return { ok: s.w > 0, note: `crop ${cur} -> ${other}: ${before.join('x')} -> ${after.join('x')}` };
  });

  await T.step('#compare toggles before/after (aria-pressed, a before=1 preview, then back)', async () => {
    await page.locator('#compare').click();
    const on = await page.getAttribute('#compare', 'aria-pressed');
    await nextPreview(state.key, '(^|[?&])before=1', 'before preview');
    const s = await settle();
    state = s;
    await page.locator('#compare').click();
    const off = await page.getAttribute('#compare', 'aria-pressed');
    await nextPreview(state.key, '(^|[?&])before=1', 'after preview', true);
    const s2 = await settle();
    state = s2;
    return { ok: on === 'true' && off === 'false', note: `aria-pressed ${on} then ${off}` };
  });

  await T.step('every preview response was a 200 JPEG with X-Render-Ms', () => {
    const bad = previews.filter((p) => p.status !== 200 || !/image\/jpeg/.test(p.type || '') || !(p.renderMs >= 0));
    return { ok: previews.length > 0 && bad.length === 0, note: `${previews.length} preview request(s)`, detail: bad };
  });
  {
    const ok = previews.filter((p) => p.status === 200);
    T.note(`preview latency: data-ms median ${median(previewMs.filter(Number.isFinite))} ms (${previewMs.join(', ')}); ` +
      `X-Render-Ms median ${median(ok.map((p) => p.renderMs))} max ${Math.max(...ok.map((p) => p.renderMs))}; ` +
      `request->response median ${median(ok.map((p) => p.ms))} ms over ${ok.length}`);
  }

  // ---------------------------------------------------------------- render and authenticity
  await T.step('#render: /api/render answers, #authenticity shows the edit map, identity and the disclosure', async () => {
    const respP = page.waitForResponse((r) => r.url().includes('/api/render') && r.request().method() === 'POST', { timeout: WAIT });
    await page.locator('#render').click();
    const resp = await respP;
    renderJson = await resp.json().catch(() => null);
    if (![200, 201].includes(resp.status()) || !renderJson) return { ok: false, detail: `POST /api/render -> HTTP ${resp.status()} ${await resp.text()}` };
    await page.waitForFunction(() => {
      const m = document.querySelector('#authenticity img#edit-map');
      const id = document.querySelector('#authenticity #identity');
      const d = document.querySelector('#authenticity #disclosure');
      return m && m.complete && m.naturalWidth > 0 && id && id.textContent.trim() && d && d.textContent.trim();
    });
    const panel = await page.evaluate(() => ({
      identity: document.querySelector('#identity').textContent.trim().replace(/\s+/g, ' '),
      disclosure: document.querySelector('#disclosure').textContent.trim().replace(/\s+/g, ' '),
      editMap: document.querySelector('#edit-map').naturalWidth,
    }));
    const dst = renderJson.disclosure?.digital_source_type || '';
    const okDst = /compositeSynthetic|algorithmicallyEnhanced/.test(dst);
    const okPanel = /DigitalSourceType|digital source type/i.test(panel.disclosure) &&
      /compositeSynthetic|algorithmicallyEnhanced/.test(panel.disclosure);
    const okId = renderJson.identity && typeof renderJson.identity.pass === 'boolean';
    T.note(`render: ${renderJson.name} ${renderJson.width}x${renderJson.height} ${renderJson.bytes} bytes in ${renderJson.ms} ms (server); identity mean ${renderJson.identity?.mean} max ${renderJson.identity?.max} pass ${renderJson.identity?.pass}; DigitalSourceType ${dst}`);
    return { ok: okDst && okPanel && okId && renderJson.identity.pass === true,
      note: `identity "${panel.identity.slice(0, 80)}"`, detail: { renderJson, panel } };
  });

  await T.step('#files lists the rendered file', async () => {
    await page.waitForFunction(() => document.querySelectorAll('#files li, #files a, #files > *').length >= 1);
    const text = (await page.textContent('#files')).trim().replace(/\s+/g, ' ');
    const hrefs = await page.$$eval('#files a[href]', (as) => as.map((a) => a.getAttribute('href')));
    const named = renderJson && (text.includes(renderJson.name) || hrefs.some((h) => renderJson.url && h.includes(renderJson.url.split('?')[0])));
    return { ok: !!named, note: text.slice(0, 100), detail: { text, hrefs, renderJson } };
  });

  let dlFile;
  await T.step('#download saves the current look: a valid image of the rendered size', async () => {
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), page.locator('#download').click()]);
    const fail = await dl.failure();
    if (fail) return { ok: false, detail: `download failed: ${fail}` };
    dlFile = path.join(dlDir, dl.suggestedFilename() || 'download');
    await dl.saveAs(dlFile);
    const h = vipsheader(dlFile);
    const size = fs.statSync(dlFile).size;
    return { ok: !h.error && renderJson && h.width === renderJson.width && h.height === renderJson.height &&
      (!renderJson.bytes || renderJson.bytes === size),
      note: `${path.basename(dlFile)}: ${h.width}x${h.height}, ${size} bytes`, detail: { h, renderJson, size } };
  });

  await T.step('the downloaded file carries the XMP disclosure (Iptc4xmpExt:DigitalSourceType)', () => {
    const x = xmpOf(dlFile);
    const m = /Iptc4xmpExt:DigitalSourceType(?:="|>)([^"<]+)/.exec(x);
    const tool = /xmp:CreatorTool(?:="|>)([^"<]+)/.exec(x);
    return { ok: !!m && /compositeSynthetic|algorithmicallyEnhanced/.test(m[1]) &&
      (!renderJson?.disclosure?.digital_source_type || m[1].endsWith(renderJson.disclosure.digital_source_type)),
      note: m ? `${m[1]}; CreatorTool ${tool ? tool[1] : '?'}` : 'none', detail: x.slice(0, 1500) };
  });

  await T.step('the downloaded file carries no GPS and no camera serial', () => {
    const r = spawnSync('vipsheader', ['-a', dlFile], { encoding: 'utf8' });
    const bad = r.stdout.split('\n').filter((l) => /GPS|SerialNumber/i.test(l));
    return { ok: r.status === 0 && bad.length === 0, detail: bad };
  });

  await T.step('#download-all saves a valid ZIP holding the rendered file', async () => {
    const [dl] = await Promise.all([page.waitForEvent('download', { timeout: WAIT }), page.locator('#download-all').click()]);
    const fail = await dl.failure();
    if (fail) return { ok: false, detail: `download failed: ${fail}` };
    const zip = path.join(dlDir, dl.suggestedFilename() || 'all.zip');
    await dl.saveAs(zip);
    const names = zipEntries(zip);
    const want = renderJson?.name;
    return { ok: names.length >= 1 && (!want || names.some((n) => path.basename(n) === want)),
      note: `${path.basename(zip)}: ${names.length} entr${names.length === 1 ? 'y' : 'ies'} (${names.slice(0, 4).join(', ')})`,
      detail: { names, want } };
  });

  // ---------------------------------------------------------------- phone-sized window
  await T.step('phone-sized window (390x844): no horizontal scrolling, the looks and render button reachable', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const r = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth,
      render: document.querySelector('#render').getBoundingClientRect().width > 0 }));
    await page.setViewportSize({ width: 1280, height: 900 });
    return { ok: r.sw <= 392 && r.render, note: `scrollWidth ${r.sw}`, detail: r };
  });

  // ---------------------------------------------------------------- security (outside the browser)
  await T.step('Host: evil.example (valid token) is refused (DNS rebinding)', async () => {
    const r = await request(studio, { host: 'evil.example', pathname: '/api/photos' });
    const r2 = await request(studio, { host: `evil.example:${studio.port}`, pathname: '/' });
    return { ok: [403, 421].includes(r.status) && [403, 421].includes(r2.status),
      note: `HTTP ${r.status}, ${r2.status}`, detail: [show(r), show(r2)] };
  });

  await T.step('Host: localhost:PORT is accepted', async () => {
    const r = await request(studio, { host: `localhost:${studio.port}`, pathname: '/api/health' });
    return { ok: r.status === 200, detail: show(r) };
  });

  await T.step('cross-origin POST (Origin: http://evil.example, valid token) is refused with 403', async () => {
    const body = fs.readFileSync(samplePath);
    const r = await request(studio, { method: 'POST', pathname: '/api/photos', body,
      headers: { Origin: 'http://evil.example', 'X-Filename': 'evil.jpg', 'Content-Type': 'image/jpeg' } });
    const r2 = await request(studio, { method: 'POST', pathname: '/api/forget', body: '{}',
      headers: { Origin: `http://localhost:${studio.port + 1}`, 'Content-Type': 'application/json' } });
    return { ok: r.status === 403 && r2.status === 403, note: `HTTP ${r.status}, ${r2.status}`, detail: [show(r), show(r2)] };
  });

  await T.step('no token, or a wrong one, is refused with 403 (page and API)', async () => {
    const a = await request(studio, { pathname: '/api/photos', token: null });
    const b = await request(studio, { pathname: '/api/photos', token: 'x' + studio.token.slice(1) });
    const c = await request(studio, { pathname: '/', token: null });
    const d = await request(studio, { pathname: '/?token=wrong', token: null });
    return { ok: [a, b, c, d].every((r) => r.status === 403), note: `HTTP ${a.status}, ${b.status}, ${c.status}, ${d.status}`,
      detail: [a, b, c, d].map(show) };
  });

  await T.step('limits: a non-image, a body over --max-upload-mb 2 and a 25-MP image (--max-megapixels 20) get 4xx with a message', async () => {
    const post = (body, name) => request(studio, { method: 'POST', pathname: '/api/photos', body,
      headers: { 'X-Filename': name, 'Content-Type': 'application/octet-stream', Origin: studio.origin } });
    const big = path.join(dlDir, 'big.jpg');
    const v = spawnSync('vips', ['black', big, '5000', '5000', '--bands', '3'], { encoding: 'utf8' });
    if (v.status !== 0) throw new Error(`vips black: ${v.stderr}`);
    const rs = [await post(Buffer.from('this is not an image\n'.repeat(50)), 'notes.txt'),
      await post(Buffer.alloc(3 * 1024 * 1024, 0x41), 'huge.jpg'),
      await post(fs.readFileSync(big), 'big.jpg')];
    const msgs = rs.map((r) => { try { return JSON.parse(r.body.toString()).error || ''; } catch { return r.body.toString().slice(0, 100); } });
    return { ok: rs.every((r) => r.status >= 400 && r.status < 500) && msgs.every((m) => m.length > 10),
      note: rs.map((r, i) => `${r.status} "${msgs[i].slice(0, 70)}"`).join('; '), detail: rs.map(show) };
  });

  await T.step('the token also works as the ts_token cookie', async () => {
    const r = await request(studio, { pathname: '/api/photos', token: null, headers: { Cookie: `ts_token=${studio.token}` } });
    return { ok: r.status === 200, detail: show(r) };
  });

  await T.step('the page made no request outside its own loopback origin', () =>
    ({ ok: foreign.length === 0, detail: foreign }));

  // ---------------------------------------------------------------- forget
  await T.step('"Forget everything": dialog, confirm, done; the session directory holds no file', async () => {
    const before = filesUnder(studio.sessionDir).length;
    await page.locator('#forget').click();
    await page.locator('dialog#forget-dialog').waitFor({ state: 'visible' });
    const respP = page.waitForResponse((r) => r.url().includes('/api/forget'), { timeout: WAIT });
    await page.locator('#forget-confirm').click();
    const resp = await respP;
    const j = await resp.json().catch(() => ({}));
    await page.locator('#forget-done').waitFor({ state: 'visible' });
    const left = filesUnder(studio.sessionDir);
    const cards = await page.$$eval('#photos .photo-card', (c) => c.length);
    const api = JSON.parse((await request(studio, { pathname: '/api/photos' })).body.toString());
    return { ok: resp.status() === 200 && left.length === 0 && cards === 0 && (api.photos || []).length === 0,
      note: `${before} file(s) before, forgotten ${j.forgotten}, ${left.length} left`, detail: { left, cards, api } };
  });

  await T.step('no page errors or console errors', () => ({ ok: pageErrors.length === 0, detail: pageErrors }));

  await browser.close();
  browser = null;

  // ---------------------------------------------------------------- exit
  await T.step('after a new upload, SIGTERM: the server exits and its session directory is gone', async () => {
    const up = await request(studio, { method: 'POST', pathname: '/api/photos', body: fs.readFileSync(samplePath),
      headers: { 'X-Filename': 'sample.jpg', 'Content-Type': 'image/jpeg', Origin: studio.origin } });
    const had = filesUnder(studio.sessionDir).length;
    const ex = await studio.stop('SIGTERM', 15000);
    const gone = !fs.existsSync(studio.sessionDir);
    return { ok: up.status === 201 && had > 0 && !ex.timedOut && gone,
      note: `upload HTTP ${up.status}, ${had} file(s), exit ${JSON.stringify(ex)}`, detail: show(up) };
  });
} catch (e) {
  T.ok(false, 'the test ran to the end', e.stack || String(e));
} finally {
  if (browser) await browser.close().catch(() => {});
  if (studio) {
    await studio.stop('SIGTERM', 5000);
    if (T.failed) {
      const tail = studio.stderr().split('\n').slice(-25).join('\n');
      T.note(`server stderr (last lines):\n# ${tail.replace(/\n/g, '\n# ')}`);
    }
  }
  if (!process.env.TS_STUDIO_KEEP) fs.rmSync(dlDir, { recursive: true, force: true });
}
process.exit(T.end());
