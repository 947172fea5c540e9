import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, openApp, SHARED_DATA, shot, test } from './fixtures';

// Raúl Fernández: an accented name, six glucose results, 215 resources.
const BUNDLE = join(SHARED_DATA, 'synthea-r4', 'patient-a464d81c-9711-436b-a0e9-a3c9f65dbda9.json');
const NAME = 'Raúl Fernández';

type Counts = Record<string, number>;
interface Source {
  id: number;
  name: string;
  resource_count: number;
}

function glucoseCount(): number {
  const b = JSON.parse(readFileSync(BUNDLE, 'utf8')) as { entry: { resource: { resourceType: string; code?: { coding?: { code?: string }[] }; valueQuantity?: unknown } }[] };
  return b.entry.filter((e) => e.resource.resourceType === 'Observation' && e.resource.code?.coding?.[0]?.code === '2339-0' && e.resource.valueQuantity).length;
}

test('import a Synthea bundle, read it everywhere, delete it', async ({ page, server, watch }) => {
  await openApp(page, server);
  expect(await page.evaluate(() => sessionStorage.getItem('fasten.apiToken'))).toBe(server.token);

  // First launch: the two ways in.
  await expect(page.getByRole('heading', { name: 'Welcome to Fasten' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Connect a provider' })).toBeDisabled();
  await shot(page, 'welcome');

  // Import through the UI (file picker).
  await page.getByRole('link', { name: 'Import a file' }).click();
  await expect(page.getByRole('heading', { name: 'Import files' })).toBeVisible();
  await page.getByTestId('file-input').setInputFiles(BUNDLE);
  const job = page.getByTestId('import-job');
  await expect(job).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
  await expect(job.getByTestId('import-result')).toBeVisible();
  const apiCounts = await server.api<Counts>('/resources/counts');
  const total = Object.values(apiCounts).reduce((a, b) => a + b, 0);
  expect(total).toBeGreaterThan(100);
  await expect(job).toContainText(`Imported ${total} records`);
  await shot(page, 'import-result');

  // Dashboard: the patient banner with the accented name, and the API's numbers.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  await expect(page.getByTestId('patient-name')).toHaveText(NAME);
  for (const [type, n] of Object.entries(apiCounts)) {
    await expect(page.getByTestId(`count-${type}`), type).toHaveText(n.toLocaleString('en-GB'));
  }
  await expect(page.getByTestId('counts').locator('li')).toHaveCount(Object.values(apiCounts).filter((n) => n > 0).length);
  await expect(page.getByRole('heading', { name: 'Latest labs' })).toBeVisible();
  await expect.poll(() => watch.info).toContain('fasten:ui-ready dashboard');
  await shot(page, 'dashboard');

  // A lab chart: glucose over time.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Labs' }).click();
  await page.getByRole('navigation', { name: 'Tests' }).getByRole('link', { name: /^Glucose/ }).click();
  const chart = page.getByTestId('lab-chart');
  await expect(chart.getByRole('heading', { name: 'Glucose' })).toBeVisible();
  const marks = chart.locator('svg .point');
  await expect(marks).toHaveCount(glucoseCount());
  await expect(chart.locator('svg')).toHaveAttribute('aria-label', /Glucose: \d+ values from/);
  await shot(page, 'lab-chart');

  // Search from the header.
  await page.getByRole('searchbox', { name: 'Search all records' }).fill('glucose');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await expect(page.getByRole('heading', { name: 'Results for “glucose”' })).toBeVisible();
  await expect(page.getByRole('list', { name: 'Search results' }).locator('li').first()).toBeVisible();
  await shot(page, 'search');

  // Timeline: newest first, more on scroll.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Timeline' }).click();
  const items = page.locator('.tl-item');
  await expect(items.first()).toBeVisible();
  await shot(page, 'timeline');
  const first = await items.count();
  if (total > first) {
    await page.locator('.tl-end').scrollIntoViewIfNeeded();
    await expect.poll(() => items.count()).toBeGreaterThan(first);
  }
  // Filter by type.
  await page.getByRole('group', { name: 'Types shown' }).getByRole('button', { name: 'Immunizations' }).click();
  await expect(page).toHaveURL(/types=Immunization/);
  await expect(items).toHaveCount(apiCounts.Immunization ?? 0);

  // A record's detail with the raw JSON.
  await items.first().getByRole('link').click();
  await expect(page.getByText('Raw FHIR JSON')).toBeVisible();
  await page.getByText('Raw FHIR JSON').click();
  await expect(page.getByLabel('Raw FHIR JSON')).toContainText('"resourceType": "Immunization"');

  // Sources: delete with a confirmation that says what goes.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sources' }).click();
  const sources = await server.api<Source[]>('/sources');
  expect(sources).toHaveLength(1);
  const row = page.locator(`tr[data-source-id="${sources[0].id}"]`);
  await expect(row).toContainText(String(sources[0].resource_count));
  await shot(page, 'sources');
  // Export this source as a FHIR Bundle (fetched with the token, saved through a Blob URL).
  const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: /^Export/ }).click()]);
  const bundle = JSON.parse(readFileSync(await download.path(), 'utf8')) as { resourceType: string; type: string; entry: unknown[] };
  expect(bundle.resourceType).toBe('Bundle');
  expect(bundle.entry).toHaveLength(total);
  expect(download.suggestedFilename()).toMatch(/\.json$/);
  await row.getByRole('button', { name: /^Delete/ }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog).toContainText(`Deleting it removes ${total.toLocaleString('en-GB')} records`);
  await expect(dialog.getByRole('button', { name: 'Keep it' })).toBeFocused();
  await shot(page, 'delete-dialog');
  await dialog.getByRole('button', { name: `Delete ${total.toLocaleString('en-GB')} records` }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('status')).toContainText('Deleted');
  await expect(page.getByText('No sources yet.')).toBeVisible();
  expect(await server.api<Counts>('/resources/counts')).toEqual({});
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  await expect(page.getByRole('heading', { name: 'Welcome to Fasten' })).toBeVisible();

  expect(watch.foreign).toEqual([]);
  expect(watch.errors).toEqual([]);
  expect(watch.csp).toEqual([]);
});

test('without the token the page says to open the printed link', async ({ page, server }) => {
  await page.goto(server.origin);
  await expect(page.getByRole('heading', { name: 'Fasten needs its access link' })).toBeVisible();
  await expect(page.getByRole('alert')).toContainText('Open the link printed by `fasten-desktop serve`');
});

test('settings shows the version from /health', async ({ page, server }) => {
  const health = await server.api<{ version: string }>('/health');
  await openApp(page, server);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
  await expect(page.getByTestId('app-version')).toHaveText(health.version);
});
