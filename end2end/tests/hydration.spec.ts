// Cold loads on a slow connection: until the WASM runs, no control looks live (each is greyed
// out and says "Loading…"); once it runs they work, and what was typed meanwhile is kept,
// signalled to the room once joined, and sent.
//
// Both builds: the server-rendered page shows its controls inert before hydration; the static
// bundle shows only "Loading…" before its WASM mounts the app (it has no HTML of its own to show).
import { test, expect, enterRoom, generateCode, problemsOf, ready, sealedCards } from './support';
import type { Page, TestInfo } from '@playwright/test';

/** Holds the page's WASM download until `release()`: a slow phone on a slow network. */
async function holdWasm(page: Page): Promise<{ requested: Promise<void>; release: () => void }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let requestedNow!: () => void;
  const requested = new Promise<void>((resolve) => (requestedNow = resolve));
  await page.route('**/*.wasm', async (route) => {
    requestedNow();
    await released;
    await route.continue();
  });
  return { requested, release };
}

/** Holds the room's key derivation (WebCrypto's PBKDF2) until `releaseDerivation()` is called in
 * the page: the app runs, but the room is not joined yet. */
async function holdDerivation(page: Page) {
  await page.addInitScript(() => {
    const deriveBits = crypto.subtle.deriveBits.bind(crypto.subtle);
    const gate = new Promise<void>((resolve) => ((window as any).releaseDerivation = resolve));
    crypto.subtle.deriveBits = async (algorithm: any, key: CryptoKey, length: number) => {
      await gate;
      return deriveBits(algorithm, key, length);
    };
  });
}

const serverRendered = (testInfo: TestInfo) => testInfo.project.name === 'ssr';
const visibleLoading = (page: Page) => page.getByText('Loading…', { exact: true }).filter({ visible: true });

test('the landing page is inert and says Loading… until its WASM runs, then its buttons work', async ({
  people,
}, testInfo) => {
  const page = await people.open();
  const wasm = await holdWasm(page);
  await page.goto('/', { waitUntil: 'commit' });
  await wasm.requested;

  const start = page.getByRole('region', { name: 'Start a room' }).getByRole('button');
  const join = page.getByRole('region', { name: 'Join a room' }).getByRole('button');
  await expect(visibleLoading(page).first()).toBeVisible();
  // Nothing on the page can be pressed yet.
  await expect(page.getByRole('button', { disabled: false })).toHaveCount(0);
  if (serverRendered(testInfo)) {
    // The server's page is all there, its controls greyed out and saying why.
    for (const button of [start, join]) {
      await expect(button).toHaveText('Loading…');
      await expect(button).toBeDisabled();
      await expect(button).toHaveAttribute('aria-busy', 'true');
    }
    await expect(page.getByLabel('Room code or invite link')).toBeDisabled();
    // An impatient tap goes nowhere: the button is disabled, so no half-made code appears later.
    await start.click({ force: true });
  } else {
    await expect(page.getByRole('status')).toHaveText('Loading…');
    await expect(start).toHaveCount(0);
  }

  wasm.release();
  await ready(page);
  await expect(start).toHaveText('Generate new code');
  await expect(start).toBeEnabled();
  await expect(start).not.toHaveAttribute('aria-busy');
  await expect(join).toHaveText('Join');
  await expect(join).toBeEnabled();
  await expect(visibleLoading(page)).toHaveCount(0);
  await expect(page.getByLabel('Room code', { exact: true })).toHaveCount(0);
  expect(new URL(page.url()).pathname).toBe('/');

  await start.click();
  const code = (await page.getByLabel('Room code', { exact: true }).textContent())!.trim();
  expect(code).toMatch(/^([0-9A-HJKMNP-TV-Z]{5}-){4}[0-9A-HJKMNP-TV-Z]{5}$/);
  await page.getByLabel('Room code or invite link').fill(code);
  await join.click();
  await ready(page);
  await expect(page.getByRole('status')).toContainText('Connected');
  expect(problemsOf(page)).toEqual([]);
});

test('what is typed before the room is joined is kept, signalled once joined, and can then be sent', async ({
  people,
}, testInfo) => {
  const alice = await people.open();
  const bob = await people.open();
  const code = await generateCode(alice);
  await enterRoom(bob, code);

  const wasm = await holdWasm(alice);
  await holdDerivation(alice);
  await alice.goto(`/room#${code}`, { waitUntil: 'commit' });
  await wasm.requested;
  const composer = alice.getByLabel('Message', { exact: true });
  // The form's submit button (its name changes as the page loads; the paperclip is a button too).
  const sendButton = alice.getByRole('form', { name: 'New message' }).locator('button[type="submit"]');
  let typed: string;
  await expect(visibleLoading(alice).first()).toBeVisible();
  await expect(alice.getByRole('button', { disabled: false })).toHaveCount(0);
  if (serverRendered(testInfo)) {
    await expect(alice.getByRole('status')).toHaveText(/^Loading…/);
    await expect(sendButton).toHaveText('Loading…');
    await expect(sendButton).toBeDisabled();
    await expect(alice.getByRole('button', { name: 'Loading…' })).toHaveCount(2); // and Leave
    await expect(alice.getByRole('checkbox')).toBeDisabled();
    // The box itself takes typing at once, with nothing yet listening to it.
    typed = 'typed while the page loads';
    await composer.pressSequentially(typed);
    wasm.release();
    await ready(alice);
  } else {
    await expect(alice.getByRole('status')).toHaveText('Loading…');
    await expect(composer).toHaveCount(0);
    wasm.release();
    await ready(alice);
    typed = 'typed before joining';
    await composer.pressSequentially(typed);
  }
  // The app runs; the keys are still being derived, so the room is not joined.
  await expect(alice.getByRole('status')).toContainText('Deriving keys…');
  await expect(composer).toHaveValue(typed);
  await expect(sendButton).toHaveText('Joining…');
  await expect(sendButton).toBeDisabled();
  await expect(sendButton).toHaveAttribute('aria-busy', 'true');
  // Enter sends nothing yet, and adds no line break either.
  await composer.press('Enter');
  await expect(composer).toHaveValue(typed);
  await expect(bob.getByText('typing…')).toHaveCount(0);

  await alice.evaluate(() => (window as any).releaseDerivation());
  await expect(alice.getByRole('status')).toContainText('Connected');
  await expect(alice.getByRole('status')).toContainText('2 people here');
  // Nobody typed since the join: the room heard of the earlier typing when it was joined.
  await expect(bob.getByText('typing…')).toBeVisible();
  await expect(composer).toHaveValue(typed);
  await expect(sendButton).toHaveText('Send');
  await expect(sendButton).toBeEnabled();
  await sendButton.click();
  await expect(composer).toHaveValue('');

  await sealedCards(bob).click();
  await expect(bob.locator('.card .text')).toHaveText(typed);
  expect(problemsOf(alice)).toEqual([]);
  expect(problemsOf(bob)).toEqual([]);
});
