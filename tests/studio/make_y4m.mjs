#!/usr/bin/env node
// Makes a short YUV4MPEG2 video from a real photo, for chromium's fake camera
// (--use-file-for-fake-video-capture=FILE.y4m) in the studio's live-coaching test.
//
//   node tests/studio/make_y4m.mjs PHOTO OUT.y4m [--width 640] [--height 480]
//                                                [--frames 30] [--fps 30]
//
// The photo is scaled (libvips `vips thumbnail`, centre crop) to a little more than the frame
// and each frame is a window that drifts slowly across it, so the "camera" shows a face that
// moves a few pixels like a person sitting still. Frames are 4:2:0 (C420jpeg chroma siting),
// BT.601 limited range, which is what chromium assumes for I420 capture frames.
// Needs only the `vips` command (Debian libvips-tools); no ffmpeg.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function die(msg) {
  process.stderr.write(`make_y4m: ${msg}\n`);
  process.exit(1);
}

export function makeY4m(photo, out, opts = {}) {
  const W = opts.width ?? 640, H = opts.height ?? 480;
  const frames = opts.frames ?? 30, fps = opts.fps ?? 30;
  if (W % 2 || H % 2) throw new Error('width and height must be even');
  if (!fs.existsSync(photo)) throw new Error(`no such photo: ${photo}`);
  const mx = 16, my = 12; // drift margin (pixels each side)
  const SW = W + 2 * mx, SH = H + 2 * my;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ts-y4m-'));
  try {
    const vips = (...args) => {
      const r = spawnSync('vips', args, { encoding: 'utf8' });
      if (r.error) throw new Error(`cannot run vips (install libvips-tools: scripts/setup.sh --test): ${r.error.message}`);
      if (r.status !== 0) throw new Error(`vips ${args.join(' ')} failed: ${r.stderr.trim()}`);
    };
    const a = path.join(tmp, 'a.v'), b = path.join(tmp, 'b.v'), c = path.join(tmp, 'c.v');
    const raw = path.join(tmp, 'rgb.raw');
    vips('thumbnail', photo, a, String(SW), '--height', String(SH), '--crop', 'centre', '--size', 'force');
    vips('colourspace', a, b, 'srgb');
    vips('extract_band', b, c, '0', '--n', '3');
    vips('rawsave', c, raw);
    const rgb = fs.readFileSync(raw);
    if (rgb.length !== SW * SH * 3) throw new Error(`expected ${SW * SH * 3} bytes of RGB, got ${rgb.length}`);

    const ySize = W * H, cSize = (W / 2) * (H / 2);
    const fd = fs.openSync(out + '.tmp', 'w');
    fs.writeSync(fd, `YUV4MPEG2 W${W} H${H} F${fps}:1 Ip A1:1 C420jpeg\n`);
    const frame = Buffer.alloc(ySize + 2 * cSize);
    const clamp = (v) => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
    for (let f = 0; f < frames; f++) {
      const t = (2 * Math.PI * f) / frames; // one slow loop per clip: the loop point is seamless
      const ox = Math.round(mx + mx * 0.5 * Math.sin(t));
      const oy = Math.round(my + my * 0.5 * Math.sin(2 * t));
      // luma
      for (let y = 0; y < H; y++) {
        let s = ((oy + y) * SW + ox) * 3;
        const row = y * W;
        for (let x = 0; x < W; x++, s += 3) {
          frame[row + x] = clamp(16 + (65.481 * rgb[s] + 128.553 * rgb[s + 1] + 24.966 * rgb[s + 2]) / 255);
        }
      }
      // chroma: average of each 2x2 block (centred siting, as C420jpeg says)
      for (let y = 0; y < H / 2; y++) {
        for (let x = 0; x < W / 2; x++) {
          let r = 0, g = 0, bl = 0;
          for (let dy = 0; dy < 2; dy++) {
            for (let dx = 0; dx < 2; dx++) {
              const s = ((oy + 2 * y + dy) * SW + ox + 2 * x + dx) * 3;
              r += rgb[s]; g += rgb[s + 1]; bl += rgb[s + 2];
            }
          }
          r /= 4; g /= 4; bl /= 4;
          const i = y * (W / 2) + x;
          frame[ySize + i] = clamp(128 + (-37.797 * r - 74.203 * g + 112.0 * bl) / 255);
          frame[ySize + cSize + i] = clamp(128 + (112.0 * r - 93.786 * g - 18.214 * bl) / 255);
        }
      }
      fs.writeSync(fd, 'FRAME\n');
      fs.writeSync(fd, frame);
    }
    fs.closeSync(fd);
    fs.renameSync(out + '.tmp', out);
    return { width: W, height: H, frames, fps, bytes: fs.statSync(out).size };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// command line
if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('make_y4m.mjs')) {
  const argv = process.argv.slice(2);
  const pos = [];
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(width|height|frames|fps)$/.exec(argv[i]);
    if (m) {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v <= 0) die(`${argv[i - 1]}: expected a positive integer`);
      opts[m[1]] = v;
    } else if (argv[i].startsWith('-')) {
      die(`unknown option ${argv[i]}`);
    } else pos.push(argv[i]);
  }
  if (pos.length !== 2) die('usage: node tests/studio/make_y4m.mjs PHOTO OUT.y4m [--width W] [--height H] [--frames N] [--fps N]');
  try {
    const r = makeY4m(pos[0], pos[1], opts);
    process.stdout.write(`${pos[1]}: ${r.width}x${r.height}, ${r.frames} frames at ${r.fps} fps, ${r.bytes} bytes\n`);
  } catch (e) {
    die(e.message);
  }
}
