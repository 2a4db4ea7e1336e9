// Files and pictures between two people: sealed in the page, downloaded and decrypted with
// progress, a picture shown from memory and removed, any other file saved once; the bytes
// received are the bytes sent, no plaintext byte crosses the wire or reaches the database, and
// nothing is left once they burn. Runs on both builds.
import { deflateSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { test, expect, captureBytes, enterRoom, generateCode, problemsOf, sealedCards, type People } from './support';

/** Two people in a fresh room, every frame of their sockets recorded from the first. */
async function recordedRoomOfTwo(people: People) {
  const alice = await people.open();
  const bob = await people.open();
  const frames = [captureBytes(alice), captureBytes(bob)];
  const code = await generateCode(alice);
  await enterRoom(alice, code);
  await enterRoom(bob, code);
  return { alice, bob, code, frames };
}

/** A real PNG of `width` × `height` random pixels (so the test can tell it was decoded whole). */
function png(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes: Buffer) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // truecolour
  const rows = [];
  for (let y = 0; y < height; y++) rows.push(Buffer.concat([Buffer.from([0]), randomBytes(width * 3)]));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows), { level: 0 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Whether any frame holds any of `windows` of the file as it is. */
function framesHold(frames: Buffer[], file: Buffer): boolean {
  const windows = [0, Math.floor(file.length / 2), file.length - 32].map((at) => file.subarray(at, at + 32));
  return frames.some((frame) => windows.some((w) => frame.includes(w)));
}

test('a picture and a file pass between two people and burn', async ({ people, relay }) => {
  const { alice, bob, code, frames } = await recordedRoomOfTwo(people);

  // A picture: 300 × 200 random pixels, about 180 KB (three chunks).
  const picture = png(300, 200);
  await alice.locator('#attach').setInputFiles({ name: 'holiday.png', mimeType: 'image/png', buffer: picture });
  await expect(alice.locator('.composer .attachment')).toContainText('holiday.png');
  await alice.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(alice.getByText('Waiting to be opened')).toBeVisible();
  await expect(sealedCards(bob)).toHaveCount(1);
  // Before it is opened, the card says a file waits and its padded size (three chunks).
  await expect(sealedCards(bob)).toContainText('Encrypted file (up to 197 KB)');
  // Stored as ciphertext only: neither the file nor its name in any row.
  expect(relay.chunkRows()).toBeGreaterThan(0);
  expect(relay.storedRowsContain(picture.subarray(1000, 1032))).toBe(false);
  expect(relay.storedRowsContain(Buffer.from('holiday.png'))).toBe(false);

  await sealedCards(bob).click();
  const shown = bob.locator('.card img.picture');
  await expect(shown).toBeVisible();
  await expect(shown).toHaveAttribute('alt', 'Image: holiday.png');
  // Decoded whole from a blob: URL (a corrupted or truncated PNG would not have these sizes).
  expect(await shown.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight, img.src.slice(0, 5)])).toEqual([300, 200, 'blob:']);
  await expect.poll(() => relay.messageRows(code)).toBe(0);
  await expect.poll(() => relay.chunkRows()).toBe(0);
  await expect(alice.getByText('Deleted from the server')).toBeVisible();
  await expect(bob.getByText(/Disappears in \d+ s/)).toBeVisible();
  const src = await shown.getAttribute('src');
  await expect(bob.locator('.card')).toHaveCount(0, { timeout: 20_000 });
  expect(await bob.locator('img').count()).toBe(0);
  // Its blob: URL was revoked with the card: loading it again fails (and says so in the console,
  // the one problem this page is allowed).
  expect(problemsOf(bob)).toEqual([]);
  const reloaded = await bob.evaluate(
    (url) => new Promise((done) => { const img = new Image(); img.onload = () => done('loaded'); img.onerror = () => done('gone'); img.src = url!; }),
    src,
  );
  expect(reloaded).toBe('gone');
  expect(problemsOf(bob).splice(0)).toEqual(['Failed to load resource: net::ERR_FILE_NOT_FOUND']);

  // Any other file: offered once as a download under its name, never shown.
  const data = randomBytes(200_000);
  await alice.locator('#attach').setInputFiles({ name: 'keys backup.bin', mimeType: 'application/octet-stream', buffer: data });
  await alice.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(sealedCards(bob)).toHaveCount(1);
  await sealedCards(bob).click();
  const save = bob.getByRole('button', { name: 'Save file' });
  await expect(save).toBeVisible();
  expect(relay.messageRows(code)).toBe(1); // decrypted, but not yet viewed: still waiting
  const [download] = await Promise.all([bob.waitForEvent('download'), save.click()]);
  expect(download.suggestedFilename()).toBe('keys backup.bin');
  expect(fs.readFileSync((await download.path())!).equals(data)).toBe(true);
  await expect(bob.getByText('Saved: deleted from the server')).toBeVisible();
  await expect(bob.getByRole('button', { name: 'Save file' })).toHaveCount(0);
  await expect.poll(() => relay.messageRows(code)).toBe(0);
  await expect.poll(() => relay.chunkRows()).toBe(0);
  await expect(alice.getByText('Deleted from the server')).toBeVisible();

  // No plaintext byte of either file crossed the wire, and binary frames did carry them.
  const all = frames.flat();
  // Recorded: chunks went up as binary frames and came down as binary frames.
  expect(all.some((f) => f[0] === 0x01 && f.length === 21 + 65552)).toBe(true);
  expect(all.some((f) => f[0] === 0x03 && f.length === 21 + 65552)).toBe(true);
  expect(framesHold(all, picture)).toBe(false);
  expect(framesHold(all, data)).toBe(false);
  expect(all.some((f) => f.includes(Buffer.from('holiday.png')) || f.includes(Buffer.from('backup')))).toBe(false);
  expect(problemsOf(alice)).toEqual([]);
  expect(problemsOf(bob)).toEqual([]);
});

test('a file dropped on the composer, or a picture pasted into it, is attached and sent', async ({ people, relay }) => {
  const { alice, bob, code } = await recordedRoomOfTwo(people);
  // Dropped: the page's own drop handler, with a DataTransfer as a drag from the desktop has.
  const data = randomBytes(70_000); // two chunks
  await alice.locator('.composer').evaluate((form, bytes) => {
    const files = new DataTransfer();
    files.items.add(new File([new Uint8Array(bytes)], 'notes.txt', { type: 'text/plain' }));
    form.dispatchEvent(new DragEvent('drop', { dataTransfer: files, bubbles: true, cancelable: true }));
  }, [...data]);
  await expect(alice.locator('.composer .attachment')).toContainText('notes.txt');
  await alice.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(sealedCards(bob)).toContainText('Encrypted file (up to 132 KB)');
  await sealedCards(bob).click();
  const [download] = await Promise.all([bob.waitForEvent('download'), bob.getByRole('button', { name: 'Save file' }).click()]);
  expect(download.suggestedFilename()).toBe('notes.txt');
  expect(fs.readFileSync((await download.path())!).equals(data)).toBe(true);
  await expect.poll(() => relay.messageRows(code)).toBe(0);

  // Pasted: a screenshot in the clipboard is attached as a file, and nothing is typed.
  const shot = png(40, 30);
  await alice.locator('#message').evaluate((box, bytes) => {
    const clipboard = new DataTransfer();
    clipboard.items.add(new File([new Uint8Array(bytes)], 'screenshot.png', { type: 'image/png' }));
    box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: clipboard, bubbles: true, cancelable: true }));
  }, [...shot]);
  await expect(alice.locator('.composer .attachment')).toContainText('screenshot.png');
  await expect(alice.locator('#message')).toHaveValue('');
  await alice.getByRole('button', { name: 'Send', exact: true }).click();
  await expect(sealedCards(bob)).toContainText('Encrypted file (up to 66 KB)');
  await sealedCards(bob).click();
  const shown = bob.locator('.card img.picture');
  await expect(shown).toBeVisible();
  expect(await shown.evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight])).toEqual([40, 30]);
  await expect.poll(() => relay.messageRows(code)).toBe(0);
  await expect.poll(() => relay.chunkRows()).toBe(0);
  expect(problemsOf(alice)).toEqual([]);
  expect(problemsOf(bob)).toEqual([]);
});

test('a file too large for the relay is refused before any upload', async ({ people, relay }) => {
  await relay.restart({ MAX_FILE_SIZE: '128KiB' });
  try {
    const { alice, code, frames: [frames] } = await recordedRoomOfTwo(people);
    await alice.locator('#attach').setInputFiles({ name: 'big.bin', mimeType: 'application/octet-stream', buffer: randomBytes(200_000) });
    await alice.getByRole('button', { name: 'Send', exact: true }).click();
    await expect(alice.getByRole('alert').filter({ hasText: 'That file is too large' })).toContainText('128 KiB');
    expect(frames.some((f) => f.includes(Buffer.from('"type":"join"')))).toBe(true); // recorded
    expect(frames.some((f) => f.includes(Buffer.from('"type":"upload"')))).toBe(false);
    expect(relay.chunkRows()).toBe(0);
    expect(relay.messageRows(code)).toBe(0);
  } finally {
    await relay.restart();
  }
});
