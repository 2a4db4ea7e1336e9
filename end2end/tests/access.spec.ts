// Keyboard only, screen readers, an axe check, phones, dark mode, and nothing from elsewhere.
import * as fs from 'node:fs';
import type { Page } from '@playwright/test';
import { test, expect, enterRoom, generateCode, problemsOf, ready, sealedCards, send } from './support';

const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Runs axe-core in the page (injected through the debugger, so the page's CSP is untouched)
 * and returns the serious and critical violations. */
async function seriousViolations(page: Page): Promise<string[]> {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    (window as any).axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa', 'best-practice'] } }),
  );
  return result.violations
    .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
    .map((v: any) => `${v.id}: ${v.help} (${v.nodes.map((n: any) => n.target.join(' ')).join(', ')})`);
}

for (const colorScheme of ['light', 'dark'] as const) {
  test(`no serious accessibility violations on either page (${colorScheme})`, async ({ people }) => {
    const alice = await people.open({ colorScheme });
    const bob = await people.open({ colorScheme });
    const code = await generateCode(alice);
    expect(await seriousViolations(alice)).toEqual([]);
    await enterRoom(alice, code);
    await enterRoom(bob, code);
    await send(alice, 'checked by axe');
    await expect(sealedCards(bob)).toHaveCount(1);
    expect(await seriousViolations(bob)).toEqual([]);
    await sealedCards(bob).click();
    await expect(bob.locator('.card .text')).toHaveText('checked by axe');
    expect(await seriousViolations(bob)).toEqual([]);
    expect(await seriousViolations(alice)).toEqual([]);
  });
}

/** Presses Tab until the focused element has `name` as its accessible name (at most 30 times). */
async function tabTo(page: Page, role: 'button' | 'textbox' | 'checkbox', name: string | RegExp) {
  const target = page.getByRole(role, { name });
  for (let i = 0; i < 30; i++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) {
      // The focus is visible: a real outline, not the browser default turned off.
      const outline = await target.evaluate((el) => getComputedStyle(el).outlineStyle + ' ' + getComputedStyle(el).outlineWidth);
      expect(outline).toMatch(/^solid [2-9]/);
      return;
    }
  }
  throw new Error(`Tab never reached ${role} ${name}`);
}

test('everything works from the keyboard, and new messages are announced', async ({ people, relay }) => {
  const alice = await people.open();
  const bob = await people.open();
  await alice.goto('/');
  await ready(alice);
  await tabTo(alice, 'button', 'Generate new code');
  await alice.keyboard.press('Enter');
  const code = (await alice.getByLabel('Room code', { exact: true }).textContent())!.trim();
  await tabTo(alice, 'button', 'Enter room');
  await alice.keyboard.press('Enter');
  await ready(alice);
  await expect(alice.getByRole('status')).toContainText('Connected');

  await bob.goto('/');
  await ready(bob);
  await tabTo(bob, 'textbox', 'Room code or invite link');
  await bob.keyboard.type(code);
  await bob.keyboard.press('Enter');
  await ready(bob);
  await expect(bob.getByRole('status')).toContainText('Connected');

  await tabTo(alice, 'textbox', 'Message');
  await alice.keyboard.type('first line');
  await alice.keyboard.press('Shift+Enter');
  await alice.keyboard.type('second line');
  await expect(alice.getByLabel('Message', { exact: true })).toHaveValue('first line\nsecond line');
  await alice.keyboard.press('Enter');
  await expect(alice.getByLabel('Message', { exact: true })).toHaveValue('');

  // The live region tells a screen reader that something arrived.
  await expect(bob.locator('#announcer')).toHaveAttribute('aria-live', 'polite');
  await expect(bob.locator('#announcer')).toContainText('New encrypted message');
  await tabTo(bob, 'button', /Click to decrypt and view/);
  await bob.keyboard.press('Enter');
  await expect(bob.locator('.card .text')).toHaveText('first line\nsecond line');
  await expect.poll(() => relay.messageRows(code)).toBe(0);
  await expect(alice.locator('#announcer')).toHaveText('Everyone has read your message: it has burned.');

  await tabTo(bob, 'button', 'Leave');
  await bob.keyboard.press('Enter');
  await expect(bob.getByRole('button', { name: 'Generate new code' })).toBeVisible();
});

test('a 360 px wide phone screen shows everything without sideways scrolling', async ({ people }) => {
  const phone = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true };
  const alice = await people.open(phone);
  const bob = await people.open(phone);
  const noSidewaysScroll = (page: Page) =>
    page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);
  const code = await generateCode(alice);
  expect(await noSidewaysScroll(alice)).toBe(true);
  await expect(alice.getByRole('img', { name: 'QR code of the invite link' })).toBeInViewport();
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  await send(alice, 'a long message '.repeat(20) + 'withaverylongwordthatmustwrapratherthanoverflowthescreenwidth');
  await sealedCards(bob).tap();
  await expect(bob.locator('.card .text')).toContainText('a long message');
  for (const page of [alice, bob]) {
    expect(await noSidewaysScroll(page)).toBe(true);
    for (const name of ['Send', 'Leave']) {
      const box = (await page.getByRole('button', { name }).boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(360);
    }
  }
});

test('the pages follow the system colour scheme', async ({ people }) => {
  const background = async (colorScheme: 'light' | 'dark') => {
    const page = await people.open({ colorScheme });
    await page.goto('/');
    await ready(page);
    return page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  };
  const luminance = (rgb: string) => rgb.match(/\d+/g)!.slice(0, 3).reduce((sum, c) => sum + Number(c), 0) / 3;
  expect(luminance(await background('light'))).toBeGreaterThan(200);
  expect(luminance(await background('dark'))).toBeLessThan(50);
});

test('nothing is loaded from anywhere but the app and its relay', async ({ people, relay, baseURL }) => {
  const alice = await people.open();
  const bob = await people.open();
  const origins = new Set<string>();
  for (const page of [alice, bob]) {
    page.on('request', (r) => origins.add(new URL(r.url()).origin));
    page.on('websocket', (ws) => origins.add(new URL(ws.url()).origin.replace(/^ws/, 'http')));
  }
  const code = await generateCode(alice);
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  await send(alice, 'local only');
  await sealedCards(bob).click();
  await expect(bob.locator('.card .text')).toHaveText('local only');
  const allowed = new Set([new URL(baseURL!).origin, relay.origin]);
  expect([...origins].filter((o) => !allowed.has(o))).toEqual([]);
  expect(problemsOf(alice)).toEqual([]);
  expect(problemsOf(bob)).toEqual([]);
});
