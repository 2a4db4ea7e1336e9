// When a message was sent: every card says it ("sent … ago", the exact local time on hover and
// on keyboard focus, a machine-readable <time datetime>), and a body dated past the longest time
// any relay keeps a message shows for what it is, a replay, and is not confirmed as viewed.
import type { Page } from '@playwright/test';
import { createCipheriv, hkdfSync, pbkdf2Sync, randomBytes } from 'node:crypto';
import { test, expect, captureFrames, enterRoom, generateCode, problemsOf, roomIdOf, sealedCards, send } from './support';

const DAY = 24 * 3600 * 1000;

/** Seals `text` for the room of `code` as a page does (crypto spec v1), dated `sentAt`: what a
 * relay serving an old ciphertext again would hand out. */
function sealDated(code: string, text: string, sentAt: number): { id: string; sealed: string } {
  const ikm = pbkdf2Sync(code.replace(/-/g, ''), 'ephemeral-chat/v1/pbkdf2', 600_000, 32, 'sha256');
  const key = Buffer.from(hkdfSync('sha256', ikm, Buffer.alloc(0), 'ephemeral-chat/v1/message-key', 32));
  const id = randomBytes(16);
  const sender = randomBytes(8).toString('hex');
  const body = Buffer.from(JSON.stringify({ id: id.toString('hex'), sender, text, sent_at: sentAt }));
  const padded = Buffer.alloc(256 * Math.ceil((body.length + 1) / 256));
  body.copy(padded);
  padded[body.length] = 0x80;
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.concat([Buffer.from('ephemeral-chat/v1/message'), Buffer.from([1]), Buffer.from(roomIdOf(code), 'hex'), id]));
  const sealed = Buffer.concat([Buffer.from([1]), nonce, cipher.update(padded), cipher.final(), cipher.getAuthTag()]);
  return { id: id.toString('hex'), sealed: sealed.toString('base64url') };
}

/** Sends a sealed payload into the room from a raw connection of its own (in `page`). */
async function sendRaw(page: Page, relayPort: number, code: string, message: { id: string; sealed: string }) {
  const answer = await page.evaluate(
    ({ url, roomId, id, sealed }) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(url);
        const session = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
        ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room_id: roomId, session }));
        ws.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          if (frame.type === 'joined') ws.send(JSON.stringify({ type: 'send', message_id: id, sealed }));
          if (frame.type === 'sent' || frame.type === 'error') resolve(frame.type);
        };
      }),
    { url: `ws://127.0.0.1:${relayPort}/ws`, roomId: roomIdOf(code), ...message },
  );
  expect(answer).toBe('sent');
}

/** Width of the exact time on screen: 1 px while hidden from sight (screen readers still read it). */
const exactWidth = async (page: Page, text: string) =>
  (await page.getByRole('listitem').filter({ hasText: text }).locator('time .exact').boundingBox())!.width;

test('each card says when its message was sent, with the exact local time on hover and keyboard focus', async ({ people }) => {
  const alice = await people.open();
  // Bob's wall clock is 5 h 30 min ahead of UTC: his card shows his own local time.
  const bob = await people.open({ timezoneId: 'Asia/Kolkata' });
  const code = await generateCode(alice);
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  const before = Date.now();
  await send(alice, 'when was this sent');
  await sealedCards(bob).click();
  await expect(bob.getByText('when was this sent')).toBeVisible();

  for (const page of [bob, alice]) {
    await page.mouse.move(0, 0); // Bob's pointer was over the card he clicked: hover is tried below
    const sent = page.getByRole('listitem').filter({ hasText: 'when was this sent' }).locator('time');
    await expect(sent).toContainText(/^sent less than a minute ago/);
    const datetime = (await sent.getAttribute('datetime'))!;
    expect(datetime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Math.abs(Date.parse(datetime) - before)).toBeLessThan(60_000);
    expect(await exactWidth(page, 'when was this sent')).toBeLessThanOrEqual(1);
  }
  // The exact time is Bob's local time of that datetime, and his screen reader hears it.
  const sent = bob.getByRole('listitem').filter({ hasText: 'when was this sent' }).locator('time');
  const datetime = Date.parse((await sent.getAttribute('datetime'))!);
  const local = new Date(datetime + 330 * 60_000).toISOString().slice(0, 19).replace('T', ' ');
  await expect(sent).toHaveText(`sent less than a minute ago, ${local}`);

  // From the keyboard: Tab reaches the time, which then shows the exact time with a focus ring.
  let reached = false;
  for (let i = 0; i < 30 && !reached; i++) {
    await bob.keyboard.press('Tab');
    reached = await sent.evaluate((el) => el === document.activeElement);
  }
  expect(reached).toBe(true);
  expect(await sent.evaluate((el) => getComputedStyle(el).outlineStyle)).toBe('solid');
  expect(await exactWidth(bob, 'when was this sent')).toBeGreaterThan(1);

  // With the mouse: hovering Alice's own card's time shows hers.
  await alice.getByRole('listitem').filter({ hasText: 'when was this sent' }).locator('time').hover();
  expect(await exactWidth(alice, 'when was this sent')).toBeGreaterThan(1);
  expect(problemsOf(alice)).toEqual([]);
  expect(problemsOf(bob)).toEqual([]);
});

test('a message dated past the longest TTL shows as too old to be genuine and is not confirmed viewed', async ({ people, relay }) => {
  const bob = await people.open();
  const code = await generateCode(bob);
  await enterRoom(bob, code);
  const frames = captureFrames(bob);
  // Eight days old: past the protocol's 7-day ceiling and the 10 minutes of clock skew allowed.
  await sendRaw(bob, relay.port, code, sealDated(code, 'burned last week', Date.now() - 8 * DAY));
  await expect(sealedCards(bob)).toHaveCount(1);
  await sealedCards(bob).click();
  const card = bob.getByRole('listitem').filter({ hasText: 'Too old to be genuine: not shown.' });
  await expect(card).toBeVisible();
  await expect(card.locator('time')).toContainText(/^sent 8 days ago/);
  await expect(bob.getByText('burned last week')).toHaveCount(0);
  await expect(bob.locator('#announcer')).toHaveText('A message too old to be genuine was not shown.');
  expect(frames.sent.some((f) => f.includes('"type":"viewed"'))).toBe(false);
  expect(relay.messageRows(code)).toBe(1);
  expect(problemsOf(bob)).toEqual([]);
});
