#!/usr/bin/env node
// Reference TFLite runner: executes a .tflite model with a real TensorFlow
// Lite interpreter compiled to WASM, under Node, fully offline, single thread.
// Used to check trueshot's C runtime.  Two engines:
//   tfjs   (default) @tensorflow/tfjs-tflite 0.0.1-alpha.10: TFLite + its
//          default XNNPACK delegate; no MediaPipe custom ops.
//   litert @litertjs/core 2.5.3 (LiteRT, ex-TFLite): XNNPACK CPU accelerator
//          plus MediaPipe's custom ops (Convolution2DTransposeBias,
//          Landmarks2TransformMatrix, TransformTensorBilinear, TransformLandmarks).
//
//   node tests/ref/run_tflite.mjs MODEL.tflite --out-dir DIR --in FILE.f32 ...
//   node tests/ref/run_tflite.mjs MODEL.tflite --info | --bench N | --profile
//
// Modules come from $TRUESHOT_CACHE/ref/node_modules (default
// $HOME/.cache/trueshot); see tests/ref/README.md.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';

const USAGE =
  'usage: node tests/ref/run_tflite.mjs MODEL.tflite [--out-dir DIR --in FILE.f32...] ' +
  '[--bench N] [--info] [--profile] [--engine tfjs|litert] [--no-simd] [--verbose]';

function die(msg) {
  process.stderr.write(`run_tflite: ${String(msg).replace(/\s*\n\s*/g, ' | ')}\n`);
  process.exit(1);
}
const errMsg = (e) => (e && e.message ? e.message : String(e));

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
  const a = { model: null, outDir: null, inputs: [], bench: 0, info: false, profile: false,
              simd: true, verbose: false, engine: 'tfjs' };
  const need = (i, flag) => {
    if (i + 1 >= argv.length) die(`${flag} needs a value\n${USAGE}`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    switch (s) {
      case '--out-dir': a.outDir = need(i, s); i++; break;
      case '--in': a.inputs.push(need(i, s)); i++; break;
      case '--bench': {
        const v = need(i, s); i++;
        if (!/^\d+$/.test(v) || Number(v) < 1) die(`--bench: expected an integer >= 1, got '${v}'`);
        a.bench = Number(v); break;
      }
      case '--engine': {
        a.engine = need(i, s); i++;
        if (a.engine !== 'tfjs' && a.engine !== 'litert') die(`--engine: expected tfjs or litert, got '${a.engine}'`);
        break;
      }
      case '--info': a.info = true; break;
      case '--profile': a.profile = true; break;
      case '--no-simd': a.simd = false; break;
      case '-v': case '--verbose': a.verbose = true; break;
      case '-h': case '--help': process.stdout.write(USAGE + '\n'); process.exit(0);
      default:
        if (s.startsWith('-')) die(`unknown option '${s}'\n${USAGE}`);
        if (a.model) die(`more than one model given ('${a.model}', '${s}')`);
        a.model = s;
    }
  }
  if (!a.model) die(`no model given\n${USAGE}`);
  if (!a.info && !a.outDir && !a.bench && !a.profile) die(`--out-dir is required\n${USAGE}`);
  if (a.outDir && !a.inputs.length) die('--out-dir needs the model inputs (--in FILE.f32, one per input)');
  if (a.profile && a.bench) die('--profile and --bench are exclusive (profiling slows inference)');
  if (a.profile && a.engine !== 'tfjs') die('--profile is only available with --engine tfjs');
  if (!a.simd && a.engine !== 'tfjs') die('--no-simd is only available with --engine tfjs');
  return a;
}

const args = parseArgs(process.argv.slice(2));
const verbose = args.verbose || process.env.TRUESHOT_REF_VERBOSE === '1';

// ---------------------------------------------------------------- modules
const cacheRoot = process.env.TRUESHOT_CACHE || path.join(os.homedir(), '.cache', 'trueshot');
const refDir = path.join(cacheRoot, 'ref');
const nodeModules = path.join(refDir, 'node_modules');
const PKG = args.engine === 'tfjs' ? '@tensorflow/tfjs-tflite' : '@litertjs/core';
if (!fs.existsSync(path.join(nodeModules, PKG, 'package.json'))) {
  die(`${PKG} not found in ${nodeModules}; install with: ` +
      `mkdir -p ${refDir} && cp tests/ref/package.json tests/ref/package-lock.json ${refDir}/ && ` +
      `(cd ${refDir} && npm ci --ignore-scripts --no-audit --no-fund)`);
}
const require = createRequire(path.join(refDir, 'package.json'));
const wasmDir = path.join(path.dirname(require.resolve(`${PKG}/package.json`)), 'wasm');

// Both libraries load their emscripten glue like a Web Worker would:
// importScripts(<dir>/<name>.js), then call the global factory it defines.
// We evaluate the glue from disk ourselves and pass the .wasm bytes in as
// Module.wasmBinary, so nothing is fetched (no fetch/XMLHttpRequest shim).
const wasmLog = [];               // what the TFLite runtime printed (error reporter)
let loadedWasm = null;
const logLine = (s) => {
  wasmLog.push(String(s));
  if (verbose) process.stderr.write(`[wasm] ${s}\n`);
};
const wasmTail = () => {
  const l = wasmLog.filter((s) => !/^INFO:|^WARNING: \[npu_registry/.test(s));
  return l.length ? ` [runtime: ${l.slice(-4).join(' | ')}]` : '';
};
// LiteRT.js reports some failures (e.g. "Failed to allocate tensors" after an
// unresolved custom op) only on its log and then returns garbage outputs, so
// any new ERROR line from the runtime is treated as a failure.
let wasmLogChecked = 0;
function throwOnRuntimeErrors() {
  const fresh = wasmLog.slice(wasmLogChecked);
  wasmLogChecked = wasmLog.length;
  const errs = fresh.filter((l) => /^ERROR/.test(l));
  if (errs.length) throw new Error(`runtime reported: ${errs.slice(0, 4).join(' | ')}`);
}
globalThis.self = globalThis;

// ---------------------------------------------------------------- helpers
const numel = (shape) => shape.reduce((n, d) => n * d, 1);
const TYPED = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int16: Int16Array, int32: Int32Array, uint32: Uint32Array, bool: Uint8Array,
};
function castInto(dtype, f32, what) {
  const T = TYPED[dtype];
  if (!T) die(`${what}: unsupported dtype ${dtype}`);
  if (T === Float32Array) return f32;
  if (T === Float64Array) return Float64Array.from(f32);
  return T.from(f32, Math.round);
}

// ---------------------------------------------------------------- engine: tfjs-tflite
async function openTfjs(modelBytes) {
  // tfjs-tflite's EmscriptenModuleLoader treats "no window" as a worker: it
  // calls importScripts(<wasmPath>tflite_web_api_cc[_simd][_threaded].js) then
  // self.tflite_web_api_ModuleFactory({locateFile, mainScriptUrlOrBlob}).
  // We always load the non-threaded SIMD (or --no-simd: plain) build.
  const variant = args.simd ? 'tflite_web_api_cc_simd' : 'tflite_web_api_cc';
  if (!globalThis.location) globalThis.location = { href: pathToFileURL(wasmDir + '/').href, origin: '' };
  globalThis.importScripts = () => {
    const jsFile = path.join(wasmDir, `${variant}.js`);
    vm.runInThisContext(fs.readFileSync(jsFile, 'utf8'), { filename: jsFile });
    const factory = globalThis.tflite_web_api_ModuleFactory;
    if (typeof factory !== 'function') die(`${jsFile} did not define tflite_web_api_ModuleFactory`);
    const wasmBinary = fs.readFileSync(path.join(wasmDir, `${variant}.wasm`));
    loadedWasm = `${variant}.wasm`;
    globalThis.tflite_web_api_ModuleFactory = (opts) =>
      factory({ ...opts, wasmBinary, print: logLine, printErr: logLine });
  };
  const tflite = require('@tensorflow/tfjs-tflite');
  // Make the feature probe answer "no multi-threading" (it posts a
  // SharedArrayBuffer through a MessageChannel; make that throw meanwhile).
  const MC = globalThis.MessageChannel;
  globalThis.MessageChannel = class { constructor() { throw new Error('no threads'); } };
  try { await tflite.getWasmFeatures(); } finally { globalThis.MessageChannel = MC; }
  // Absolute directory: the loader keeps a path starting with '/' and only
  // prepends location.origin (''), i.e. it stays a plain filesystem path.
  tflite.setWasmPath(wasmDir + '/');

  const ab = modelBytes.buffer.slice(modelBytes.byteOffset, modelBytes.byteOffset + modelBytes.byteLength);
  let model;
  try {
    model = await tflite.loadTFLiteModel(ab, { numThreads: 1, enableProfiling: args.profile });
  } catch (e) {
    throw new Error(`${errMsg(e)}${wasmTail()}`);
  }
  if (!model) throw new Error(`wasm module failed to load${wasmTail()}`);
  const runner = model.modelRunner;       // raw TFLiteWebModelRunner, no tfjs tensors involved
  const ins = runner.getInputs();
  const outs = runner.getOutputs();
  const parseShape = (s) => (s === '' ? [] : String(s).split(',').map(Number));
  const describe = (t) => ({ name: t.name, shape: parseShape(t.shape), dtype: t.dataType });
  return {
    inputs: ins.map(describe),
    outputs: outs.map(describe),
    runtime: {
      engine: 'tfjs-tflite',
      wasm: loadedWasm,
      numThreads: 1,
      // TFLite logs this when it applies its default (lazy) XNNPACK delegate.
      xnnpack: wasmLog.some((l) => /XNNPACK delegate/.test(l)),
    },
    setInputs(arrays) {
      ins.forEach((t, i) => {
        const buf = t.data();             // fresh view: the wasm heap may have grown
        if (buf.length !== arrays[i].length) die(`input ${i}: buffer has ${buf.length} elements, expected ${arrays[i].length}`);
        buf.set(castInto(t.dataType, arrays[i], `input ${i} '${t.name}'`));
      });
    },
    infer() {
      let ok;
      try { ok = runner.infer(); } catch (e) { throw new Error(`${errMsg(e)}${wasmTail()}`); }
      if (!ok) throw new Error(`Interpreter::Invoke failed${wasmTail()}`);
    },
    readOutputs() { return outs.map((t) => Float32Array.from(t.data())); },
    profile() {
      const byType = {};
      const items = runner.getProfilingResults();
      for (const it of items) {
        const e = (byType[it.nodeType] ||= { count: 0, ms: 0 });
        e.count++; e.ms += it.nodeExecMs;
      }
      return { nodes: items.length, by_type: byType };
    },
  };
}

// ---------------------------------------------------------------- engine: LiteRT.js
async function openLitert(modelBytes) {
  // @litertjs/wasm-utils: importScripts(<dir>/litert_wasm[_compat]_internal.js)
  // then self.ModuleFactory(...).  This glue has a Node branch that calls
  // require('node:fs'), so we evaluate it with a require in scope.
  globalThis.importScripts = (url) => {
    const jsFile = String(url).startsWith('file:') ? new URL(String(url)).pathname : String(url);
    const fn = vm.runInThisContext(
      `(function (require, __filename, __dirname) {${fs.readFileSync(jsFile, 'utf8')}\n;return ModuleFactory;})`,
      { filename: jsFile });
    const factory = fn(createRequire(jsFile), jsFile, path.dirname(jsFile));
    const wasmBinary = fs.readFileSync(jsFile.replace(/\.js$/, '.wasm'));
    loadedWasm = path.basename(jsFile).replace(/\.js$/, '.wasm');
    globalThis.ModuleFactory = (m = {}) => factory({ ...m, wasmBinary, print: logLine, printErr: logLine });
  };
  const L = await import(pathToFileURL(require.resolve('@litertjs/core')).href);
  // Environment.create() probes navigator.gpu (absent in Node) and warns.
  const warn = console.warn;
  console.warn = (...a) => { if (verbose) warn(...a); };
  try {
    await L.loadLiteRt(wasmDir + '/');    // no threads/jspi: single-threaded build
  } finally { console.warn = warn; }

  let cm;
  try {
    cm = await L.loadAndCompile(new Uint8Array(modelBytes), { accelerator: 'wasm', cpuOptions: { numThreads: 1 } });
    throwOnRuntimeErrors();
  } catch (e) {
    throw new Error(`${errMsg(e)}${wasmTail()}`);
  }
  const describe = (d) => ({ name: d.name, shape: Array.from(d.shape), dtype: d.dtype });
  const ins = cm.getInputDetails().map(describe);
  const outs = cm.getOutputDetails().map(describe);
  let inTensors = null;
  let last = null;
  return {
    inputs: ins,
    outputs: outs,
    runtime: { engine: 'litert.js', wasm: loadedWasm, numThreads: 1, accelerator: 'wasm (XNNPACK CPU)' },
    setInputs(arrays) {
      if (inTensors) inTensors.forEach((t) => t.delete());
      inTensors = ins.map((d, i) => new L.Tensor(castInto(d.dtype, arrays[i], `input ${i} '${d.name}'`), d.shape));
    },
    async infer() {
      if (last) last.forEach((t) => t.delete());
      last = null;
      try { last = await cm.run(inTensors); } catch (e) { throw new Error(`${errMsg(e)}${wasmTail()}`); }
      throwOnRuntimeErrors();
    },
    readOutputs() { return last.map((t) => Float32Array.from(t.toTypedArray())); },
  };
}

// ---------------------------------------------------------------- main
let modelBytes;
try {
  modelBytes = fs.readFileSync(args.model);
} catch (e) {
  die(`cannot read model '${args.model}': ${e.code || e.message}`);
}
if (modelBytes.length < 8 || modelBytes.toString('latin1', 4, 8) !== 'TFL3') {
  die(`'${args.model}' is not a TFLite flatbuffer (no TFL3 identifier at byte 4)`);
}

let eng;
try {
  eng = await (args.engine === 'tfjs' ? openTfjs : openLitert)(modelBytes);
} catch (e) {
  die(`cannot load '${args.model}' (${args.engine}): ${errMsg(e)}`);
}

if (args.info) {
  process.stdout.write(JSON.stringify({
    model: path.resolve(args.model), inputs: eng.inputs, outputs: eng.outputs, runtime: eng.runtime,
  }) + '\n');
  process.exit(0);
}

// inputs: raw float32 LE files, one per model input, in model order; without
// --in (only allowed for --bench/--profile) the inputs are zeros.
if (args.inputs.length && args.inputs.length !== eng.inputs.length) {
  die(`model has ${eng.inputs.length} input(s) but ${args.inputs.length} --in file(s) were given`);
}
const arrays = eng.inputs.map((t, i) => {
  const n = numel(t.shape);
  if (!args.inputs.length) return new Float32Array(n);
  const file = args.inputs[i];
  let raw;
  try { raw = fs.readFileSync(file); } catch (e) { die(`cannot read input '${file}': ${e.code || e.message}`); }
  if (raw.length !== n * 4) {
    die(`input ${i} '${t.name}' (${file}): ${raw.length} bytes, expected ${n * 4} ` +
        `(${n} float32 for shape [${t.shape}])`);
  }
  const f = new Float32Array(n);
  for (let k = 0; k < n; k++) f[k] = raw.readFloatLE(k * 4);
  return f;
});
eng.setInputs(arrays);

const infer = async () => {
  try { await eng.infer(); } catch (e) { die(`inference failed (${args.engine}): ${errMsg(e)}`); }
};
await infer();

if (args.outDir) {
  try { fs.mkdirSync(args.outDir, { recursive: true }); } catch (e) { die(`cannot create '${args.outDir}': ${e.code || e.message}`); }
  const data = eng.readOutputs();
  data.forEach((f, i) => {
    const d = eng.outputs[i];
    if (f.length !== numel(d.shape)) die(`output ${i} '${d.name}': ${f.length} elements vs shape [${d.shape}]`);
    const bytes = Buffer.alloc(f.length * 4);
    for (let k = 0; k < f.length; k++) bytes.writeFloatLE(f[k], k * 4);
    const file = path.join(args.outDir, `out${i}.f32`);
    try { fs.writeFileSync(file, bytes); } catch (e) { die(`cannot write '${file}': ${e.code || e.message}`); }
  });
  const meta = { outputs: eng.outputs, runtime: eng.runtime };
  fs.writeFileSync(path.join(args.outDir, 'meta.json'), JSON.stringify(meta) + '\n');
}

if (args.profile) process.stderr.write(JSON.stringify({ profile: eng.profile() }) + '\n');

if (args.bench) {
  await infer();                                  // warm-up
  const times = [];
  for (let r = 0; r < args.bench; r++) {
    const t0 = performance.now();
    await infer();
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  const mid = times.length >> 1;
  const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  const r3 = (x) => Math.round(x * 1000) / 1000;
  process.stdout.write(JSON.stringify({ median_ms: r3(median), min_ms: r3(times[0]), runs: args.bench }) + '\n');
}
process.exit(0);
