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
// A second server whose messages expire after two seconds, for the expiry journey.
const shortTtlPort = port + 1;
const shortTtlDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ephemeral-chat-e2e-ttl-'));
process.env.E2E_SHORT_TTL_URL = `http://127.0.0.1:${shortTtlPort}`;

function server(listenOn: number, dir: string, ttl: string) {
  return {
    command: serverBin!,
    url: `http://127.0.0.1:${listenOn}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: 'pipe' as const,
    stderr: 'pipe' as const,
    env: {
      PORT: String(listenOn),
      BIND_ADDR: '127.0.0.1',
      DATA_DIR: dir,
      LEPTOS_SITE_ROOT: siteRoot!,
      MESSAGE_TTL: ttl,
      RUST_LOG: 'info',
    },
  };
}

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
  webServer: [server(port, dataDir, '1h'), server(shortTtlPort, shortTtlDir, '2s')],
});
