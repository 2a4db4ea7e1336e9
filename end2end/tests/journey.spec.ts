// The core journeys: two and three people, burn after reading, expiry, invite links, bad codes.
import {
  test,
  expect,
  captureFrames,
  enterRoom,
  generateCode,
  problemsOf,
  ready,
  roomOfTwo,
  sealedCards,
  send,
} from './support';

test('two people exchange a message that is read once and then gone', async ({ people, relay }) => {
  const alice = await people.open();
  const bob = await people.open();
  const aliceFrames = captureFrames(alice);
  const bobFrames = captureFrames(bob);

  const code = await generateCode(alice);
  await expect(alice.getByLabel('Invite link', { exact: true })).toContainText(`/room#${code}`);
  await alice.getByRole('button', { name: 'Enter room' }).click();
  await ready(alice);
  await expect(alice.getByRole('status')).toContainText('Connected');
  expect(alice.url()).not.toContain('#');

  await bob.goto('/');
  await ready(bob);
  await bob.getByLabel('Room code or invite link').fill(code);
  await bob.getByRole('button', { name: 'Join' }).click();
  await ready(bob);
  await expect(bob.getByRole('status')).toContainText('Connected');
  await expect(alice.getByRole('status')).toContainText('2 people here');
  await expect(bob.getByRole('status')).toContainText('2 people here');

  const composer = alice.getByLabel('Message', { exact: true });
  await composer.pressSequentially('hello from A');
  await expect(bob.getByText('typing…')).toBeVisible();
  await composer.press('Enter');
  await expect(composer).toHaveValue('');

  await expect(sealedCards(bob)).toHaveCount(1);
  await expect(alice.getByText('Waiting to be read')).toBeVisible();
  expect(relay.messageRows(code)).toBe(1);

  await sealedCards(bob).click();
  await expect(bob.locator('.card .text')).toHaveText('hello from A');
  await expect(bob.getByText(/Disappears in \d+ s/)).toBeVisible();
  await expect.poll(() => relay.messageRows(code)).toBe(0);
  await expect(alice.getByText('Read and deleted from the server')).toBeVisible();
  await expect(bob.locator('.card')).toHaveCount(0, { timeout: 20_000 });
  await expect(alice.locator('.card')).toHaveCount(0, { timeout: 20_000 });

  // Neither the text nor the code ever crossed the wire.
  const frames = [...aliceFrames.sent, ...aliceFrames.received, ...bobFrames.sent, ...bobFrames.received];
  expect(frames.some((f) => f.includes('"type":"send"'))).toBe(true);
  expect(frames.some((f) => f.includes('"type":"payload"'))).toBe(true);
  for (const frame of frames) {
    expect(frame).not.toContain('hello from A');
    expect(frame).not.toContain(code.replace(/-/g, ''));
    expect(frame).not.toContain(code);
  }
  // The pages ran under their Content-Security-Policy without a single violation or error.
  expect(problemsOf(alice)).toEqual([]);
  expect(problemsOf(bob)).toEqual([]);
});

test('an invite link opens the room and leaves no code in the address bar', async ({ people }) => {
  const alice = await people.open();
  const code = await generateCode(alice);
  const link = (await alice.getByLabel('Invite link', { exact: true }).textContent())!.trim();
  const bob = await people.open();
  await bob.goto(link);
  await ready(bob);
  await expect(bob.getByRole('status')).toContainText('Connected');
  expect(bob.url()).toMatch(/\/room$/);
  expect(bob.url()).not.toContain(code);
  // Back and forward cannot bring it back either: the history entry itself was rewritten.
  expect(await bob.evaluate(() => location.href)).not.toContain('#');
});

test('an invalid code is refused before any network traffic', async ({ people }) => {
  const page = await people.open();
  const response = await page.goto('/');
  // The page runs under a policy that allows only its own scripts (header or <meta>).
  // (The static host adds frame-ancestors in a header; the bundle's own policy is its <meta>.)
  const policy = [
    response!.headers()['content-security-policy'],
    await page.evaluate(() => document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.getAttribute('content')),
  ].join('; ');
  expect(policy).toContain("default-src 'none'");
  // Server-rendered: its own scripts and a nonce; static bundle: only its loader and blob:.
  expect(policy).toMatch(/script-src ('self' '(nonce|sha256)-|'sha256-[A-Za-z0-9+/]+=*' blob: 'wasm-unsafe-eval')/);
  await ready(page);
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
  // A link whose code has a typo says so too, instead of opening a room.
  await page.goto(`/room#${typo}`);
  await ready(page);
  await expect(page.getByRole('alert')).toContainText('no valid room code');
});

test('the sender sees who has read a message in a group, then sees it burn', async ({ people, relay }) => {
  const [alice, bob, carol] = [await people.open(), await people.open(), await people.open()];
  const code = await generateCode(alice);
  for (const page of [alice, bob, carol]) await enterRoom(page, code);
  await expect(alice.getByRole('status')).toContainText('3 people here');

  await send(alice, 'for both of you');
  await expect(alice.getByText('Waiting to be read')).toBeVisible();

  await sealedCards(bob).click();
  await expect(bob.locator('.card .text')).toHaveText('for both of you');
  await expect(alice.getByText('Viewed by 1 of 2')).toBeVisible();
  expect(relay.messageRows(code)).toBe(1);

  await sealedCards(carol).click();
  await expect(carol.locator('.card .text')).toHaveText('for both of you');
  await expect(alice.getByText('Read and deleted from the server')).toBeVisible();
  await expect(alice.getByText(/Disappears in \d+ s/)).toBeVisible();
  await expect.poll(() => relay.messageRows(code)).toBe(0);
});

test('an unread message expires and both sides see that, not an error', async ({ people, relay }) => {
  await relay.restart({ MESSAGE_TTL: '2s' });
  try {
    const { alice, bob, code } = await roomOfTwo(people);
    await send(alice, 'nobody reads this');
    await expect(sealedCards(bob)).toBeVisible();
    // MESSAGE_TTL is 2 s now: the sweep deletes it and tells the room.
    await expect(bob.getByText('Expired unread')).toBeVisible();
    await expect(alice.getByText('Expired unread')).toBeVisible();
    await expect(bob.locator('#announcer')).toHaveText('A message ran out of time before anyone read it.');
    await expect(bob.locator('.card')).toHaveCount(0, { timeout: 20_000 });
    expect(relay.messageRows(code)).toBe(0);
    expect(problemsOf(alice)).toEqual([]);
    expect(problemsOf(bob)).toEqual([]);
  } finally {
    await relay.restart();
  }
});
