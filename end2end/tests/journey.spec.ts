import { test, expect, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

/** Rows in the server's message table, read straight from its SQLite file. */
function messageRows(): number {
  const db = path.join(process.env.E2E_DATA_DIR!, 'ephemeral-chat.db');
  const script = 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute("select count(*) from messages").fetchone()[0])';
  return Number(execFileSync('python3', ['-c', script, db]).toString().trim());
}

/** Waits until the WASM bundle has hydrated the page (the app marks <body> when it has). */
async function hydrated(page: Page) {
  await page.locator('body[data-hydrated="true"]').waitFor();
}

/** Records the payload of every WebSocket frame the page sends or receives. */
function captureFrames(page: Page, frames: string[]) {
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => frames.push(String(f.payload)));
    ws.on('framereceived', (f) => frames.push(String(f.payload)));
  });
}

/** Collects console errors and CSP violations: a page that works only because a policy is off
 * (or that breaks under it) fails here. */
function watchConsole(page: Page, problems: string[]) {
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(String(err)));
}

async function generateCode(page: Page): Promise<string> {
  await page.getByRole('button', { name: 'Generate new code' }).click();
  const code = (await page.getByLabel('Room code', { exact: true }).textContent())!.trim();
  expect(code).toMatch(/^([0-9A-HJKMNP-TV-Z]{5}-){4}[0-9A-HJKMNP-TV-Z]{5}$/);
  return code;
}

test('two people exchange a message that is read once and then gone', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const frames: string[] = [];
  captureFrames(alice, frames);
  captureFrames(bob, frames);
  const problems: string[] = [];
  watchConsole(alice, problems);
  watchConsole(bob, problems);

  await alice.goto('/');
  await hydrated(alice);
  const code = await generateCode(alice);
  await expect(alice.getByLabel('Invite link', { exact: true })).toContainText(`/room#${code}`);
  await alice.getByRole('button', { name: 'Enter room' }).click();
  await hydrated(alice);
  await expect(alice.getByRole('status')).toContainText('Connected');
  expect(alice.url()).not.toContain('#');

  await bob.goto('/');
  await hydrated(bob);
  await bob.getByLabel('Room code or invite link').fill(code);
  await bob.getByRole('button', { name: 'Join' }).click();
  await hydrated(bob);
  await expect(bob.getByRole('status')).toContainText('Connected');
  await expect(alice.getByRole('status')).toContainText('2 people here');
  await expect(bob.getByLabel('Room fingerprint')).toHaveText((await alice.getByLabel('Room fingerprint').textContent())!);

  const composer = alice.getByLabel('Message', { exact: true });
  await composer.pressSequentially('hello from A');
  await expect(bob.getByText('typing…')).toBeVisible();
  await composer.press('Enter');
  await expect(composer).toHaveValue('');

  const sealed = bob.getByRole('button', { name: /Click to decrypt and view/ });
  await expect(sealed).toBeVisible();
  await expect(alice.getByText('Waiting to be read')).toBeVisible();
  expect(messageRows()).toBe(1);

  await sealed.click();
  await expect(bob.locator('.card .text')).toHaveText('hello from A');
  await expect(bob.getByText(/Disappears in \d+ s/)).toBeVisible();
  await expect.poll(messageRows).toBe(0);
  await expect(alice.getByText('Read and deleted from the server')).toBeVisible();
  await expect(bob.locator('.card')).toHaveCount(0, { timeout: 20_000 });
  await expect(alice.locator('.card')).toHaveCount(0, { timeout: 20_000 });

  const canonical = code.replace(/-/g, '');
  expect(frames.some((f) => f.includes('"type":"send"'))).toBe(true);
  expect(frames.some((f) => f.includes('"type":"payload"'))).toBe(true);
  for (const frame of frames) {
    expect(frame).not.toContain('hello from A');
    expect(frame).not.toContain(canonical);
    expect(frame).not.toContain(code);
  }
  // The pages ran under their Content-Security-Policy without a single violation or error.
  expect(problems).toEqual([]);
});

test('an invite link opens the room and leaves no code in the address bar', async ({ page, browser }) => {
  await page.goto('/');
  await hydrated(page);
  const code = await generateCode(page);
  const link = (await page.getByLabel('Invite link', { exact: true }).textContent())!.trim();
  const other = await (await browser.newContext()).newPage();
  await other.goto(link);
  await hydrated(other);
  await expect(other.getByRole('status')).toContainText('Connected');
  expect(other.url()).toMatch(/\/room$/);
  expect(other.url()).not.toContain(code);
});

test('an invalid code is refused before any network traffic', async ({ page }) => {
  const response = await page.goto('/');
  // The page runs under its nonce-based policy (the journey test checks for violations).
  expect(response!.headers()['content-security-policy']).toContain("'nonce-");
  await hydrated(page);
  const code = await generateCode(page);
  // Change the check symbol: a single-symbol error the check always catches.
  const last = code.at(-1)!;
  const typo = code.slice(0, -1) + (last === '0' ? '1' : '0');
  const traffic: string[] = [];
  page.on('request', (r) => traffic.push(r.url()));
  page.on('websocket', (ws) => traffic.push(ws.url()));
  await page.getByLabel('Room code or invite link').fill(typo);
  await page.getByRole('button', { name: 'Join' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'Invalid room code' })).toBeVisible();
  expect(traffic).toEqual([]);
  expect(new URL(page.url()).pathname).toBe('/');
});

async function enterRoom(page: Page, base: string, code: string) {
  await page.goto(`${base}/room#${code}`);
  await hydrated(page);
  await expect(page.getByRole('status')).toContainText('Connected');
}

test('the sender sees who has read a message in a group, then sees it burn', async ({ browser }) => {
  const [alice, bob, carol] = await Promise.all(
    [0, 1, 2].map(async () => (await browser.newContext()).newPage()),
  );
  await alice.goto('/');
  await hydrated(alice);
  const code = await generateCode(alice);
  const base = process.env.E2E_BASE_URL!;
  for (const page of [alice, bob, carol]) await enterRoom(page, base, code);
  await expect(alice.getByRole('status')).toContainText('3 people here');

  await alice.getByLabel('Message', { exact: true }).fill('for both of you');
  await alice.getByLabel('Message', { exact: true }).press('Enter');
  await expect(alice.getByText('Waiting to be read')).toBeVisible();

  await bob.getByRole('button', { name: /Click to decrypt and view/ }).click();
  await expect(bob.locator('.card .text')).toHaveText('for both of you');
  await expect(alice.getByText('Viewed by 1 of 2')).toBeVisible();
  expect(messageRows()).toBe(1);

  await carol.getByRole('button', { name: /Click to decrypt and view/ }).click();
  await expect(carol.locator('.card .text')).toHaveText('for both of you');
  await expect(alice.getByText('Read and deleted from the server')).toBeVisible();
  await expect(alice.getByText(/Disappears in \d+ s/)).toBeVisible();
  await expect.poll(messageRows).toBe(0);
});

test('an unread message expires and both sides see that, not an error', async ({ browser }) => {
  const base = process.env.E2E_SHORT_TTL_URL!;
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const problems: string[] = [];
  watchConsole(alice, problems);
  watchConsole(bob, problems);
  await alice.goto(`${base}/`);
  await hydrated(alice);
  const code = await generateCode(alice);
  await enterRoom(alice, base, code);
  await enterRoom(bob, base, code);
  await alice.getByLabel('Message', { exact: true }).fill('nobody reads this');
  await alice.getByLabel('Message', { exact: true }).press('Enter');
  await expect(bob.getByRole('button', { name: /Click to decrypt and view/ })).toBeVisible();
  // MESSAGE_TTL is 2 s on this server: the sweep deletes it and tells the room.
  await expect(bob.getByText('Expired unread')).toBeVisible();
  await expect(alice.getByText('Expired unread')).toBeVisible();
  await expect(bob.locator('.card')).toHaveCount(0, { timeout: 20_000 });
  expect(problems).toEqual([]);
});
