import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, openApp, SHARED_DATA, shot, test } from './fixtures';
import type { Page } from '@playwright/test';

const RAUL = join(SHARED_DATA, 'synthea-r4', 'patient-a464d81c-9711-436b-a0e9-a3c9f65dbda9.json');
const OTHER = join(SHARED_DATA, 'synthea-r4', 'patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json');

async function importFile(page: Page, file: string) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Import' }).click();
  await page.getByTestId('file-input').setInputFiles([file]);
  await expect(page.getByTestId('import-job').last()).toHaveAttribute('data-state', 'done', { timeout: 60_000 });
}

async function goSettings(page: Page) {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
  await expect(page.getByRole('heading', { name: 'Backup and restore' })).toBeVisible();
}

type Counts = Record<string, number>;

test('backup and restore in Settings: the backup is checked and shown, replaces the records only when confirmed, keeps the previous ones; a foreign file changes nothing', async ({ page, server, watch }) => {
  await openApp(page, server);
  await importFile(page, RAUL);
  const backedUp = await server.api<Counts>('/resources/counts');
  expect(Object.values(backedUp).reduce((a, b) => a + b, 0)).toBeGreaterThan(100);

  // Save a backup: a browser downloads it.
  await goSettings(page);
  const downloading = page.waitForEvent('download');
  await page.getByRole('button', { name: 'Save a backup…' }).click();
  const download = await downloading;
  expect(download.suggestedFilename()).toMatch(/^fasten-backup-\d{4}-\d{2}-\d{2}\.db$/);
  const file = join(server.tmp, download.suggestedFilename());
  await download.saveAs(file);
  await expect(page.getByRole('status')).toContainText('Backup downloaded as');

  // The records change after the backup.
  await importFile(page, OTHER);
  const changed = await server.api<Counts>('/resources/counts');
  expect(changed).not.toEqual(backedUp);

  // A file that is not a backup: a clear message, nothing changes.
  const junk = join(server.tmp, 'holiday-photos.zip');
  writeFileSync(junk, 'PK\u0003\u0004 not a database at all '.repeat(20));
  await goSettings(page);
  await page.getByTestId('restore-file').setInputFiles([junk]);
  await expect(page.locator('.notice-error')).toContainText('holiday-photos.zip is not a Fasten backup');
  await shot(page, 'restore-refused');
  expect(await server.api<Counts>('/resources/counts')).toEqual(changed);

  // The backup: checked and shown; Cancel changes nothing.
  await page.getByTestId('restore-file').setInputFiles([file]);
  const dialog = page.getByRole('dialog', { name: 'Restore this backup?' });
  await expect(dialog.getByTestId('backup-contents')).toContainText('is a good backup');
  await expect(dialog.getByTestId('backup-contents')).toContainText('Raúl');
  await expect(dialog.getByTestId('backup-contents')).not.toContainText('Observation'); // names, not types
  await shot(page, 'restore-confirm');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByRole('status')).toContainText('Nothing was changed.');
  expect(await server.api<Counts>('/resources/counts')).toEqual(changed);

  // Confirmed: exactly the backed-up records, the previous ones kept beside the database.
  await page.getByTestId('restore-file').setInputFiles([file]);
  await dialog.getByRole('button', { name: 'Replace my records' }).click();
  const done = page.getByTestId('restore-done');
  await expect(done).toContainText('Restored from');
  await expect(done).toContainText('fasten-before-restore-');
  await shot(page, 'restore-done');
  expect(await server.api<Counts>('/resources/counts')).toEqual(backedUp);
  const kept = readdirSync(server.dataDir).filter((f) => f.startsWith('fasten-before-restore-'));
  expect(kept).toHaveLength(1);
  expect(existsSync(join(server.dataDir, kept[0]))).toBe(true);

  // The app shows the restored records: one person again, on the dashboard.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
  await expect(page.getByTestId('patient-name')).toHaveText('Raúl Fernández');
  // Chromium logs the refused file's 422 as a failed load; nothing else went wrong.
  expect(watch.errors.filter((e) => !/status of 422 .*\/api\/v1\/restore\)$/.test(e))).toEqual([]);
});
