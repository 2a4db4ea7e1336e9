// What every spec shares: the relay process the tests control (start, kill -9, restart with
// other settings), the people (one browser context each), and helpers that act as a person.
import { test as base, expect, type Browser, type BrowserContext, type Page } from '@playwright/test';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Settings of the relay a project's tests talk to (see playwright.config.ts). */
export type RelayOptions = { relayPort: number; allowedOrigin: string | undefined };

/** The real release server binary, run by the tests so they can kill and restart it. */
export class Relay {
  private child: ChildProcess | undefined;
  readonly dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ephemeral-chat-e2e-'));
  readonly origin: string;
  /** Everything the server printed, for the no-logs checks. */
  output = '';

  constructor(
    readonly port: number,
    private readonly allowedOrigin: string | undefined,
  ) {
    this.origin = `http://127.0.0.1:${port}`;
  }

  /** Starts the server (same data directory, so the same at-rest key and messages). */
  async start(settings: Record<string, string> = {}) {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      PORT: String(this.port),
      BIND_ADDR: '127.0.0.1',
      DATA_DIR: this.dataDir,
      LEPTOS_SITE_ROOT: process.env.LEPTOS_SITE_ROOT!,
      MESSAGE_TTL: '1h',
      SESSION_GRACE: '2s',
      RUST_LOG: 'info',
      ...(this.allowedOrigin ? { ALLOWED_ORIGINS: this.allowedOrigin } : {}),
      ...settings,
    };
    const child = spawn(process.env.SERVER_BIN!, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    this.child = child;
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null) throw new Error(`relay exited at start:\n${this.output}`);
      try {
        if ((await fetch(`${this.origin}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`relay did not answer /healthz:\n${this.output}`);
  }

  /** kill -9: no goodbye to anyone. */
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  /** Stops it and starts it again, optionally with other settings. */
  async restart(settings: Record<string, string> = {}) {
    await this.kill();
    await this.start(settings);
  }

  /** Rows of the room of `code` in the message table, read straight from the SQLite file (the
   * relay stores SHA-256 of the room id, which the test derives from the code as a page does). */
  messageRows(code: string): number {
    const db = path.join(this.dataDir, 'ephemeral-chat.db');
    const roomHash = createHash('sha256').update(Buffer.from(roomIdOf(code), 'hex')).digest('hex');
    const script =
      'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); ' +
      'print(c.execute("select count(*) from messages where room_hash = ?", (bytes.fromhex(sys.argv[2]),)).fetchone()[0])';
    return Number(execFileSync('python3', ['-c', script, db, roomHash]).toString().trim());
  }

  /** Rows of file chunks stored, over every room. */
  chunkRows(): number {
    return Number(this.sqlite('print(c.execute("select count(*) from chunks").fetchone()[0])').trim());
  }

  /** Whether any stored row (a message or a chunk) holds `needle` as it is. */
  storedRowsContain(needle: Buffer): boolean {
    const script =
      'n=bytes.fromhex(sys.argv[2]); rows=[r[0] for r in c.execute("select body from messages union all select body from chunks")]; ' +
      'print(any(n in r for r in rows))';
    return this.sqlite(script, needle.toString('hex')).trim() === 'True';
  }

  private sqlite(body: string, ...args: string[]): string {
    const db = path.join(this.dataDir, 'ephemeral-chat.db');
    return execFileSync('python3', ['-c', `import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); ${body}`, db, ...args]).toString();
  }
}

/** The people in a test: one browser context each (no shared storage), closed afterwards. */
export class People {
  private contexts: BrowserContext[] = [];
  constructor(private readonly browser: Browser, private readonly baseURL: string) {}

  async open(options: Parameters<Browser['newContext']>[0] = {}): Promise<Page> {
    const context = await this.browser.newContext({ baseURL: this.baseURL, ...options });
    this.contexts.push(context);
    const page = await context.newPage();
    watch(page);
    return page;
  }

  async closeAll() {
    await Promise.all(this.contexts.map((c) => c.close()));
  }
}

/** Console errors, uncaught exceptions and CSP violations a page met: every test expects none. */
const problems = new WeakMap<Page, string[]>();
function watch(page: Page) {
  const seen: string[] = [];
  problems.set(page, seen);
  page.on('console', (msg) => {
    // Chromium reports a refused WebSocket as a console error; the reconnect test causes that
    // on purpose, so it is recorded apart.
    if (msg.type() === 'error' && !/WebSocket connection to .* failed/.test(msg.text())) seen.push(msg.text());
  });
  page.on('pageerror', (err) => seen.push(String(err)));
}
export function problemsOf(page: Page): string[] {
  return problems.get(page) ?? [];
}

export const test = base.extend<{ people: People }, RelayOptions & { relay: Relay }>({
  relayPort: [3107, { option: true, scope: 'worker' }],
  allowedOrigin: [undefined, { option: true, scope: 'worker' }],
  relay: [
    async ({ relayPort, allowedOrigin }, use) => {
      const relay = new Relay(relayPort, allowedOrigin);
      await relay.start();
      await use(relay);
      await relay.kill();
    },
    { scope: 'worker' },
  ],
  people: async ({ browser, baseURL, relay }, use) => {
    void relay; // the relay runs before any person opens a page
    const people = new People(browser, baseURL!);
    await use(people);
    await people.closeAll();
  },
});
export { expect };

/** Waits until the WASM app runs in the page (it marks <body> when it does). */
export async function ready(page: Page) {
  await page.locator('body[data-hydrated="true"]').waitFor();
}

/** Generates a code on the landing page and returns it as shown (five groups of five). */
export async function generateCode(page: Page): Promise<string> {
  await page.goto('/');
  await ready(page);
  await page.getByRole('button', { name: 'Generate new code' }).click();
  const code = (await page.getByLabel('Room code', { exact: true }).textContent())!.trim();
  expect(code).toMatch(/^([0-9A-HJKMNP-TV-Z]{5}-){4}[0-9A-HJKMNP-TV-Z]{5}$/);
  return code;
}

/** Opens the room through its invite link and waits until the page is connected. */
export async function enterRoom(page: Page, code: string) {
  await page.goto(`/room#${code}`);
  await ready(page);
  await expect(page.getByRole('status')).toContainText('Connected');
}

/** Two people in a fresh room, both connected: the start of most journeys. */
export async function roomOfTwo(people: People): Promise<{ alice: Page; bob: Page; code: string }> {
  const alice = await people.open();
  const bob = await people.open();
  const code = await generateCode(alice);
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  return { alice, bob, code };
}

/** Types a message and presses Enter. */
export async function send(page: Page, text: string) {
  const box = page.getByLabel('Message', { exact: true });
  await box.fill(text);
  await box.press('Enter');
  await expect(box).toHaveValue('');
}

export const sealedCards = (page: Page) => page.getByRole('button', { name: /Click to decrypt and view/ });

/** Records every WebSocket frame a page sends and receives as bytes, binary frames included. */
export function captureBytes(page: Page): Buffer[] {
  const frames: Buffer[] = [];
  page.on('websocket', (ws) => {
    const keep = (f: { payload: string | Buffer }) =>
      frames.push(typeof f.payload === 'string' ? Buffer.from(f.payload) : Buffer.from(f.payload));
    ws.on('framesent', keep);
    ws.on('framereceived', keep);
  });
  return frames;
}

/** Records every WebSocket frame a page sends and receives. */
export function captureFrames(page: Page): { sent: string[]; received: string[] } {
  const frames = { sent: [] as string[], received: [] as string[] };
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => frames.sent.push(String(f.payload)));
    ws.on('framereceived', (f) => frames.received.push(String(f.payload)));
  });
  return frames;
}

/** The room id a client derives from `code` (crypto spec v1), computed with Node's own crypto. */
const roomIds = new Map<string, string>();
export function roomIdOf(code: string): string {
  const known = roomIds.get(code);
  if (known) return known;
  const canonical = code.replace(/-/g, '');
  const ikm = pbkdf2Sync(canonical, 'ephemeral-chat/v1/pbkdf2', 600_000, 32, 'sha256');
  const id = createHash('sha256').update('ephemeral-chat/v1/room-id').update(ikm).digest('hex');
  roomIds.set(code, id);
  return id;
}

/** A payload of the right version and size that no key opens (random bytes after the version). */
export function garbagePayload(): string {
  return Buffer.concat([Buffer.from([1]), randomBytes(12 + 256 + 16)]).toString('base64url');
}
