// Live events in a browser against `serve`: work done through the API (not the page) shows up
// without a reload; background sync in the Sources view; start-up, sync schedule and webhooks in
// Settings.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import type { Page } from '@playwright/test';
import { expect, keyringMissing, openApp, sandboxTest, SHARED_DATA, shot, test, type Server } from './fixtures';

type Counts = Record<string, number>;
interface Source {
  id: number;
  kind: string;
  name: string;
  status: string;
  syncing: boolean;
  last_sync: string | null;
  resource_count: number;
}
interface SyncRun {
  id: number;
  trigger: string;
  status: string;
  added: number;
}

const RAUL = join(SHARED_DATA, 'synthea-r4', 'patient-a464d81c-9711-436b-a0e9-a3c9f65dbda9.json');
const ALBERTO = join(SHARED_DATA, 'synthea-r4', 'patient-fc712d1f-5a2e-4407-9c55-a2a2bad623c2.json');
const GARRETT = join(SHARED_DATA, 'synthea-r4', 'patient-5a72e290-8102-4c8a-84f7-f838387508b2.json');
const DEMO = 'Demo Hospital (sandbox)';

/** An import done by "another program": POST /imports with the token, not through the page. */
async function importViaApi(server: Server, path: string): Promise<{ source_id: number; counts: Counts }> {
  const form = new FormData();
  form.append('file', new Blob([readFileSync(path)], { type: 'application/json' }), basename(path));
  return server.api('/imports', { method: 'POST', body: form });
}

/** The dashboard's tiles show exactly these counts. */
async function expectTiles(page: Page, counts: Counts) {
  const types = Object.entries(counts).filter(([, n]) => n > 0);
  await expect(page.getByTestId('counts').locator('li')).toHaveCount(types.length);
  for (const [type, n] of types) await expect(page.getByTestId(`count-${type}`), type).toHaveText(n.toLocaleString('en-GB'));
}

/** Marks the page so a reload (which would clear it) is noticed. */
async function markPage(page: Page) {
  await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
}
async function expectNoReload(page: Page) {
  expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
}

/** Records every text the sync progress cells show (states can be shorter than a poll). */
async function recordProgress(page: Page) {
  await page.evaluate(() => {
    const w = window as unknown as { __progress: string[] };
    w.__progress = [];
    const look = () =>
      document.querySelectorAll('[data-testid="sync-progress"]').forEach((el) => {
        const t = el.textContent ?? '';
        if (w.__progress[w.__progress.length - 1] !== t) w.__progress.push(t);
      });
    new MutationObserver(look).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}
async function progressSeen(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __progress: string[] }).__progress);
}

/** A webhook subscriber on 127.0.0.1 that checks X-Hub-Signature with its secret. */
async function startSubscriber(echo = true) {
  const secret = randomBytes(24).toString('hex');
  const deliveries: { event: string; data: Record<string, unknown> }[] = [];
  let rejected = 0;
  const srv: HttpServer = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Content-Type-Options': 'nosniff' });
      res.end(echo ? (u.searchParams.get('hub.challenge') ?? '') : 'no');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const want = Buffer.from('sha256=' + createHmac('sha256', secret).update(body).digest('hex'));
      const got = Buffer.from(String(req.headers['x-hub-signature'] ?? ''));
      if (got.length !== want.length || !timingSafeEqual(got, want)) {
        rejected++;
        res.writeHead(401).end();
        return;
      }
      deliveries.push(JSON.parse(body.toString('utf8')));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const callback = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/hook/${randomBytes(8).toString('hex')}`;
  return { secret, callback, deliveries, rejected: () => rejected, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

async function subscribe(server: Server, callback: string, secret: string, events: string, include = false) {
  const form = new URLSearchParams({ 'hub.mode': 'subscribe', 'hub.callback': callback, 'hub.events': events, 'hub.secret': secret, 'hub.lease_seconds': '86400' });
  if (include) form.set('hub.include', 'resource');
  return server.api<{ id: string }>('/hub', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString() });
}

test('the dashboard and sources follow imports done through the API, without a reload', async ({ page, server, watch }) => {
  const sub = await startSubscriber();
  try {
    const { id: subId } = await subscribe(server, sub.callback, sub.secret, 'import.done,resources.changed', true);
    await expect.poll(async () => (await server.api<{ id: string; state: string }[]>('/hub/subscriptions')).find((s) => s.id === subId)?.state).toBe('active');

    await importViaApi(server, RAUL);
    // The page reads live events from the real SSE endpoint (fetch with the token), not polling.
    const stream = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/events' && r.request().method() === 'GET');
    await openApp(page, server);
    const sse = await stream;
    expect(sse.status()).toBe(200);
    expect(sse.headers()['content-type']).toContain('text/event-stream');
    expect(sse.request().headers()['authorization']).toBe(`Bearer ${server.token}`);
    expect(sse.url()).not.toContain('token');

    const before = await server.api<Counts>('/resources/counts');
    await expect(page.getByTestId('patient-name')).toHaveText('Raúl Fernández');
    await expectTiles(page, before);
    await markPage(page);

    // Another program imports a second person's file.
    const t0 = Date.now();
    const res = await importViaApi(server, ALBERTO);
    const after = await server.api<Counts>('/resources/counts');
    expect(after).not.toEqual(before);
    await expectTiles(page, after);
    const ms = Date.now() - t0;
    console.log(`dashboard updated ${ms} ms after the import request was sent (import included)`);
    test.info().annotations.push({ type: 'import-to-dashboard-ms', description: String(ms) });
    await expectNoReload(page);

    // The webhook subscriber got the same import, signed.
    await expect.poll(() => sub.deliveries.filter((d) => d.event === 'import.done').length).toBe(2);
    const done = sub.deliveries.filter((d) => d.event === 'import.done')[1];
    expect(done.data.source_id).toBe(res.source_id);
    expect(done.data.counts).toEqual(res.counts);
    expect(sub.rejected()).toBe(0);

    // The sources list follows too (client-side navigation, then another API import).
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sources' }).click();
    await expect(page.locator('tr[data-source-id]')).toHaveCount(2);
    const third = await importViaApi(server, GARRETT);
    await expect(page.locator(`tr[data-source-id="${third.source_id}"]`)).toBeVisible();
    await expect(page.locator('tr[data-source-id]')).toHaveCount(3);
    // File sources have no sync actions.
    await expect(page.getByRole('button', { name: 'Sync all' })).toHaveCount(0);
    await expectNoReload(page);

    // Settings: start-up (this server build has no window), the schedule, and the webhook.
    const failing = await startSubscriber(false);
    try {
      await subscribe(server, failing.callback, failing.secret, 'sync.done');
      await expect.poll(async () => (await server.api<{ state: string }[]>('/hub/subscriptions')).map((s) => s.state).sort()).toEqual(['active', 'failed']);
    } finally {
      await failing.close();
    }
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
    const startup = page.locator('#startup');
    const box = startup.getByRole('checkbox', { name: /Start Fasten when I log in/ });
    await expect(box).toBeVisible();
    const prefs = await server.api<{ autostart_supported: boolean; autostart_note?: string }>('/preferences');
    if (!prefs.autostart_supported) {
      await expect(box).toBeDisabled();
      await expect(startup.getByTestId('autostart-note')).toHaveText(prefs.autostart_note!);
    }
    const interval = startup.getByLabel('Sync connected providers');
    await expect(interval).toHaveValue('12h');
    await interval.selectOption('6h');
    await expect(startup.getByRole('status')).toHaveText('Connected providers will be synced every 6 hours.');
    expect((await server.api<{ sync_interval: string }>('/preferences')).sync_interval).toBe('6h');

    const hooks = page.locator('#webhooks');
    const list = hooks.getByRole('list', { name: 'Subscriptions' });
    await expect(list.getByRole('listitem')).toHaveCount(2);
    const active = list.locator(`[data-subscription-id="${subId}"]`);
    await expect(active).toContainText('Active');
    await expect(active).toContainText('import.done, resources.changed');
    await expect(list.locator('[data-state="failed"]')).toContainText('Never confirmed');
    await active.getByRole('checkbox', { name: /Allow full records/ }).click();
    await expect(active.getByRole('checkbox', { name: /Allow full records/ })).toBeChecked();
    await expect(hooks.getByRole('status')).toContainText('may now receive full records');
    expect((await server.api<{ id: string; allowed_resources: boolean }[]>('/hub/subscriptions')).find((s) => s.id === subId)?.allowed_resources).toBe(true);
    await hooks.getByText('How a tool subscribes').click();
    await shot(page, 'settings-startup-webhooks');

    await list.locator('[data-state="failed"]').getByRole('button', { name: /^Delete the subscription/ }).click();
    await page.getByRole('dialog', { name: 'Delete this subscription?' }).getByRole('button', { name: 'Delete' }).click();
    await expect(list.getByRole('listitem')).toHaveCount(1);
    expect(await server.api<unknown[]>('/hub/subscriptions')).toHaveLength(1);

    expect(watch.foreign).toEqual([]);
    expect(watch.errors).toEqual([]);
    expect(watch.csp).toEqual([]);
  } finally {
    await sub.close();
  }
});

sandboxTest.describe('background sync of a connected provider', () => {
  const missing = keyringMissing();
  sandboxTest.skip(!!missing, missing ?? '');

  sandboxTest('a sync shows up live on the dashboard and in the sources view', async ({ page, context, server, watch }) => {
    await server.api('/installation', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'Ada Lovelace', email: 'ada@example.org' }),
    });
    await importViaApi(server, ALBERTO);
    await openApp(page, server);
    const before = await server.api<Counts>('/resources/counts');
    await expectTiles(page, before);
    await markPage(page);
    // A second window on the Sources view watches the same sync.
    const sourcesPage = await context.newPage();
    await openApp(sourcesPage, server);
    await sourcesPage.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sources' }).click();
    await expect(sourcesPage.locator('tr[data-source-id]')).toHaveCount(1);
    await markPage(sourcesPage);
    await recordProgress(sourcesPage);

    // Connect through the API; the test plays the user in the provider's portal (another page).
    const started = await server.api<{ authorize_url: string }>('/connect', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ provider: 'demo' }),
    });
    const t0 = Date.now();
    const portal = await context.newPage();
    await portal.goto(started.authorize_url);
    await portal.getByRole('radio', { name: /Raúl Fernández/ }).check();
    await portal.getByRole('button', { name: 'Allow' }).click();
    await expect(portal.getByRole('heading', { name: "You're connected" })).toBeVisible();
    await portal.close();

    // The first sync runs in the background; the dashboard changes by itself.
    let demo: Source | undefined;
    await expect
      .poll(async () => {
        demo = (await server.api<Source[]>('/sources')).find((s) => s.kind === 'provider');
        return !!demo?.last_sync && !demo.syncing;
      }, { timeout: 60_000 })
      .toBe(true);
    const after = await server.api<Counts>('/resources/counts');
    expect(Object.values(after).reduce((a, b) => a + b, 0)).toBe(Object.values(before).reduce((a, b) => a + b, 0) + demo!.resource_count);
    await expectTiles(page, after);
    console.log(`dashboard showed the synced records ${Date.now() - t0} ms after the portal opened (sign-in and sync included)`);
    await expectNoReload(page);

    // Sources (the other window): the new source appeared, showed the sync while it ran, then
    // its result and status in plain words.
    const row = sourcesPage.locator(`tr[data-source-id="${demo!.id}"]`);
    await expect(row).toContainText(`Just synced: ${demo!.resource_count} new, 0 updated.`);
    await expect(row.getByTestId('sync-status')).toContainText('Connected');
    await expect(row.getByTestId('sync-status')).toContainText('Synced');
    // On loopback the whole first sync takes tens of milliseconds (3 requests for 215 records), so
    // whether "Syncing…" was on screen long enough for a render is luck: logged, not asserted (the
    // unit tests cover the progress display; "Sync now" below shows it every time).
    console.log(`the Sources view showed during the first sync: ${JSON.stringify(await progressSeen(sourcesPage))}`);
    await expectNoReload(sourcesPage);

    // "Sync now": progress at once, then the result.
    await recordProgress(sourcesPage);
    await row.getByRole('button', { name: `Sync ${DEMO} now` }).click();
    await expect(row).toContainText('Just synced: 0 new, 0 updated.');
    await expect(row.getByTestId('sync-progress')).toHaveCount(0);
    expect((await progressSeen(sourcesPage))[0]?.trim()).toMatch(/^(Starting to sync|Syncing)…/);

    // A sync asked for through the API by another program shows up in the open history.
    await row.getByRole('button', { name: `Sync history of ${DEMO}` }).click();
    const history = sourcesPage.getByTestId('sync-history');
    await expect(history.locator('tbody tr')).toHaveCount(2);
    await server.api('/sync', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    await expect(history.locator('tbody tr')).toHaveCount(3);
    await expect.poll(async () => (await server.api<SyncRun[]>(`/sources/${demo!.id}/sync-runs`)).every((r) => r.status === 'ok')).toBe(true);
    const runs = await server.api<SyncRun[]>(`/sources/${demo!.id}/sync-runs`);
    expect(runs.map((r) => r.trigger)).toEqual(['manual', 'manual', 'connect']);
    expect(runs[2].added).toBe(demo!.resource_count);
    await expect(history.locator('tbody tr').last()).toContainText('After connecting');
    await expect(history.locator('tbody tr').last()).toContainText(String(demo!.resource_count));
    await expect(history.locator('tbody tr').first()).toContainText('Synced');
    await shot(sourcesPage, 'sources-sync-history');
    await expectNoReload(sourcesPage);
    await expectNoReload(page);

    expect(watch.foreign).toEqual([]);
    expect(watch.errors).toEqual([]);
    expect(watch.csp).toEqual([]);
  });
});
