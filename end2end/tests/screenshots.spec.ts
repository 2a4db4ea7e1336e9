// `make screenshots`: the pictures in README.md (docs/screenshots/), made from the real app.
// Not part of `make test`, which must leave the tree as it found it.
import * as path from 'node:path';
import { test, expect, enterRoom, generateCode, sealedCards, send } from './support';

const out = (name: string) => path.join(__dirname, '..', '..', 'docs', 'screenshots', name);

test('landing page and a room, light and dark', async ({ people }) => {
  for (const colorScheme of ['light', 'dark'] as const) {
    const size = { viewport: { width: 900, height: 900 }, colorScheme };
    const alice = await people.open(size);
    const bob = await people.open(size);
    const code = await generateCode(alice);
    await alice.screenshot({ path: out(`landing-${colorScheme}.png`), fullPage: true });
    await enterRoom(alice, code);
    await enterRoom(bob, code);
    await send(alice, 'The door code is 4711. This message burns once you have read it.');
    await send(alice, 'And this one waits until you click it.');
    await expect(sealedCards(bob)).toHaveCount(2);
    await sealedCards(bob).first().click();
    await expect(bob.locator('.card .text')).toHaveCount(1);
    await bob.getByLabel('Message', { exact: true }).fill('Got it, thanks');
    await expect(alice.getByText('Read and deleted from the server')).toBeVisible();
    await bob.screenshot({ path: out(`room-${colorScheme}.png`), fullPage: true });
  }
});
