// A plain static file host for the Trunk bundle (dist/), like any CDN or object store would be:
// files by path, `/` → index.html, `/room` → room/index.html, nothing dynamic.
// Usage: node static-server.mjs <dir> <port>
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';

const [dir, port] = [path.resolve(process.argv[2]), Number(process.argv[3])];
const types = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
};

createServer(async (req, res) => {
  let pathname = decodeURIComponent(new URL(req.url, 'http://host').pathname);
  if (pathname === '/healthz') return res.writeHead(200).end('ok');
  if (pathname.endsWith('/')) pathname += 'index.html';
  else if (!path.extname(pathname)) pathname += '/index.html';
  const file = path.join(dir, pathname);
  if (!file.startsWith(dir + path.sep)) return res.writeHead(404).end();
  try {
    const body = await readFile(file);
    res.writeHead(200, {
      'Content-Type': types[path.extname(file)] ?? 'application/octet-stream',
      // What a careful host adds; the policy itself travels in index.html's <meta>.
      'Content-Security-Policy': "frame-ancestors 'none'",
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cache-Control': 'no-cache',
    });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
}).listen(port, '127.0.0.1');
