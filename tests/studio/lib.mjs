// Shared helpers of the studio's browser tests (e2e.mjs, live.mjs, screenshots.mjs):
// find playwright-core in the cache, launch Debian's chromium offline, start and stop
// `trueshot studio`, and print TAP-style `ok N - ...` lines.
//
// Environment:
//   TRUESHOT_CACHE    the cache scripts/setup.sh fills (default ~/.cache/trueshot); playwright-core
//                     is in $TRUESHOT_CACHE/studio/node_modules (scripts/setup.sh --test)
//   TRUESHOT_EXE      the trueshot binary (default build/cli/trueshot under the repository)
//   TS_REPO           the repository root (default: two folders above this file)
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   TS_STUDIO_HEADED  set to 1 to watch the browser (needs a display)

import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = process.env.TS_REPO || path.resolve(here, '..', '..');
export const cache = process.env.TRUESHOT_CACHE || path.join(os.homedir(), '.cache', 'trueshot');
export const exe = process.env.TRUESHOT_EXE || path.join(repo, 'build', 'cli', 'trueshot');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const SETUP_HINT = 'run `scripts/setup.sh --test` (it installs chromium, wrk, libvips-tools and playwright-core from tests/studio/package-lock.json)';

export function fatal(msg) {
  process.stdout.write(`Bail out! ${msg}\n`);
  process.stderr.write(`${path.basename(process.argv[1] || 'studio test')}: ${msg}\n`);
  process.exit(1);
}

// ------------------------------------------------------------------ prerequisites

export function loadPlaywright() {
  const dir = path.join(cache, 'studio');
  const pkg = path.join(dir, 'node_modules', 'playwright-core', 'package.json');
  if (!fs.existsSync(pkg)) fatal(`playwright-core is not installed in ${dir}/node_modules: ${SETUP_HINT}`);
  const want = JSON.parse(fs.readFileSync(path.join(here, 'package-lock.json'), 'utf8'))
    .packages['node_modules/playwright-core'].version;
  const got = JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
  if (got !== want) fatal(`playwright-core ${got} is installed but tests/studio/package-lock.json pins ${want}: ${SETUP_HINT}`);
  const require = createRequire(path.join(dir, 'package.json'));
  return require('playwright-core');
}

export function checkChromium() {
  try {
    fs.accessSync(chromiumPath, fs.constants.X_OK);
  } catch {
    fatal(`${chromiumPath} is missing: ${SETUP_HINT}`);
  }
}

export function checkCommand(cmd, pkg) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  if (r.status !== 0) fatal(`the ${cmd} command (Debian ${pkg}) is missing: ${SETUP_HINT}`);
}

export function checkStudio() {
  if (!fs.existsSync(exe)) fatal(`${exe} is not built (ninja -C build)`);
  const r = spawnSync(exe, ['studio', '--help'], { encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0) {
    fatal(`\`${exe} studio --help\` exited with ${r.status}: ${(r.stderr || r.stdout || '').trim().split('\n')[0]} — the studio server is not built into this binary`);
  }
}

export function photo(name) {
  const p = path.join(cache, 'photos', name);
  if (!fs.existsSync(p)) fatal(`${p} is missing: run scripts/setup.sh`);
  return p;
}

// ------------------------------------------------------------------ chromium

// Chromium with nothing but loopback: no background networking, updates, sync, metrics,
// translation or safe browsing; proxying off; every host other than 127.0.0.1/localhost
// resolves to nothing.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-sync',
  '--disable-client-side-phishing-detection',
  '--disable-breakpad',
  '--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater',
  '--metrics-recording-only',
  '--no-first-run',
  '--no-default-browser-check',
  '--no-pings',
  '--no-proxy-server',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
  '--safebrowsing-disable-auto-update',
  '--password-store=basic',
  '--use-mock-keychain',
];

export function fakeCameraArgs(y4m) {
  return [
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-video-capture=${y4m}`,
  ];
}

export async function launch(pw, extraArgs = []) {
  checkChromium();
  return pw.chromium.launch({
    executablePath: chromiumPath,
    headless: process.env.TS_STUDIO_HEADED !== '1',
    args: [...CHROMIUM_ARGS, ...extraArgs],
    timeout: 60000,
  });
}

// ------------------------------------------------------------------ the studio server

// Starts `trueshot studio --no-open`; resolves when it has printed its URL.
// Returns {proc, url, origin, port, token, host, sessionDir, stderr(), stop()}.
export function startStudio({ args = [], timeoutMs = 30000, env = {} } = {}) {
  checkStudio();
  return new Promise((resolve, reject) => {
    const proc = spawn(exe, ['studio', '--no-open', ...args], {
      env: { ...process.env, TRUESHOT_NO_BROWSER: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '', err = '', done = false;
    const finish = (e, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      e ? reject(e) : resolve(v);
    };
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      finish(new Error(`trueshot studio printed no URL within ${timeoutMs} ms; stdout: ${out.trim()} stderr: ${err.trim()}`));
    }, timeoutMs);
    const tryParse = () => {
      if (done) return;
      const m = /trueshot studio: (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9_\-.~%]+))/.exec(out);
      if (!m) return;
      const sd = /(\S*trueshot-studio-\S*)/.exec(err);
      if (!sd) return; // wait for the session directory line too
      const port = Number(m[2]);
      const s = {
        proc,
        url: m[1],
        origin: `http://127.0.0.1:${port}`,
        host: `127.0.0.1:${port}`,
        port,
        token: decodeURIComponent(m[3]),
        sessionDir: sd[1].replace(/[.,;:'"]+$/, ''),
        stderr: () => err,
        exited: null,
        stop: (sig = 'SIGTERM', waitMs = 10000) => stopStudio(s, sig, waitMs),
      };
      proc.on('exit', (code, signal) => { s.exited = { code, signal }; });
      finish(null, s);
    };
    proc.stdout.on('data', (d) => { out += d; tryParse(); });
    proc.stderr.on('data', (d) => {
      err += d;
      if (process.env.TS_STUDIO_VERBOSE === '1') process.stderr.write(d);
      tryParse();
    });
    proc.on('error', (e) => finish(new Error(`cannot start ${exe}: ${e.message}`)));
    proc.on('exit', (code, signal) => {
      finish(new Error(`trueshot studio exited (code ${code}, signal ${signal}) before it was ready; stdout: ${out.trim()} stderr: ${err.trim()}`));
    });
  });
}

export function stopStudio(s, sig = 'SIGTERM', waitMs = 10000) {
  return new Promise((resolve) => {
    if (s.exited || s.proc.exitCode !== null || s.proc.signalCode !== null) {
      resolve(s.exited || { code: s.proc.exitCode, signal: s.proc.signalCode });
      return;
    }
    const t = setTimeout(() => {
      s.proc.kill('SIGKILL');
      resolve({ code: null, signal: 'SIGKILL', timedOut: true });
    }, waitMs);
    s.proc.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
    s.proc.kill(sig);
  });
}

// Files (not directories) under DIR, recursively; [] when DIR is gone.
export function filesUnder(dir) {
  const out = [];
  const walk = (d) => {
    let ents;
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

export function rssKb(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const g = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s) || [])[1] || 0);
    return { rss: g('VmRSS'), hwm: g('VmHWM') };
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ reporting

export class Tap {
  constructor(name) {
    this.name = name;
    this.n = 0;
    this.failed = 0;
    this.notes = [];
  }
  ok(cond, desc, detail) {
    this.n++;
    if (cond) process.stdout.write(`ok ${this.n} - ${desc}\n`);
    else {
      this.failed++;
      process.stdout.write(`not ok ${this.n} - ${desc}\n`);
      if (detail !== undefined) {
        const text = typeof detail === 'string' ? detail : JSON.stringify(detail, null, 1);
        process.stdout.write(text.split('\n').map((l) => `#   ${l}`).join('\n') + '\n');
      }
    }
    return !!cond;
  }
  // runs fn; a throw is a failure of this step with the error as detail
  async step(desc, fn) {
    try {
      const r = await fn();
      if (r === false) return this.ok(false, desc);
      if (r && typeof r === 'object' && 'ok' in r) return this.ok(r.ok, desc + (r.note ? ` (${r.note})` : ''), r.detail);
      return this.ok(true, desc + (typeof r === 'string' ? ` (${r})` : ''));
    } catch (e) {
      return this.ok(false, desc, (e && e.stack) || String(e));
    }
  }
  note(s) {
    this.notes.push(s);
    process.stdout.write(`# ${s}\n`);
  }
  end() {
    process.stdout.write(`1..${this.n}\n`);
    process.stdout.write(`# ${this.name}: ${this.n - this.failed} passed, ${this.failed} failed\n`);
    return this.failed === 0 && this.n > 0 ? 0 : 1;
  }
}
