#!/usr/bin/env node
// Live coaching in `trueshot studio` with chromium's fake camera (issue 7): a .y4m video made
// from a real photo (make_y4m.mjs, franck_02045.jpg: one man in front of a blue backdrop) is the
// webcam. The test clicks #camera-start, lets it run, and checks that the coaching is live:
// /api/live answers with a face, the face box is drawn on canvas#camera-overlay, #live-tips
// lists tips, #live-rate shows the update rate, and the rate of /api/live answers seen by the
// page over a measuring window is at least LIVE_MIN_RATE per second. #capture adds the frame as
// a photo, which is graded like an upload.
//
//   node tests/studio/live.mjs
//
// Environment (and lib.mjs): LIVE_MIN_RATE (default 10: the issue's "at least 10 times a
// second"), LIVE_WINDOW_S (default 5), LIVE_WINDOWS (default 3: measuring windows tried until
// one reaches LIVE_MIN_RATE; the best counts), LIVE_PHOTO (default franck_02045.jpg from the cache).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Tap, photo, loadPlaywright, checkChromium, checkCommand, checkStudio, launch, startStudio,
  fakeCameraArgs,
} from './lib.mjs';
import { makeY4m } from './make_y4m.mjs';

const T = new Tap('studio live coaching');
const WAIT = 60000;
const MIN_RATE = Number(process.env.LIVE_MIN_RATE ?? 10);
const WINDOW_S = Number(process.env.LIVE_WINDOW_S ?? 5);
const MAX_WINDOWS = Number(process.env.LIVE_WINDOWS ?? 3);

checkChromium();
checkCommand('vips', 'libvips-tools');
const pw = loadPlaywright();
checkStudio();

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-live-'));
const y4m = path.join(work, 'camera.y4m');
const src = process.env.LIVE_PHOTO || photo('franck_02045.jpg');
let studio, browser;

try {
  await T.step('a 640x480, 30-frame, 30 fps .y4m is made from a real photo', () => {
    const r = makeY4m(src, y4m, { width: 640, height: 480, frames: 30, fps: 30 });
    return { ok: r.bytes === 30 * (6 + 640 * 480 * 1.5) + fs.readFileSync(y4m).indexOf(10) + 1,
      note: `${path.basename(src)} -> ${r.bytes} bytes` };
  });

  studio = await startStudio();
  browser = await launch(pw, fakeCameraArgs(y4m));
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['camera'], { origin: studio.origin });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`console.error: ${m.text()}`); });

  const live = []; // {t, status, face, tips, ms, bytes}
  const requests = [];
  page.on('request', async (r) => {
    if (!r.url().includes('/api/live')) return;
    const rec = { t: Date.now(), bytes: r.postDataBuffer()?.length ?? 0 };
    requests.push(rec);
    if (!rec.bytes) rec.bytes = Number((await r.allHeaders().catch(() => ({})))['content-length'] || 0);
  });
  page.on('response', async (r) => {
    if (!r.url().includes('/api/live')) return;
    const rec = { t: Date.now(), status: r.status() };
    live.push(rec);
    try {
      const j = await r.json();
      Object.assign(rec, { face: j.face ?? null, tips: j.tips ?? [], ms: j.ms, distance: j.distance, light: j.light,
        yaw: j.yaw, pitch: j.pitch, roll: j.roll });
    } catch (e) {
      rec.error = String(e.message || e);
    }
  });

  await page.goto(studio.url);
  await page.locator('#camera-start').waitFor({ state: 'visible' });

  let started = 0;
  await T.step('#camera-start: video#camera plays the fake camera', async () => {
    await page.locator('#camera-start').click();
    await page.waitForFunction(() => {
      const v = document.querySelector('video#camera');
      return v && v.readyState >= 2 && v.videoWidth > 0 && !v.paused;
    });
    started = Date.now();
    const size = await page.evaluate(() => { const v = document.querySelector('video#camera'); return `${v.videoWidth}x${v.videoHeight}`; });
    return { ok: true, note: size };
  });

  await page.waitForTimeout(3000); // warm up: the first frames also warm the server's models

  // measuring windows: up to LIVE_WINDOWS (3) of LIVE_WINDOW_S seconds each, stopping at the
  // first that reaches MIN_RATE; the best one counts (a shared, loaded machine can stall a window)
  const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(p * a.length))] : NaN);
  const windows = [];
  for (let k = 0; k < MAX_WINDOWS; k++) {
    const w0 = Date.now(), n0 = live.length;
    const shown = [];
    const t1 = setInterval(async () => {
      try { shown.push((await page.textContent('#live-rate')).trim()); } catch { /* page busy */ }
    }, 1000);
    await page.waitForTimeout(WINDOW_S * 1000);
    clearInterval(t1);
    const w1 = Date.now(), n1 = live.length;
    const win = live.slice(n0, n1);
    const ms = win.filter((r) => r.status === 200).map((r) => Number(r.ms)).filter(Number.isFinite).sort((x, y) => x - y);
    const gaps = win.slice(1).map((r, i) => r.t - win[i].t).sort((x, y) => x - y);
    const frameBytes = requests.slice(-Math.max(1, win.length)).map((r) => r.bytes).filter((x) => x > 0);
    const w = { rate: ((n1 - n0) * 1000) / (w1 - w0), win, load: os.loadavg()[0] };
    windows.push(w);
    T.note(`live window ${k + 1}: ${n1 - n0} /api/live answers in ${((w1 - w0) / 1000).toFixed(1)} s = ${w.rate.toFixed(1)}/s; ` +
      `server ms p50 ${pct(ms, 0.5)} p95 ${pct(ms, 0.95)}; gap between answers p50 ${pct(gaps, 0.5)} ms, p95 ${pct(gaps, 0.95)} ms; ` +
      (frameBytes.length ? `frame upload ~${Math.round(frameBytes.reduce((x, y) => x + y, 0) / frameBytes.length)} bytes; ` : '') +
      `#live-rate showed ${JSON.stringify(shown)}; load average ${w.load.toFixed(1)} on ${os.cpus().length} CPUs`);
    if (w.rate >= MIN_RATE) break;
  }
  const best = windows.reduce((x, y) => (y.rate > x.rate ? y : x));
  const rate = best.rate;
  const okWin = best.win.filter((r) => r.status === 200);
  const withFace = okWin.filter((r) => r.face && r.face.w > 0 && r.face.h > 0);

  await T.step('/api/live answers are all 200 JSON', () => {
    const bad = live.filter((r) => r.status !== 200 || r.error);
    return { ok: live.length > 0 && bad.length === 0, note: `${live.length} answers since start`, detail: bad.slice(0, 5) };
  });

  await T.step('the answers carry a face box (one face in the video) in most frames', () => {
    const f = withFace[withFace.length - 1]?.face;
    return { ok: okWin.length > 0 && withFace.length >= 0.8 * okWin.length,
      note: `${withFace.length}/${okWin.length} with a face${f ? `, last ${JSON.stringify(f)}` : ''}`,
      detail: okWin.slice(-3) };
  });

  await T.step(`live update rate at least ${MIN_RATE}/s (best of ${windows.length} ${WINDOW_S}-s window(s))`, () =>
    ({ ok: rate >= MIN_RATE && rate > 0, note: `${windows.map((w) => w.rate.toFixed(1) + '/s').join(', ')}`,
      detail: `load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} CPUs` }));

  await T.step('#live-rate shows a rate like "12.3/s"', async () => {
    const txt = (await page.textContent('#live-rate')).trim();
    const m = /(\d+(?:\.\d+)?)\s*\/\s*s/.exec(txt);
    return { ok: !!m && Number(m[1]) > 0, note: `"${txt}"` };
  });

  await T.step('#live-tips lists at least one tip', async () => {
    await page.waitForFunction(() => {
      const el = document.querySelector('#live-tips');
      return el && (el.querySelectorAll('li').length || el.children.length) >= 1 && el.textContent.trim() !== '';
    }, null, { timeout: 10000 });
    const tips = await page.$$eval('#live-tips li, #live-tips > :not(ul)', (ls) => ls.map((l) => l.textContent.trim()).filter(Boolean));
    return { ok: tips.length >= 1, note: tips.slice(0, 3).join(' | ') };
  });

  await T.step('the face box is drawn on canvas#camera-overlay', async () => {
    const r = await page.evaluate(() => {
      const c = document.querySelector('canvas#camera-overlay');
      if (!c || !c.width || !c.height) return { drawn: 0, size: null };
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return { drawn: n, size: `${c.width}x${c.height}` };
    });
    return { ok: r.drawn > 50 && r.drawn < 0.9 * 1e9, note: `${r.drawn} painted pixels on ${r.size}` };
  });

  await T.step('#capture adds the frame as a photo, graded with tips', async () => {
    const before = await page.$$eval('#photos .photo-card[data-id]', (c) => c.length);
    await page.locator('#capture').click();
    await page.waitForFunction((n) => {
      const cards = [...document.querySelectorAll('#photos .photo-card[data-id]')];
      return cards.length > n && cards.every((c) =>
        /\d/.test(c.querySelector('.readiness')?.textContent || '') && c.querySelectorAll('ul.tips > li').length >= 1);
    }, before);
    const card = await page.evaluate(() => {
      const cs = document.querySelectorAll('#photos .photo-card[data-id]');
      const c = cs[0];
      return `readiness "${c.querySelector('.readiness').textContent.trim()}", ${c.querySelectorAll('ul.tips > li').length} tip(s)`;
    });
    return { ok: true, note: card };
  });

  await T.step('no page errors or console errors', () => ({ ok: errors.length === 0, detail: errors }));
  T.note(`camera ran ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  T.ok(false, 'the test ran to the end', e.stack || String(e));
} finally {
  if (browser) await browser.close().catch(() => {});
  if (studio) {
    await studio.stop('SIGTERM', 5000);
    if (T.failed) T.note(`server stderr (last lines):\n# ${studio.stderr().split('\n').slice(-25).join('\n# ')}`);
  }
  fs.rmSync(work, { recursive: true, force: true });
}
process.exit(T.end());
