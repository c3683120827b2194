#!/usr/bin/env node
// A tiny HTTP client for load.sh (so the tests need no curl):
//
//   node tests/studio/http.mjs METHOD URL [-H 'Name: value']... [--data-file FILE] [-o FILE]
//                                         [-D HEADERS-FILE]
//
// Prints the body (or writes it to -o FILE), then the status code on a line of its own; -D
// writes the status line and headers. Exits 0 whenever an answer came, 1 when none did.

import fs from 'node:fs';
import http from 'node:http';

const argv = process.argv.slice(2);
if (argv.length < 2) {
  process.stderr.write('usage: http.mjs METHOD URL [-H "Name: value"]... [--data-file F] [-o F] [-D F]\n');
  process.exit(64);
}
const [method, url] = argv;
const headers = {};
let data = null, out = null, headOut = null;
for (let i = 2; i < argv.length; i++) {
  const a = argv[i], v = argv[++i];
  if (v === undefined) { process.stderr.write(`http.mjs: ${a} needs a value\n`); process.exit(64); }
  if (a === '-H') {
    const k = v.slice(0, v.indexOf(':')).trim();
    headers[k] = v.slice(v.indexOf(':') + 1).trim();
  } else if (a === '--data-file') data = fs.readFileSync(v);
  else if (a === '-o') out = v;
  else if (a === '-D') headOut = v;
  else { process.stderr.write(`http.mjs: unknown option ${a}\n`); process.exit(64); }
}
const u = new URL(url);
if (data) headers['Content-Length'] = data.length;
const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers }, (res) => {
  const chunks = [];
  res.on('data', (c) => chunks.push(c));
  res.on('end', () => {
    const body = Buffer.concat(chunks);
    if (headOut) {
      const lines = [`HTTP/${res.httpVersion} ${res.statusCode} ${res.statusMessage}`];
      for (let k = 0; k < res.rawHeaders.length; k += 2) lines.push(`${res.rawHeaders[k]}: ${res.rawHeaders[k + 1]}`);
      fs.writeFileSync(headOut, lines.join('\n') + '\n');
    }
    if (out) fs.writeFileSync(out, body);
    else process.stdout.write(body);
    process.stdout.write(`\n${res.statusCode}\n`);
  });
});
req.setTimeout(300000, () => req.destroy(new Error('no answer in 300 s')));
req.on('error', (e) => { process.stderr.write(`http.mjs: ${method} ${url}: ${e.message}\n`); process.exit(1); });
if (data) req.write(data);
req.end();
