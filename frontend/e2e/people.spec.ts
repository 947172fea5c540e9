import { join } from 'node:path';
import { expect, openApp, SHARED_DATA, shot, test, type Server } from './fixtures';
import type { Page } from '@playwright/test';

// Two different Synthea patients: Raúl Fernández (215 resources) and Alberto Atencio (76).
const RAUL = join(SHARED_DATA, 'synthea-r4', 'patient-a464d81c-9711-436b-a0e9-a3c9f65dbda9.json');
const ALBERTO = join(SHARED_DATA, 'synthea-r4', 'patient-fc712d1f-5a2e-4407-9c55-a2a2bad623c2.json');

type Counts = Record<string, number>;
interface Person {
  id: number;
  name: string;
  birth_date: string | null;
  resource_count: number;
}
interface Source {
  id: number;
  name: string;
  profile_id: number | null;
}

/** The dashboard shows exactly these counts: one tile per type, with the API's number. */
async function expectDashboardCounts(page: Page, counts: Counts) {
  const types = Object.entries(counts).filter(([, n]) => n > 0);
  await expect(page.getByTestId('counts').locator('li')).toHaveCount(types.length);
  for (const [type, n] of types) {
    await expect(page.getByTestId(`count-${type}`), type).toHaveText(n.toLocaleString('en-GB'));
  }
}

async function choosePerson(page: Page, name: string) {
  await page.getByTestId('person-switcher').click();
  await page.getByRole('menu', { name: 'Show the records of' }).getByRole('menuitemradio', { name: new RegExp(name) }).click();
  await expect(page.getByTestId('person-switcher')).toContainText(name);
}

async function countsOf(server: Server, id: number): Promise<Counts> {
  return server.api<Counts>(`/resources/counts?profile=${id}`);
}

test('two people: switch between them, each dashboard shows only their records, the household lists both', async ({ page, server, watch }) => {
  await openApp(page, server);
  await expect(page.getByRole('heading', { name: 'Welcome to Fasten' })).toBeVisible();

  // Import both patients' files through the UI (one import, two files).
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Import' }).click();
  await page.getByTestId('file-input').setInputFiles([RAUL, ALBERTO]);
  const jobs = page.getByTestId('import-job');
  await expect(jobs.first()).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
  await expect(jobs.last()).toHaveAttribute('data-state', 'done', { timeout: 60_000 });

  // Two people, from the Patient resources.
  const people = await server.api<Person[]>('/profiles');
  expect(people.map((p) => p.name).sort()).toEqual(['Alberto Atencio', 'Raúl Fernández']);
  const raul = people.find((p) => p.name === 'Raúl Fernández')!;
  const alberto = people.find((p) => p.name === 'Alberto Atencio')!;
  const raulCounts = await countsOf(server, raul.id);
  const albertoCounts = await countsOf(server, alberto.id);
  expect(raulCounts.Patient).toBe(1);
  expect(albertoCounts.Patient).toBe(1);
  expect(raulCounts).not.toEqual(albertoCounts);

  // Everyone: the household overview lists both, with their record counts.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  await expect(page.getByTestId('person-switcher')).toContainText('Everyone');
  const cards = page.getByTestId('household-person');
  await expect(cards).toHaveCount(2);
  for (const p of [raul, alberto]) {
    const card = page.locator(`[data-testid="household-person"][data-profile-id="${p.id}"]`);
    await expect(card).toContainText(p.name);
    await expect(card.getByTestId('household-records')).toHaveText(p.resource_count.toLocaleString('en-GB'));
  }
  // The bundles' practitioners and organizations name no patient: not linked to a person.
  const all = Object.values(await server.api<Counts>('/resources/counts')).reduce((a, b) => a + b, 0);
  const unlinked = all - raul.resource_count - alberto.resource_count;
  expect(unlinked).toBeGreaterThan(0);
  await expect(page.getByTestId('household-unlinked').getByTestId('unlinked-records')).toHaveText(unlinked.toLocaleString('en-GB'));
  await shot(page, 'people-household');

  // The switcher, open.
  await page.getByTestId('person-switcher').click();
  const menu = page.getByRole('menu', { name: 'Show the records of' });
  await expect(menu.getByRole('menuitemradio')).toHaveCount(3);
  await expect(menu.getByRole('menuitemradio', { name: /Everyone/ })).toHaveAttribute('aria-checked', 'true');
  await shot(page, 'people-switcher-open');
  await page.keyboard.press('Escape');
  await expect(menu).toBeHidden();

  // Raúl's dashboard: only his records.
  await choosePerson(page, 'Raúl Fernández');
  await expect(page.getByTestId('patient-name')).toHaveText('Raúl Fernández');
  await expectDashboardCounts(page, raulCounts);
  await expect(page.getByTestId('household-person')).toHaveCount(0);
  await shot(page, 'people-dashboard-raul');
  expect(await page.evaluate(() => localStorage.getItem('fasten.profile'))).toBe(String(raul.id));

  // Alberto's: only his.
  await choosePerson(page, 'Alberto Atencio');
  await expect(page.getByTestId('patient-name')).toHaveText('Alberto Atencio');
  await expectDashboardCounts(page, albertoCounts);
  await shot(page, 'people-dashboard-alberto');

  // Remembered across a reload.
  await page.reload();
  await expect(page.getByTestId('person-switcher')).toContainText('Alberto Atencio');
  await expect(page.getByTestId('patient-name')).toHaveText('Alberto Atencio');
  await expectDashboardCounts(page, albertoCounts);

  // Other views follow the person: Sources lists only his file; the timeline only his records.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sources' }).click();
  const sources = await server.api<Source[]>(`/sources?profile=${alberto.id}`);
  expect(sources).toHaveLength(1);
  expect(sources[0].profile_id).toBe(alberto.id);
  await expect(page.locator('tr[data-source-id]')).toHaveCount(1);
  await expect(page.locator(`tr[data-source-id="${sources[0].id}"]`)).toContainText('Alberto Atencio');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Timeline' }).click();
  await expect(page.locator('.tl-item').first()).toBeVisible();
  await page.getByRole('group', { name: 'Types shown' }).getByRole('button', { name: 'Immunizations' }).click();
  await expect(page.locator('.tl-item')).toHaveCount(albertoCounts.Immunization ?? 0);

  // Back to everyone: the household again.
  await choosePerson(page, 'Everyone');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  await expect(page.getByTestId('household-person')).toHaveCount(2);

  expect(watch.foreign).toEqual([]);
  expect(watch.errors).toEqual([]);
  expect(watch.csp).toEqual([]);
});

test('manage people: merge with undo, then delete with what goes', async ({ page, server, watch }) => {
  await openApp(page, server);
  // Import through the API (the first test covers the UI import).
  for (const f of [RAUL, ALBERTO]) {
    const body = new FormData();
    const { readFileSync } = await import('node:fs');
    body.append('file', new Blob([readFileSync(f)]), f.split('/').pop()!);
    await server.api('/imports', { method: 'POST', body });
  }
  const people = await server.api<Person[]>('/profiles');
  const raul = people.find((p) => p.name === 'Raúl Fernández')!;
  const alberto = people.find((p) => p.name === 'Alberto Atencio')!;
  const total = raul.resource_count + alberto.resource_count;
  // Alberto's file goes whole when he is deleted: his records and its unlinked ones.
  const [albertoFile] = await server.api<(Source & { resource_count: number })[]>(`/sources?profile=${alberto.id}`);
  const goes = albertoFile.resource_count;
  expect(goes).toBeGreaterThan(alberto.resource_count);

  const allBefore = Object.values(await server.api<Counts>('/resources/counts')).reduce((a, b) => a + b, 0);
  await page.reload();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'People' }).click();
  await expect(page.getByRole('heading', { name: 'People', level: 1 })).toBeVisible();
  await page.locator(`[data-testid="household-person"][data-profile-id="${raul.id}"]`).getByRole('link', { name: 'Manage Raúl Fernández' }).click();
  await expect(page.getByRole('heading', { name: 'Raúl Fernández', level: 1 })).toBeVisible();

  // Merge Alberto into Raúl: applied at once, undoable.
  await page.getByRole('combobox', { name: 'Person to merge into Raúl Fernández' }).selectOption(String(alberto.id));
  await page.getByRole('button', { name: 'Merge Alberto Atencio into Raúl Fernández' }).click();
  await expect(page.getByTestId('merge-bar')).toContainText('Alberto Atencio was merged into Raúl Fernández');
  expect((await server.api<Person[]>('/profiles')).map((p) => p.name)).toEqual(['Raúl Fernández']);
  // A person's counts also list the doctors and clinics their visits reference (issue 15): those
  // are not the person's own records.
  const own = Object.entries(await countsOf(server, raul.id)).filter(([t]) => !['Practitioner', 'PractitionerRole', 'Organization', 'Location'].includes(t));
  expect(own.reduce((a, [, n]) => a + n, 0)).toBe(total);
  await shot(page, 'people-merged');
  await page.getByTestId('merge-bar').getByRole('button', { name: 'Undo merge' }).click();
  await expect(page.getByTestId('merge-bar')).toBeHidden();
  const after = await server.api<Person[]>('/profiles');
  expect(after.map((p) => [p.name, p.resource_count])).toEqual([
    ['Raúl Fernández', raul.resource_count],
    ['Alberto Atencio', alberto.resource_count],
  ]);

  // Delete Alberto: the dialog says what goes, and it goes.
  await page.goto(`${server.origin}#/people/${alberto.id}`);
  await page.getByRole('button', { name: 'Delete Alberto Atencio…' }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByTestId('delete-plan')).toContainText(`removes ${goes.toLocaleString('en-GB')} records`);
  await expect(dialog.getByTestId('delete-plan')).toContainText(`${albertoFile.name} (${goes.toLocaleString('en-GB')} records)`);
  await expect(dialog.getByRole('button', { name: 'Keep Alberto Atencio' })).toBeFocused();
  await shot(page, 'people-delete-dialog');
  await dialog.getByRole('button', { name: `Delete Alberto Atencio and ${goes.toLocaleString('en-GB')} records` }).click();
  await expect(page.getByRole('heading', { name: 'People', level: 1 })).toBeVisible();
  expect((await server.api<Person[]>('/profiles')).map((p) => p.name)).toEqual(['Raúl Fernández']);
  const left = await server.api<Counts>('/resources/counts');
  expect(Object.values(left).reduce((a, b) => a + b, 0)).toBe(allBefore - goes);
  expect(await server.api<Source[]>('/sources')).toHaveLength(1);

  expect(watch.errors).toEqual([]);
  expect(watch.csp).toEqual([]);
});
