// The static (Trunk) bundle only: its published hashes check out against what the host serves,
// a changed file is caught, and its policy lets the page talk to its relay and nowhere else.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test, expect, ready } from './support';

const dist = process.env.STATIC_DIST!;
const checker = path.join(__dirname, '..', '..', 'scripts', 'check_bundle.py');

function check(origin: string, sums: string): { code: number; output: string } {
  try {
    return { code: 0, output: execFileSync('python3', [checker, origin, sums]).toString() };
  } catch (e: any) {
    return { code: e.status, output: String(e.stdout) };
  }
}

test('the served bundle matches its published SHA256SUMS', ({ baseURL }) => {
  const result = check(baseURL!, path.join(dist, 'SHA256SUMS'));
  expect(result.output).toContain('the bundle is the published one');
  expect(result.code).toBe(0);
  const listed = fs.readFileSync(path.join(dist, 'SHA256SUMS'), 'utf8');
  for (const file of ['index.html', 'room/index.html', 'favicon.svg']) expect(listed).toContain(`  ${file}\n`);
  expect(listed).toMatch(/ \S+_bg\.wasm\n/);
});

test('a bundle with one changed byte is caught', async () => {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'ephemeral-chat-tampered-'));
  fs.cpSync(dist, copy, { recursive: true });
  const js = fs.readdirSync(copy).find((f) => f.endsWith('.js'))!;
  fs.appendFileSync(path.join(copy, js), '\n// evil');
  const host = spawn('node', [path.join(__dirname, '..', 'static-server.mjs'), copy, '3112']);
  try {
    await expect.poll(async () => (await fetch('http://127.0.0.1:3112/healthz').catch(() => null))?.ok).toBe(true);
    const result = check('http://127.0.0.1:3112', path.join(dist, 'SHA256SUMS'));
    expect(result.code).toBe(1);
    expect(result.output).toContain(`CHANGED  ${js}`);
  } finally {
    host.kill();
  }
});

test('the bundle policy allows its relay and nothing else', async ({ people, relay }) => {
  const page = await people.open();
  await page.goto('/');
  await ready(page);
  const policy = (await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content'))!;
  expect(policy).toContain(`connect-src 'self' ws://127.0.0.1:${relay.port};`);
  // Only the inline loader (by hash) and the blob: it makes of the checked JS run.
  expect(policy).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+=*' blob: 'wasm-unsafe-eval'/);
  // A connection anywhere else is refused by the browser itself, as a policy violation.
  const refused = await page.evaluate(
    () =>
      new Promise<string>((resolve) => {
        document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective));
        try {
          new WebSocket('ws://127.0.0.1:3107/ws');
        } catch {
          // Some browsers throw as well as reporting.
        }
      }),
  );
  expect(refused).toBe('connect-src');
});
