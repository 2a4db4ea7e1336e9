// The relay serving HTTPS itself (TLS_CERT, TLS_KEY), with a certificate this test makes: the
// page loads and hydrates over https://, talks over wss://, gets HSTS, and a message is read and
// burned. Server-rendered build only: the static bundle names its relay's http:// origin.
import { test, expect } from '@playwright/test';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { generateCode, enterRoom, ready, sealedCards, send } from './support';

const PORT = 3112;
const ORIGIN = `https://localhost:${PORT}`;
const TEXT = 'carried over the TLS of the relay itself';

let relay: ChildProcess | undefined;
let output = '';
let dir = '';
let certificate = '';

test.beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ephemeral-chat-tls-'));
  const [cert, key] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')];
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' });
  certificate = fs.readFileSync(cert, 'utf8');
  relay = spawn(process.env.SERVER_BIN!, [], {
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(PORT),
      BIND_ADDR: '127.0.0.1',
      DATA_DIR: path.join(dir, 'data'),
      LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT!,
      TLS_CERT: cert,
      TLS_KEY: key,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  relay.stdout!.on('data', (d) => (output += d));
  relay.stderr!.on('data', (d) => (output += d));
  for (let i = 0; i < 300; i++) {
    if (relay.exitCode !== null) throw new Error(`relay exited at start:\n${output}`);
    if ((await head('/healthz').catch(() => undefined))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the TLS relay did not answer:\n${output}`);
});

test.afterAll(async () => {
  relay?.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A GET over TLS that trusts this test's certificate only. */
function head(pathname: string): Promise<{ status: number; hsts: string | undefined }> {
  return new Promise((resolve, reject) => {
    const request = https.get(`${ORIGIN}${pathname}`, { ca: certificate }, (response) => {
      response.resume();
      resolve({ status: response.statusCode ?? 0, hsts: response.headers['strict-transport-security'] as string });
    });
    request.on('error', reject);
  });
}

test('over the relay\'s own TLS, a page hydrates, talks over wss:// and a message burns', async ({ browser }) => {
  const { hsts } = await head('/');
  expect(hsts).toMatch(/^max-age=\d+/);

  // The browser does not know this test's certificate authority; the Rust tests check the chain.
  const contexts = await Promise.all([0, 1].map(() => browser.newContext({ baseURL: ORIGIN, ignoreHTTPSErrors: true })));
  try {
    const [alice, bob] = await Promise.all(contexts.map((c) => c.newPage()));
    const sockets: string[] = [];
    alice.on('websocket', (ws) => sockets.push(ws.url()));
    const code = await generateCode(alice);
    await enterRoom(alice, code);
    await enterRoom(bob, code);
    expect(sockets.length).toBeGreaterThan(0);
    expect(sockets.every((url) => url.startsWith(`wss://localhost:${PORT}/`))).toBe(true);

    await send(alice, TEXT);
    await expect(sealedCards(bob)).toHaveCount(1);
    await sealedCards(bob).click();
    await expect(bob.locator('.card .text')).toHaveText(TEXT);
    await expect(alice.getByText('Read and deleted from the server')).toBeVisible();
    await ready(bob);
  } finally {
    await Promise.all(contexts.map((c) => c.close()));
  }
  expect(output).not.toContain('127.0.0.1');
  expect(output).not.toContain(TEXT);
});
