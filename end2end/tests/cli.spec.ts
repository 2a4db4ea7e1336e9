// The terminal client (`ephemeral-chat`, built from cli/) and a browser user in one room, both
// directions, on both builds; and what a sender chooses in the page: a name only the room reads,
// how long a message waits unread, how long it stays on screen.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { test, expect, captureFrames, enterRoom, generateCode, problemsOf, send, sealedCards } from './support';

const CLI = process.env.CLI_BIN;

/** Runs the client to its end: exit code and both streams. */
function runCli(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  if (!CLI) throw new Error('CLI_BIN must be set: run the browser tests via `make e2e`');
  return new Promise((resolve, reject) => {
    const child = spawn(CLI, args, { env: { PATH: process.env.PATH ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** A running `ephemeral-chat chat`, whose output the test reads as it comes. */
class Chat {
  readonly child: ChildProcessWithoutNullStreams;
  output = '';
  constructor(args: string[]) {
    if (!CLI) throw new Error('CLI_BIN must be set: run the browser tests via `make e2e`');
    this.child = spawn(CLI, ['chat', ...args], { env: { PATH: process.env.PATH ?? '' } });
    this.child.stdout.on('data', (d) => (this.output += d));
    this.child.stderr.on('data', (d) => (this.output += d));
  }
  write(text: string) {
    this.child.stdin.write(text);
  }
  async saw(text: string | RegExp) {
    await expect.poll(() => this.output, { timeout: 20_000 }).toMatch(text);
  }
  async end(): Promise<number | null> {
    this.child.stdin.end();
    return new Promise((resolve) => this.child.on('close', (code) => resolve(code)));
  }
}

test('the terminal client and a browser user send each other messages that burn', async ({ people, relay }) => {
  const alice = await people.open();
  const frames = captureFrames(alice);
  const code = await generateCode(alice);
  await enterRoom(alice, code);

  // From the terminal to the browser: a secret on standard input, with a name and a view time.
  const sent = await runCli(['send', code, '--relay', relay.origin, '--name', 'Ops', '--view-time', '30s'], 'db password: hunter2\n');
  expect(sent.code, sent.stderr).toBe(0);
  await expect(sealedCards(alice)).toHaveCount(1);
  await sealedCards(alice).click();
  await expect(alice.locator('.card .text')).toHaveText('db password: hunter2');
  await expect(alice.locator('.card .from')).toHaveText('Ops: ');
  await expect(alice.getByText(/Disappears in (29|30) s/)).toBeVisible();
  await expect.poll(() => relay.messageRows(code)).toBe(0);

  // From the browser to the terminal.
  await alice.getByLabel(/Your name in this room/).fill('Alice');
  await send(alice, 'the reply');
  await expect(alice.getByText('Waiting to be read')).toBeVisible();
  const received = await runCli(['receive', code, '--relay', relay.origin, '--timeout', '30s']);
  expect(received.code, received.stderr).toBe(0);
  expect(received.stdout).toBe('the reply\n');
  expect(received.stderr).toContain('From Alice');
  await expect(alice.getByText('Read and deleted from the server')).toBeVisible();
  expect(relay.messageRows(code)).toBe(0);

  // No text and no name ever crossed the wire in clear.
  for (const frame of [...frames.sent, ...frames.received]) {
    for (const secret of ['hunter2', 'the reply', 'Ops', 'Alice']) expect(frame).not.toContain(secret);
  }
  expect(problemsOf(alice)).toEqual([]);
});

test('a chat between the terminal and the browser: typing, sealed notices, receipts, presence', async ({ people, relay }) => {
  const bob = await people.open();
  const code = await generateCode(bob);
  await enterRoom(bob, code);
  await bob.getByLabel(/Your name in this room/).fill('Bob');

  const chat = new Chat([code, '--relay', relay.origin, '--name', 'Term']);
  await chat.saw(/fingerprint/);
  await expect(bob.getByRole('status')).toContainText('2 people here');
  // The fingerprint the terminal shows is the page's.
  const fingerprint = (await bob.getByLabel('Room fingerprint').textContent())!.trim();
  await chat.saw(fingerprint);

  // Typing from the terminal shows in the page before the line is sent.
  chat.write('hello from the ');
  await expect(bob.getByText('typing…')).toBeVisible();
  chat.write('terminal\n');
  await expect(sealedCards(bob)).toHaveCount(1);
  await sealedCards(bob).click();
  await expect(bob.locator('.card .text')).toHaveText('hello from the terminal');
  await expect(bob.locator('.card .from')).toHaveText('Term: ');
  await chat.saw(/\[your message was read and burned\]/);

  // The page types and sends: the terminal says so, and opens it on Enter.
  await bob.getByLabel('Message', { exact: true }).pressSequentially('hi ');
  await chat.saw(/\[someone is typing…\]/);
  await bob.getByLabel('Message', { exact: true }).pressSequentially('Term');
  await bob.getByLabel('Message', { exact: true }).press('Enter');
  await chat.saw(/\[sealed message from someone\] press Enter to open/);
  await expect(bob.getByText('Waiting to be read')).toBeVisible();
  chat.write('\n');
  await chat.saw(/Bob: hi Term/);
  await expect(bob.getByText('Read and deleted from the server')).toBeVisible();

  expect(await chat.end()).toBe(0);
  await expect(bob.getByRole('status')).toContainText('Only you are here');
  expect(relay.messageRows(code)).toBe(0);
  expect(problemsOf(bob)).toEqual([]);
});

test('the sender chooses a name, how long a message waits and how long it shows', async ({ people, relay }) => {
  const alice = await people.open();
  const bob = await people.open();
  const frames = captureFrames(alice);
  const code = await generateCode(alice);
  await enterRoom(alice, code);
  await enterRoom(bob, code);

  // The relay's TTL here is an hour: the page offers only what fits, with it as the default.
  const lifetime = alice.getByLabel(/Waits unread for/);
  await expect(lifetime.locator('option')).toHaveText(['1 hour (the longest)', '5 minutes']);
  await lifetime.selectOption({ label: '5 minutes' });
  await alice.getByLabel(/Shown for/).selectOption({ label: '5 s' });
  await expect(alice.getByText('A name is a label, not an identity', { exact: false })).toBeVisible();
  await alice.getByLabel(/Your name in this room/).fill('Ana Lúcia');
  await send(alice, 'gone in five');

  // The relay was told the lifetime; the name and the view time stayed inside the seal.
  await expect.poll(() => frames.sent.find((f) => f.includes('"type":"send"')) ?? '').toContain('"ttl":300');
  for (const frame of [...frames.sent, ...frames.received]) {
    expect(frame).not.toContain('Ana');
    expect(frame).not.toContain('"view"');
  }
  await expect(sealedCards(bob)).toHaveCount(1);
  await sealedCards(bob).click();
  await expect(bob.locator('.card .from')).toHaveText('Ana Lúcia: ');
  await expect(bob.getByText(/Disappears in [45] s/)).toBeVisible();
  await expect(bob.locator('.card')).toHaveCount(0, { timeout: 15_000 });

  // Without a name a card says "Someone".
  await bob.getByLabel(/Shown for/).selectOption({ label: '10 s' });
  await send(bob, 'no name here');
  await sealedCards(alice).click();
  await expect(alice.locator('.card.theirs .from')).toHaveText('Someone: ');
  expect(problemsOf(alice)).toEqual([]);
  expect(problemsOf(bob)).toEqual([]);
});
