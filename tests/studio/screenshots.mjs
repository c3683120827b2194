#!/usr/bin/env node
// Regenerates the screenshots of `trueshot studio` in docs/screenshots/ (`make screenshots`):
//
//   1-start.png          the empty studio, as it opens
//   2-graded.png         two photos uploaded and graded, with their coaching tips
//   3-look.png           a look chosen: the preview and its controls
//   4-authenticity.png   after "Render": the edit map, identity check and the disclosure
//                        (1280x1300)
//   5-live.png           live coaching from the webcam (chromium's fake camera, a .y4m video
//                        made from a real photo)
//   6-phone.png          the same session in a phone-sized window (390x844)
//
//   node tests/studio/screenshots.mjs [OUT-DIR]     (default docs/screenshots)
//
// Same prerequisites as the browser tests (scripts/setup.sh --test, ninja -C build). The photos
// are samples/sample.jpg and franck_02045.jpg from the cache. PNGs are saved with a 256-colour
// palette (`vips copy ...[palette]`), about a third of the size.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  repo, photo, loadPlaywright, checkChromium, checkCommand, checkStudio, launch, startStudio,
  fakeCameraArgs,
} from './lib.mjs';
import { makeY4m } from './make_y4m.mjs';

const outDir = path.resolve(process.argv[2] || path.join(repo, 'docs', 'screenshots'));
const WAIT = 90000;

checkChromium();
checkCommand('vips', 'libvips-tools');
const pw = loadPlaywright();
checkStudio();

fs.mkdirSync(outDir, { recursive: true });
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-shots-'));
const y4m = path.join(work, 'camera.y4m');
makeY4m(photo('franck_02045.jpg'), y4m, { width: 640, height: 480, frames: 30, fps: 30 });

let studio, browser, failed = false;
const written = [];
try {
  studio = await startStudio();
  browser = await launch(pw, fakeCameraArgs(y4m));
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1,
    reducedMotion: 'reduce', colorScheme: 'light' });
  await context.grantPermissions(['camera'], { origin: studio.origin });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);

  const shot = async (name, opts = {}) => {
    await page.waitForTimeout(250); // let layout and transitions settle
    const file = path.join(outDir, name);
    const tmp = path.join(work, name);
    if (opts.element) await page.locator(opts.element).screenshot({ path: tmp });
    else await page.screenshot({ path: tmp, fullPage: !!opts.fullPage });
    // 256-colour PNG (libvips with libimagequant): a third of the size, no visible change
    const q = path.join(work, `q-${name}`);
    const r = spawnSync('vips', ['copy', tmp, `${q}[palette,Q=90,compression=9]`], { encoding: 'utf8' });
    fs.copyFileSync(r.status === 0 && fs.existsSync(q) ? q : tmp, file + '.tmp');
    fs.renameSync(file + '.tmp', file);
    written.push(`${path.relative(repo, file)} (${fs.statSync(file).size} bytes)`);
  };
  const waitPreview = (photoId, style) => page.waitForFunction(({ photoId, style }) => {
    const i = document.querySelector('img#preview');
    const q = new URLSearchParams(i?.dataset.key || '');
    return i && i.complete && i.naturalWidth > 0 && q.get('photo') === photoId && q.get('style') === style;
  }, { photoId, style });
  const quiet = async () => { await page.waitForLoadState('networkidle').catch(() => {}); };
  // puts the top of SEL at the top of the window (a little margin above it)
  const top = (sel) => page.evaluate((sel) => {
    const e = document.querySelector(sel);
    if (e) window.scrollTo(0, Math.max(0, e.getBoundingClientRect().top + window.scrollY - 12));
  }, sel);

  await page.goto(studio.url);
  await page.locator('#drop').waitFor({ state: 'visible' });
  await shot('1-start.png');

  await page.setInputFiles('input#photo-input', path.join(repo, 'samples', 'sample.jpg'));
  await page.waitForFunction(() => document.querySelector('#photos .photo-card[data-id] ul.tips > li'));
  await page.setInputFiles('input#photo-input', photo('franck_02045.jpg'));
  await page.waitForFunction(() => [...document.querySelectorAll('#photos .photo-card[data-id]')]
    .filter((c) => c.querySelector('ul.tips > li')).length >= 2);
  await quiet();
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot('2-graded.png');

  const first = await page.$eval('#photos .photo-card[data-id]', (c) => c.dataset.id);
  await page.locator(`#photos .photo-card[data-id="${first}"]`).click();
  const looks = await page.$$eval('#looks button.look[data-style]', (bs) => bs.map((b) => b.dataset.style));
  const pick = looks.find((l) => /corporate/.test(l)) || looks[0];
  await page.locator(`#looks button.look[data-style="${pick}"]`).click();
  await waitPreview(first, pick);
  await quiet();
  await top('#looks');
  await shot('3-look.png');

  await page.locator('#render').click();
  await page.waitForFunction(() => {
    const m = document.querySelector('#authenticity img#edit-map');
    const d = document.querySelector('#authenticity #disclosure');
    return m && m.complete && m.naturalWidth > 0 && d && /DigitalSourceType|digital source/i.test(d.textContent);
  });
  await quiet();
  // a taller window, so the whole panel (edit map, identity, the disclosure's list) is in view
  await page.setViewportSize({ width: 1280, height: 1300 });
  await top('#authenticity');
  await shot('4-authenticity.png');
  await page.setViewportSize({ width: 1280, height: 860 });

  await page.locator('#camera-start').scrollIntoViewIfNeeded();
  await page.locator('#camera-start').click();
  await page.waitForFunction(() => {
    const v = document.querySelector('video#camera');
    const t = document.querySelector('#live-tips');
    return v && v.readyState >= 2 && !v.paused && t && t.textContent.trim();
  });
  await page.waitForTimeout(2500); // a few seconds of coaching: the box, the tips and the rate settle
  await top('#camera-start');
  await shot('5-live.png');
  await page.locator('#camera-start').click().catch(() => {}); // stop the camera if it toggles

  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await quiet();
  await shot('6-phone.png');
} catch (e) {
  failed = true;
  process.stderr.write(`screenshots: ${e.stack || e}\n`);
  if (studio) process.stderr.write(`server stderr (last lines):\n${studio.stderr().split('\n').slice(-20).join('\n')}\n`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (studio) await studio.stop('SIGTERM', 5000);
  fs.rmSync(work, { recursive: true, force: true });
}
for (const w of written) process.stdout.write(`wrote ${w}\n`);
process.exit(failed ? 1 : 0);
