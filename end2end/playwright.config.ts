import { defineConfig, devices } from '@playwright/test';
import type { RelayOptions } from './tests/support';

// The same tests run against both builds of the app:
// - ssr: the release server (`make run`'s build) renders the pages and relays messages.
// - static: the Trunk bundle (dist/, built with EC_RELAY_ORIGIN=http://127.0.0.1:3110) on a
//   plain static host, talking to a relay on another origin.
// The relays are started by the tests themselves (tests/support.ts), so a test can kill one
// and start it again.
for (const name of ['SERVER_BIN', 'LEPTOS_SITE_ROOT', 'STATIC_DIST']) {
  if (!process.env[name]) throw new Error(`${name} must be set: run the browser tests via \`make e2e\``);
}
const SSR_PORT = 3107;
const RELAY_PORT = 3110;
const STATIC_PORT = 3111;

const chromium = {
  browserName: 'chromium' as const,
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
  trace: 'off' as const,
};

export default defineConfig<RelayOptions>({
  testDir: './tests',
  timeout: 90_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  // One worker: the relays listen on fixed ports (the static bundle names its relay's).
  workers: 1,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [['list']],
  use: chromium,
  projects: [
    {
      name: 'ssr',
      testIgnore: /screenshots|bundle/,
      use: { baseURL: `http://127.0.0.1:${SSR_PORT}`, relayPort: SSR_PORT },
    },
    {
      name: 'static',
      // tls: the relay's own HTTPS, which only the server-rendered build is served from.
      testIgnore: /screenshots|tls/,
      use: {
        baseURL: `http://127.0.0.1:${STATIC_PORT}`,
        relayPort: RELAY_PORT,
        allowedOrigin: `http://127.0.0.1:${STATIC_PORT}`,
      },
    },
    {
      // `make screenshots` only: the pictures in README.md.
      name: 'screenshots',
      testMatch: /screenshots/,
      use: { baseURL: `http://127.0.0.1:${SSR_PORT}`, relayPort: SSR_PORT, ...devices['Desktop Chrome'], ...chromium },
    },
  ],
  webServer: {
    command: `node static-server.mjs ${process.env.STATIC_DIST} ${STATIC_PORT}`,
    url: `http://127.0.0.1:${STATIC_PORT}/healthz`,
    reuseExistingServer: false,
    timeout: 30_000,
  },
});
