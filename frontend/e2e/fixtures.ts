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

async function startServer(): Promise<{ server: Server; proc: ChildProcess }> {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: build it first (make build, or: cd .. && go build -o build/bin/fasten-desktop .)`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'fasten-e2e-'));
  const dataDir = join(tmp, 'data');
  mkdirSync(dataDir);
  const token = randomBytes(32).toString('hex');
  const proc = spawn(BINARY, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    env: { ...process.env, FASTEN_API_TOKEN: token, FASTEN_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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

async function stopServer(proc: ChildProcess): Promise<void> {
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

export const test = base.extend<{ server: Server; watch: PageWatch }>({
  // eslint-disable-next-line no-empty-pattern
  server: async ({}, use, testInfo) => {
    const { server, proc } = await startServer();
    try {
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
