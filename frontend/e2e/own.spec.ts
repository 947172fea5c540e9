import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, openApp, SHARED_DATA, shot, test } from './fixtures';
import type { Page } from '@playwright/test';

// Raúl Fernández (215 resources): one Synthea patient.
const RAUL = join(SHARED_DATA, 'synthea-r4', 'patient-a464d81c-9711-436b-a0e9-a3c9f65dbda9.json');

async function importRaul(page: Page) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Import' }).click();
  await page.getByTestId('file-input').setInputFiles([RAUL]);
  await expect(page.getByTestId('import-job').first()).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
}

async function goDashboard(page: Page) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  await expect(page.getByTestId('patient-name')).toHaveText('Raúl Fernández');
}

test('own entries: a weight and a blood pressure on the dashboard and in the chart; edit one, delete one; imported records offer no edit', async ({ page, server, watch }) => {
  await openApp(page, server);
  await importRaul(page);
  await goDashboard(page);

  // A weight.
  await page.getByTestId('own-add').click();
  const dialog = page.getByRole('dialog');
  await dialog.getByTestId('own-kind').selectOption('weight');
  await dialog.getByTestId('own-value').fill('72.5');
  await dialog.getByTestId('own-save').click();
  await expect(dialog).toBeHidden();
  // A blood pressure.
  await page.getByTestId('own-add').click();
  await dialog.getByTestId('own-kind').selectOption('blood-pressure');
  await dialog.getByTestId('own-value').fill('128');
  await dialog.getByTestId('own-value2').fill('82');
  await dialog.getByTestId('own-save').click();
  await expect(dialog).toBeHidden();

  // Both are the latest vitals on the dashboard.
  const vitals = page.locator('section.card', { has: page.getByRole('heading', { name: 'Latest vitals' }) });
  await expect(vitals).toContainText('72.5');
  await expect(vitals).toContainText('128');
  await expect(vitals).toContainText('82');
  await shot(page, 'own-dashboard');

  // In the chart of body weight.
  await vitals.getByRole('link', { name: /weight/i }).first().click();
  await expect(page).toHaveURL(/labs/);
  await expect(page.locator('main')).toContainText('72.5');
  await shot(page, 'own-weight-chart');

  // Stored as FHIR with LOINC and UCUM, in the person's "Entered by me" source.
  const sources = await server.api<{ id: number; name: string; self: boolean; resource_count: number }[]>('/sources');
  const own = sources.find((s) => s.self)!;
  expect(own.name).toBe('Entered by me');
  const weights = await server.api<{ items: { id: string; resource: { valueQuantity: { value: number; code: string; system: string } } }[] }>(
    `/resources?type=Observation&code=${encodeURIComponent('http://loinc.org|29463-7')}&source=${own.id}`,
  );
  expect(weights.items).toHaveLength(1);
  expect(weights.items[0].resource.valueQuantity).toMatchObject({ value: 72.5, code: 'kg', system: 'http://unitsofmeasure.org' });

  // Edit the weight from My entries.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'My entries' }).click();
  const list = page.getByTestId('own-list');
  await expect(list.locator('tbody tr')).toHaveCount(2);
  await list.locator('tr', { hasText: /weight/i }).getByRole('button', { name: 'Change' }).click();
  await expect(dialog.getByTestId('own-value')).toHaveValue('72.5');
  await dialog.getByTestId('own-value').fill('71.2');
  await dialog.getByTestId('own-save').click();
  await expect(dialog).toBeHidden();
  await expect(list.locator('tr', { hasText: /weight/i })).toContainText('71.2');

  // Delete the blood pressure (from its own page).
  await list.locator('tr', { hasText: /blood pressure/i }).getByRole('link').click();
  await expect(page.getByTestId('self-entered')).toHaveText('Entered by you');
  await page.getByTestId('own-edit').click();
  await dialog.getByTestId('own-delete').click();
  await dialog.getByTestId('own-delete-confirm').click();
  await expect(page.getByTestId('own-list').locator('tbody tr')).toHaveCount(1);

  await goDashboard(page);
  await expect(vitals).toContainText('71.2');
  await expect(vitals).not.toContainText('72.5');

  // An imported record offers no edit.
  const conds = await server.api<{ items: { id: string; source_id: number }[] }>('/resources?type=Condition&limit=1');
  await page.goto(`${server.origin}#/records/Condition/${conds.items[0].id}`);
  await expect(page.locator('.detail-head h1')).toBeVisible();
  await expect(page.getByTestId('own-edit')).toHaveCount(0);
  await expect(page.getByTestId('self-entered')).toHaveCount(0);
  // And the API refuses it.
  const res = await fetch(new URL(`api/v1/resources/Condition/${conds.items[0].id}`, server.origin), {
    method: 'DELETE',
    headers: { Authorization: `Bearer ${server.token}` },
  });
  expect(res.status).toBe(409);
  expect((await res.json()).error.code).toBe('not_editable');
  expect(watch.errors).toEqual([]);
});

test('printable summary of a Synthea patient: sections chosen, no app chrome on paper', async ({ page, server, watch }) => {
  await openApp(page, server);
  await importRaul(page);
  await goDashboard(page);
  await page.getByTestId('open-summary').click();
  const paper = page.getByTestId('summary-paper');
  await expect(paper).toBeVisible();
  await expect(page.getByTestId('summary-name')).toHaveText('Raúl Fernández');
  for (const h of ['Active problems', 'Medications', 'Allergies and intolerances', 'Immunizations', 'Results', 'Vital signs', 'Recent visits']) {
    await expect(paper.getByRole('heading', { name: h, exact: true })).toBeVisible();
  }
  // The person leaves procedures out.
  await page.getByTestId('section-procedures').uncheck();
  await expect(paper.getByRole('heading', { name: 'Procedures', exact: true })).toHaveCount(0);
  await page.getByTestId('section-procedures').check();
  await expect(paper.getByRole('heading', { name: 'Procedures', exact: true })).toBeVisible();

  await page.emulateMedia({ media: 'print' });
  await expect(page.locator('.app-header')).toBeHidden();
  await expect(page.locator('.summary-options')).toBeHidden();
  await expect(paper).toBeVisible();
  await shot(page, 'print-summary');
  await page.emulateMedia({ media: 'screen' });

  // The same document as FHIR: an IPS Bundle.
  const people = await server.api<{ id: number }[]>('/profiles');
  const ips = await server.api<{ type: string; entry: { resource: { resourceType: string; section: { code: { coding: { code: string }[] } }[] } }[] }>(
    `/export/ips?profile=${people[0].id}`,
  );
  expect(ips.type).toBe('document');
  expect(ips.entry[0].resource.resourceType).toBe('Composition');
  expect(ips.entry[0].resource.section.map((s) => s.code.coding[0].code).slice(0, 3)).toEqual(['11450-4', '10160-0', '48765-2']);

  // Importing an IPS document shows it as one item with its sections, entries resolved.
  const file = join(server.tmp, 'raul-ips.json');
  writeFileSync(file, JSON.stringify(ips));
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Import' }).click();
  await page.getByTestId('file-input').setInputFiles([file]);
  await expect(page.getByTestId('import-job').last()).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
  const comps = await server.api<{ items: { id: string; source_id: number }[] }>('/resources?type=Composition');
  expect(comps.items).toHaveLength(1);
  await page.goto(`${server.origin}#/records/Composition/${comps.items[0].id}?source=${comps.items[0].source_id}`);
  const secs = page.getByTestId('composition-section');
  await expect(secs).toHaveCount(ips.entry[0].resource.section.length);
  await expect(secs.first()).toContainText('Active problems');
  await expect(secs.first().getByRole('link', { name: 'Prediabetes' })).toBeVisible();
  await expect(secs.nth(2)).toContainText('No allergies or intolerances are recorded.');
  await shot(page, 'ips-imported');
  expect(watch.errors).toEqual([]);
});
