// What people must be able to trust: the landing page's code, link and QR code, the room's
// fingerprint, reconnecting without losing or repeating anything, Leave, no trace in the
// browser, links that cannot burn anything, and clear errors.
import {
  test,
  expect,
  captureFrames,
  enterRoom,
  garbagePayload,
  generateCode,
  problemsOf,
  ready,
  roomIdOf,
  roomOfTwo,
  sealedCards,
  send,
} from './support';

test('the landing page gives a grouped code, copy buttons and a QR code of the invite link', async ({ people }) => {
  const page = await people.open();
  await page.goto('/');
  await ready(page);
  // Two sentences on what happens to messages, before anything is generated.
  await expect(page.getByText(/encrypted in your browser/)).toBeVisible();
  await expect(page.getByText(/deleted from the server the moment it has been read/)).toBeVisible();
  const code = await generateCode(page);
  const link = (await page.getByLabel('Invite link', { exact: true }).textContent())!.trim();
  expect(link).toBe(`${new URL(page.url()).origin}/room#${code}`);

  await page.getByRole('button', { name: 'Copy code' }).click();
  await expect(page.getByRole('button', { name: 'Copy code' })).toHaveText('Copied');
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(code);
  await page.getByRole('button', { name: 'Copy link' }).click();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(link);

  const qr = page.getByRole('img', { name: 'QR code of the invite link' });
  await expect(qr).toBeVisible();
  // A QR code of a 60-odd character link at level M is version 4 (33 modules) plus the quiet
  // zone; its decoding is checked in the unit tests (app/src/components/qr_code.rs).
  expect(await qr.getAttribute('viewBox')).toMatch(/^0 0 (37|41|45) \1$/);

  // A pasted invite link works as well as a typed code.
  const other = await people.open();
  await other.goto('/');
  await ready(other);
  await other.getByLabel('Room code or invite link').fill(link);
  await other.getByRole('button', { name: 'Join' }).click();
  await ready(other);
  await expect(other.getByRole('status')).toContainText('Connected');
});

test('people holding the same code see the same fingerprint, another code another one', async ({ people }) => {
  const [alice, bob, eve] = [await people.open(), await people.open(), await people.open()];
  const code = await generateCode(alice);
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  const fingerprint = (await alice.getByLabel('Room fingerprint').textContent())!;
  expect(fingerprint).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/);
  await expect(bob.getByLabel('Room fingerprint')).toHaveText(fingerprint);
  await enterRoom(eve, await generateCode(eve));
  await expect(eve.getByLabel('Room fingerprint')).not.toHaveText(fingerprint);
});

// The spec's test vector (app/src/crypto/vectors.rs): code 000G40R40M30E209185GR38EW.
const VECTOR_CODE = '000G4-0R40M-30E20-9185G-R38EW';
const VECTOR_FINGERPRINT = 'CRM8-PJXZ';
const VECTOR_ROOM_ID = 'da8d2c662de3253a8a7eaf9aaeb58fc4d22e20f8cd9fcb2f22b64c3f179c556e';

test('the page derives the spec vector\'s keys with WebCrypto, and without it in WASM', async ({ people }) => {
  const withWebCrypto = await people.open();
  const withoutWebCrypto = await people.open();
  // As on a page served over plain HTTP from a LAN address: no crypto.subtle.
  await withoutWebCrypto.addInitScript(() => Object.defineProperty(crypto, 'subtle', { value: undefined }));
  // Count the page's PBKDF2 derivations by WebCrypto, to tell the two paths apart.
  await withWebCrypto.addInitScript(() => {
    const deriveBits = crypto.subtle.deriveBits.bind(crypto.subtle);
    (window as any).pbkdf2Calls = 0;
    crypto.subtle.deriveBits = (algorithm: any, key: CryptoKey, length: number) => {
      if (algorithm?.name === 'PBKDF2') (window as any).pbkdf2Calls += 1;
      return deriveBits(algorithm, key, length);
    };
  });
  for (const page of [withWebCrypto, withoutWebCrypto]) {
    const frames = captureFrames(page);
    await enterRoom(page, VECTOR_CODE);
    await expect(page.getByLabel('Room fingerprint')).toHaveText(VECTOR_FINGERPRINT);
    const join = frames.sent.map((f) => JSON.parse(f)).find((f) => f.type === 'join');
    expect(join.room_id).toBe(VECTOR_ROOM_ID);
  }
  expect(await withoutWebCrypto.evaluate(() => typeof crypto.subtle)).toBe('undefined');
  expect(await withWebCrypto.evaluate(() => typeof crypto.subtle)).toBe('object');
  expect(await withWebCrypto.evaluate(() => (window as any).pbkdf2Calls)).toBe(1);
});

test('a reconnect after the server was killed loses no message and shows none twice', async ({ people, relay }) => {
  const { alice, bob, code } = await roomOfTwo(people);
  await send(alice, 'before the outage');
  await expect(sealedCards(bob)).toHaveCount(1);

  await relay.kill();
  await expect(alice.getByRole('status')).toContainText(/Connection lost|Cannot reach the server/);
  // Several failed attempts in a row: the page says the server cannot be reached.
  await expect(bob.getByRole('status')).toContainText('Cannot reach the server. Still trying…', { timeout: 30_000 });
  await send(alice, 'during the outage');
  await expect(alice.getByText('Sending…')).toBeVisible();

  await relay.start();
  await expect(alice.getByRole('status')).toContainText('Connected', { timeout: 30_000 });
  await expect(bob.getByRole('status')).toContainText('Connected', { timeout: 30_000 });
  // The waiting message came back in the join as pending, the unsent one was resent: two cards.
  await expect(sealedCards(bob)).toHaveCount(2);
  await expect(alice.getByText('Waiting to be read')).toHaveCount(2);
  for (const expected of ['before the outage', 'during the outage']) {
    await sealedCards(bob).first().click();
    await expect(bob.locator('.card .text').filter({ hasText: expected })).toHaveCount(1);
    await expect(alice.locator('.card').filter({ hasText: expected })).toContainText('Read and deleted from the server');
  }
  await expect.poll(() => relay.messageRows(code)).toBe(0);
});

test('Leave forgets the room and returns to the start page', async ({ people }) => {
  const { alice, bob, code } = await roomOfTwo(people);
  await send(alice, 'still sealed');
  await expect(sealedCards(bob)).toHaveCount(1);
  await bob.getByRole('button', { name: 'Leave' }).click();
  await expect(bob).toHaveURL(/\/$/);
  await ready(bob);
  await expect(bob.getByRole('button', { name: 'Generate new code' })).toBeVisible();
  await expect(alice.getByRole('status')).toContainText('Only you are here');
  // Back goes to the room page without a code: nothing of the room is left to show.
  await bob.goBack();
  await ready(bob);
  await expect(bob.getByRole('alert')).toContainText('no valid room code');
  await expect(sealedCards(bob)).toHaveCount(0);
});

test('the browser keeps nothing: no storage, no cookies, no code in the address bar', async ({ people }) => {
  const alice = await people.open();
  const bob = await people.open();
  const code = await generateCode(alice);
  for (const input of await alice.locator('input[type="text"]').all()) {
    await expect(input).toHaveAttribute('autocomplete', 'off');
  }
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  await send(alice, 'leave no trace');
  await sealedCards(bob).click();
  await expect(bob.locator('.card .text')).toHaveText('leave no trace');
  await expect(bob.getByLabel('Message', { exact: true })).toHaveAttribute('autocomplete', 'off');
  for (const page of [alice, bob]) {
    expect(page.url()).not.toContain('#');
    const kept = await page.evaluate(async () => ({
      local: localStorage.length,
      session: sessionStorage.length,
      cookie: document.cookie,
      indexedDb: (await indexedDB.databases()).length,
      caches: (await caches.keys()).length,
    }));
    expect(kept).toEqual({ local: 0, session: 0, cookie: '', indexedDb: 0, caches: 0 });
    expect(await page.context().cookies()).toEqual([]);
  }
});

test('opening an invite link or previewing it burns nothing: only a click fetches', async ({ people, relay, request }) => {
  const alice = await people.open();
  const code = await generateCode(alice);
  const link = (await alice.getByLabel('Invite link', { exact: true }).textContent())!.trim();
  await enterRoom(alice, code);
  await send(alice, 'wait for a click');
  await expect(alice.getByText('Waiting to be read')).toBeVisible();

  // A link preview or scanner fetches the URL (the fragment is never even sent).
  expect((await request.get(link)).ok()).toBe(true);
  // A browser opens it and the page runs, connects and sits there.
  const bob = await people.open();
  const frames = captureFrames(bob);
  await bob.goto(link);
  await ready(bob);
  await expect(sealedCards(bob)).toHaveCount(1);
  await expect(alice.getByRole('status')).toContainText('2 people here');
  expect(frames.sent.some((f) => /"type":"(fetch|viewed)"/.test(f))).toBe(false);
  expect(relay.messageRows(code)).toBe(1);
  await expect(alice.getByText('Waiting to be read')).toBeVisible();

  await sealedCards(bob).click();
  await expect(bob.locator('.card .text')).toHaveText('wait for a click');
  expect(frames.sent.filter((f) => f.includes('"type":"fetch"'))).toHaveLength(1);
  await expect.poll(() => relay.messageRows(code)).toBe(0);
});

test('a payload that fails to open says so and is not confirmed as viewed', async ({ people, relay }) => {
  const bob = await people.open();
  const code = await generateCode(bob);
  await enterRoom(bob, code);
  const frames = captureFrames(bob);
  // Someone with the room id but not the key (it never leaves a browser) sends garbage.
  const relayURL = `ws://127.0.0.1:${relay.port}/ws`;
  const sent = await bob.evaluate(
    ({ url, roomId, sealed }) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(url);
        const id = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
        const session = id.split('').reverse().join('');
        ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room_id: roomId, session }));
        ws.onmessage = (event) => {
          const frame = JSON.parse(event.data);
          if (frame.type === 'joined') ws.send(JSON.stringify({ type: 'send', message_id: id, sealed }));
          if (frame.type === 'sent' || frame.type === 'error') resolve(frame.type);
        };
      }),
    { url: relayURL, roomId: roomIdOf(code), sealed: garbagePayload() },
  );
  expect(sent).toBe('sent');
  await expect(sealedCards(bob)).toHaveCount(1);
  await sealedCards(bob).click();
  await expect(bob.getByText('This message could not be decrypted.')).toBeVisible();
  expect(frames.sent.some((f) => f.includes('"type":"viewed"'))).toBe(false);
  expect(relay.messageRows(code)).toBe(1);
  await expect(bob.getByRole('status')).toContainText('Connected');
  expect(problemsOf(bob)).toEqual([]);
});

test('a message sent again after it was read is burned unseen, never shown twice', async ({ people, relay }) => {
  const [alice, bob] = [await people.open(), await people.open()];
  const [aliceFrames, bobFrames] = [captureFrames(alice), captureFrames(bob)];
  const code = await generateCode(alice);
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  await send(alice, 'read exactly once');
  await sealedCards(bob).click();
  await expect(bob.getByText('read exactly once')).toBeVisible();
  await expect.poll(() => relay.messageRows(code)).toBe(0);
  // It is sent again, as a page does that never heard the server take it (the server died
  // between storing and answering): the very same frame, from a connection of its own.
  const sendFrame = aliceFrames.sent.find((f) => JSON.parse(f).type === 'send')!;
  await alice.close();
  const bobBefore = bobFrames.sent.length;
  const answer = await bob.evaluate(
    ({ url, roomId, frame }) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(url);
        const { message_id } = JSON.parse(frame);
        const session = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
        ws.onopen = () => ws.send(JSON.stringify({ type: 'join', room_id: roomId, session }));
        ws.onmessage = (event) => {
          const f = JSON.parse(event.data);
          if (f.type === 'joined') ws.send(frame);
          if (f.type === 'deleted' && f.message_id === message_id) resolve('deleted');
          if (f.type === 'error') resolve(f.code);
        };
      }),
    { url: `ws://127.0.0.1:${relay.port}/ws`, roomId: roomIdOf(code), frame: sendFrame },
  );
  // Bob's page fetched the copy and confirmed it without showing it: no row is left.
  expect(answer).toBe('deleted');
  expect(relay.messageRows(code)).toBe(0);
  // (The raw connection runs in Bob's page too: its join and send are in the capture.)
  const copyId = JSON.parse(sendFrame).message_id;
  const bobAsked = bobFrames.sent.slice(bobBefore).map((f) => JSON.parse(f)).filter((f) => f.message_id === copyId);
  expect(bobAsked.map((f) => f.type)).toEqual(['send', 'fetch', 'viewed']);
  await expect(sealedCards(bob)).toHaveCount(0);
  expect(problemsOf(bob)).toEqual([]);
});

test('a full room says so, and lets you in once someone has left', async ({ people, relay }) => {
  await relay.restart({ MAX_ROOM_PARTICIPANTS: '2', SESSION_GRACE: '1s' });
  try {
    const [alice, bob, carol] = [await people.open(), await people.open(), await people.open()];
    const code = await generateCode(alice);
    await enterRoom(alice, code);
    await enterRoom(bob, code);
    await carol.goto(`/room#${code}`);
    await ready(carol);
    await expect(carol.getByRole('alert').filter({ hasText: 'This room is full' })).toBeVisible();
    await expect(carol.getByRole('status')).toContainText('Not connected');
    await bob.getByRole('button', { name: 'Leave' }).click();
    await expect(alice.getByRole('status')).toContainText('Only you are here');
    await carol.getByRole('button', { name: 'Try again' }).click();
    await expect(carol.getByRole('status')).toContainText('Connected');
    await expect(carol.getByRole('alert').filter({ hasText: 'This room is full' })).toHaveCount(0);
  } finally {
    await relay.restart();
  }
});

test('while the tab is hidden, new messages count in the title and can chime', async ({ people, relay }) => {
  const alice = await people.open();
  const bob = await people.open();
  // Count the tones Bob's page plays (the app synthesises them with an oscillator).
  await bob.addInitScript(() => {
    (window as any).chimes = 0;
    const create = AudioContext.prototype.createOscillator;
    AudioContext.prototype.createOscillator = function () {
      (window as any).chimes++;
      return create.call(this);
    };
  });
  const code = await generateCode(alice);
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  await bob.getByLabel(/Sound for messages/).check();
  await expect(bob).toHaveTitle('Ephemeral Chat');

  await bob.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
  });
  await send(alice, 'one');
  await expect(bob).toHaveTitle('(1) Ephemeral Chat');
  await send(alice, 'two');
  await expect(bob).toHaveTitle('(2) Ephemeral Chat');
  expect(await bob.evaluate(() => (window as any).chimes)).toBe(2);
  // Nothing was fetched or burned while nobody looked.
  expect(relay.messageRows(code)).toBe(2);

  await bob.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'visible' });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
  });
  await expect(bob).toHaveTitle('Ephemeral Chat');
  await expect(sealedCards(bob)).toHaveCount(2);

  // With the sound off, a hidden tab still counts but stays silent.
  await bob.getByLabel(/Sound for messages/).uncheck();
  await bob.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange', { bubbles: true }));
  });
  await send(alice, 'three');
  await expect(bob).toHaveTitle('(1) Ephemeral Chat');
  expect(await bob.evaluate(() => (window as any).chimes)).toBe(2);
});
