import { defineConfig } from '@playwright/test';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

// The real release server (the build `make run` serves), on its own port, with a fresh SQLite
// data directory that the tests read to check that viewed messages leave no row.
const port = Number(process.env.E2E_PORT ?? 3107);
const serverBin = process.env.SERVER_BIN;
const siteRoot = process.env.LEPTOS_SITE_ROOT;
if (!serverBin || !siteRoot) {
  throw new Error('SERVER_BIN and LEPTOS_SITE_ROOT must point at the release build (run via `make test`)');
}
const dataDir = process.env.E2E_DATA_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ephemeral-chat-e2e-'));
process.env.E2E_DATA_DIR = dataDir;
process.env.E2E_BASE_URL = `http://127.0.0.1:${port}`;

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
    permissions: ['clipboard-read', 'clipboard-write'],
    trace: 'off',
  },
  webServer: {
    command: serverBin,
    url: `http://127.0.0.1:${port}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      PORT: String(port),
      BIND_ADDR: '127.0.0.1',
      DATA_DIR: dataDir,
      LEPTOS_SITE_ROOT: siteRoot,
      MESSAGE_TTL: '1h',
      RUST_LOG: 'info',
    },
  },
});
