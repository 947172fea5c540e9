// Starts `fasten-desktop serve` on a fresh temp data dir for each test, and gives the test the
// page URL (with #token=...), the token, and a small API client that uses it.
import { test as base, expect, type Page } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const FRONTEND = resolve(here, '..');
export const BINARY = process.env.FASTEN_BIN ?? resolve(FRONTEND, '../build/bin/fasten-desktop');
export const SHARED_DATA = process.env.FASTEN_SHARED_DATA ?? resolve(FRONTEND, '../../shared/data');
export const SCREENSHOTS = resolve(FRONTEND, 'test-results/screenshots');

export interface Server {
  /** http://127.0.0.1:PORT/ */
  origin: string;
  token: string;
  /** The URL to open: origin + #token=... */
  openUrl: string;
  dataDir: string;
  tmp: string;
  api<T = unknown>(path: string, init?: RequestInit): Promise<T>;
  log(): string;
}

export interface ServerOptions {
  /** --lighthouse-url for serve (a sandbox Lighthouse); none: the default. */
  lighthouseUrl?: string;
}

export async function startServer(opts: ServerOptions = {}): Promise<{ server: Server; proc: ChildProcess }> {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: build it first (make build, or: cd .. && go build -o build/bin/fasten-desktop .)`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'fasten-e2e-'));
  const dataDir = join(tmp, 'data');
  mkdirSync(dataDir);
  const token = randomBytes(32).toString('hex');
  const args = ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir];
  if (opts.lighthouseUrl) args.push('--lighthouse-url', opts.lighthouseUrl);
  const env: NodeJS.ProcessEnv = { ...process.env, FASTEN_API_TOKEN: token, FASTEN_DATA_DIR: dataDir };
  if (!opts.lighthouseUrl) delete env.FASTEN_LIGHTHOUSE_URL;
  const proc = spawn(BINARY, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const origin = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no URL within 30 s. Output:\n${out}`)), 30_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolveUrl(`http://127.0.0.1:${m[1]}/`);
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before printing its URL. Output:\n${out}`));
    });
  });
  // Keep draining output so the process never blocks on a full pipe.
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));

  const api = async <T,>(path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(new URL('api/v1' + path, origin), {
      ...init,
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', ...(init.headers ?? {}) },
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: HTTP ${res.status}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  const server: Server = { origin, token, openUrl: `${origin}#token=${token}`, dataDir, tmp, api, log: () => out };
  return { server, proc };
}

/** A running `fasten-desktop sandbox`: the demo hospital and a Lighthouse on loopback. */
export interface Sandbox {
  fhirBase: string;
  lighthouseUrl: string;
  log(): string;
}

/** Starts `fasten-desktop sandbox` on free loopback ports and reads its fhir_base= / lighthouse_url= lines. */
export async function startSandbox(): Promise<{ sandbox: Sandbox; proc: ChildProcess; tmp: string }> {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: build it first`);
  const tmp = mkdtempSync(join(tmpdir(), 'fasten-e2e-sandbox-'));
  const proc = spawn(BINARY, ['sandbox', '--listen', '127.0.0.1:0', '--lighthouse-listen', '127.0.0.1:0', '--data-dir', tmp], {
    env: { ...process.env, FASTEN_SHARED_DATA: SHARED_DATA, FASTEN_DATA_DIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const sandbox = await new Promise<Sandbox>((resolveIt, reject) => {
    const timer = setTimeout(() => reject(new Error(`sandbox printed no URLs within 60 s. Output:\n${out}`)), 60_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const fhir = /^fhir_base=(\S+)$/m.exec(out);
      const lh = /^lighthouse_url=(\S+)$/m.exec(out);
      if (fhir && lh) {
        clearTimeout(timer);
        resolveIt({ fhirBase: fhir[1], lighthouseUrl: lh[1], log: () => out });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sandbox exited with ${code}. Output:\n${out}`));
    });
  });
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  return { sandbox, proc, tmp };
}

/**
 * Registering and connecting keep secrets in the OS keyring, so those tests need a Secret Service
 * (run the e2e under `dbus-run-session` with gnome-keyring-daemon unlocked; see README). Without
 * one they are skipped with this reason, unless FASTEN_REQUIRE_KEYRING=1 makes that a failure.
 */
export function keyringMissing(): string | null {
  if (process.env.DBUS_SESSION_BUS_ADDRESS) return null;
  const why = 'no session D-Bus with a Secret Service (run: dbus-run-session -- sh -c \'echo pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null; npm run e2e\')';
  if (process.env.FASTEN_REQUIRE_KEYRING === '1') throw new Error(`FASTEN_REQUIRE_KEYRING=1 but ${why}`);
  return why;
}

export async function stopServer(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export interface PageWatch {
  /** Requests to anything but the app's own origin (or data:/blob:). */
  foreign: string[];
  /** Console errors and page errors, CSP reports excepted. */
  errors: string[];
  /**
   * CSP violation reports. Chromium reports inline handlers and style attributes even while
   * parsing into an inert document (DOMPurify's work copy), so a hostile narrative yields
   * reports that say "The action has been blocked": the CSP working as the second wall.
   */
  csp: string[];
  info: string[];
}

export const test = base.extend<{ server: Server; watch: PageWatch; lighthouse: string | undefined; onboarded: boolean }>({
  // The Lighthouse serve uses (--lighthouse-url); specs that need one override this fixture with a sandbox.
  // eslint-disable-next-line no-empty-pattern
  lighthouse: async ({}, use) => use(undefined),
  // Tests that are not about the first-launch step start past it (as after "Skip").
  onboarded: [true, { option: true }],
  server: async ({ lighthouse, onboarded }, use, testInfo) => {
    const { server, proc } = await startServer({ lighthouseUrl: lighthouse });
    try {
      if (onboarded) await server.api('/settings', { method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ onboarding_done: true }) });
      await use(server);
    } finally {
      await stopServer(proc);
      if (testInfo.status !== testInfo.expectedStatus) {
        await testInfo.attach('serve.log', { body: server.log(), contentType: 'text/plain' });
      }
      rmSync(server.tmp, { recursive: true, force: true });
    }
  },
  watch: async ({ page, server }, use) => {
    const w: PageWatch = { foreign: [], errors: [], info: [], csp: [] };
    const own = new URL(server.origin).origin;
    page.on('request', (r) => {
      const u = r.url();
      if (u.startsWith('data:') || u.startsWith('blob:')) return;
      if (new URL(u).origin !== own) w.foreign.push(u);
    });
    // Nothing may leave the machine: refuse any request to another origin (and record it above).
    await page.route(
      (u) => u.origin !== own && u.protocol !== 'data:' && u.protocol !== 'blob:',
      (route) => route.abort('blockedbyclient'),
    );
    page.on('console', (m) => {
      // Routes that arrive in later versions answer 404 today; the app treats that as "absent",
      // but Chromium still logs the failed load.
      const optional = /\/api\/v1\/(profiles|installation|events)(\?|$)/.test(m.location().url ?? '');
      if (m.type() === 'error' && /Content Security Policy/.test(m.text())) {
        w.csp.push(m.text());
      } else if (m.type() === 'error' && !(optional && m.text().startsWith('Failed to load resource'))) {
        w.errors.push(`${m.text()} (${m.location().url ?? ''})`);
      }
      if (m.type() === 'info') w.info.push(m.text());
    });
    page.on('pageerror', (e) => w.errors.push(String(e)));
    await use(w);
  },
});

export { expect };

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Opens the app like a user: the URL printed by serve, with the token in the fragment. */
export async function openApp(page: Page, server: Server): Promise<void> {
  await page.goto(server.openUrl);
  await expect(page).not.toHaveURL(/token=/);
}

/**
 * `test` with a running `fasten-desktop sandbox` (demo hospital + Lighthouse) that serve uses
 * through --lighthouse-url.
 */
export const sandboxTest = test.extend<{ sandbox: Sandbox }>({
  // eslint-disable-next-line no-empty-pattern
  sandbox: async ({}, use, testInfo) => {
    const { sandbox, proc, tmp } = await startSandbox();
    try {
      await use(sandbox);
    } finally {
      await stopServer(proc);
      if (testInfo.status !== testInfo.expectedStatus) {
        await testInfo.attach('sandbox.log', { body: sandbox.log(), contentType: 'text/plain' });
      }
      rmSync(tmp, { recursive: true, force: true });
    }
  },
  lighthouse: async ({ sandbox }, use) => use(sandbox.lighthouseUrl),
});
