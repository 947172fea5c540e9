// Issue 15: a health record people can read. Names instead of types, results with values, visits
// with their contents, attachments that open, people who died shown as such. Screenshots land in
// test-results/screenshots/readable-*.png (look at them).
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { expect, openApp, shot, test, SHARED_DATA, type Server } from './fixtures';

const SYNTHEA = join(SHARED_DATA, 'synthea-r4');
// Barry Wolf died in 1998 (deceasedDateTime); Garrett Thompson died in 1973.
const DECEASED_FILE = 'patient-f0c0c377-be9c-4ca2-97c0-7cef574bdb45.json';
const ALIVE_FILE = 'patient-1037e006-916b-45e5-a7f6-33f3e3196e0b.json';
const REPORT_FILE = 'patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json';

async function importFiles(server: Server, files: string[]): Promise<void> {
  const form = new FormData();
  for (const f of files) form.append('file', new Blob([readFileSync(f)]), basename(f));
  const res = await fetch(new URL('api/v1/imports', server.origin), { method: 'POST', headers: { Authorization: `Bearer ${server.token}` }, body: form });
  if (!res.ok) throw new Error(`import: HTTP ${res.status}: ${await res.text()}`);
}

interface Detail {
  type: string;
  id: string;
  title: string;
  resource: Record<string, unknown>;
  references: Record<string, { type: string; title: string }>;
  related: { type: string; id: string; title: string }[];
}

/** A small valid PDF with one line of Helvetica text (offsets computed, so pdf.js needs no repair). */
function tinyPdf(text: string): Buffer {
  const stream = `BT /F1 24 Tf 72 720 Td (${text}) Tj ET`;
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objs.forEach((o, i) => {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

test('report, visit and timeline read as a health record: names, values, grouped contents', async ({ page, server, watch }) => {
  await importFiles(server, [join(SYNTHEA, REPORT_FILE), join(SYNTHEA, 'organizations.json'), join(SYNTHEA, 'practitioners.json')]);
  await page.route('**/api/v1/events', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"off"}}' }));
  await openApp(page, server);

  // A lab report with results.
  const reports = await server.api<{ items: { id: string; resource: { result?: unknown[]; category?: { coding?: { code?: string }[] }[] } }[] }>('/resources?type=DiagnosticReport&limit=200');
  const report = reports.items.find((r) => (r.resource.result?.length ?? 0) >= 3)!;
  expect(report, 'a report with results').toBeTruthy();
  const rd = await server.api<Detail>(`/resources/DiagnosticReport/${report.id}`);
  await page.goto(`${server.origin}#/records/DiagnosticReport/${report.id}`);
  const table = page.getByTestId('report-results');
  await expect(table).toBeVisible();
  const firstRes = Object.values(rd.references).find((t) => t.type === 'Observation')!;
  await expect(table).toContainText(firstRes.title);
  // Values with units in their own cells, numbers not a wall of links.
  const rows = table.locator('tbody tr');
  expect(await rows.count()).toBe(report.resource.result!.length);
  await expect(rows.first().locator('td.num')).toHaveText(/\d/);
  await expect(page.locator('.fields')).not.toContainText(/\bEncounter\b|\bPractitioner\b|\bOrganization\b/);
  await shot(page, 'readable-report');

  // A visit with a doctor, a clinic and things recorded during it.
  const encs = await server.api<{ items: { id: string }[] }>('/resources?type=Encounter&limit=100');
  let visit: Detail | undefined;
  for (const e of encs.items) {
    const d = await server.api<Detail>(`/resources/Encounter/${e.id}`);
    const kinds = new Set(d.related.map((r) => r.type));
    if (kinds.has('Observation') && kinds.has('Claim') && (kinds.has('Procedure') || kinds.has('Condition') || kinds.has('Immunization'))) {
      visit = d;
      break;
    }
  }
  expect(visit, 'a visit with results, costs and a diagnosis or procedure').toBeTruthy();
  await page.goto(`${server.origin}#/records/Encounter/${visit!.id}`);
  const doctor = Object.values(visit!.references).find((t) => t.type === 'Practitioner')!;
  const clinic = Object.values(visit!.references).find((t) => t.type === 'Organization')!;
  const fields = page.locator('.fields');
  await expect(fields.getByRole('link', { name: doctor.title })).toBeVisible();
  await expect(fields.getByRole('link', { name: clinic.title })).toBeVisible();
  await expect(fields).not.toContainText(/\bPractitioner\b|\bOrganization\b|\bAMB\b/);
  const groups = page.getByTestId('visit-group');
  await expect(groups.filter({ hasText: 'Tests and results' })).toBeVisible();
  await expect(groups.filter({ hasText: 'Costs' })).toContainText(/\$\s?\d/);
  await shot(page, 'readable-visit');

  // The timeline: one row per visit (claims folded into it), no directory entries, no file names.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Timeline' }).click();
  const tl = page.getByRole('list', { name: 'Records by date, newest first' });
  await expect(tl.locator('.tl-item').first()).toBeVisible();
  await expect(page.locator('.tl-item .badge-Claim, .tl-item .badge-ExplanationOfBenefit, .tl-item .badge-Practitioner, .tl-item .badge-Organization, .tl-item .badge-Patient')).toHaveCount(0);
  await expect(page.getByRole('group', { name: 'Types shown' })).not.toContainText(/Doctors|Clinics|Claims|Explanations of benefit|Patient/);
  await expect(tl).not.toContainText('.json');
  await expect(tl).not.toContainText(/AMB|finished/);
  await shot(page, 'readable-timeline');

  // Search by word prefix: "gluc" finds the glucose results, the person's records before doctors.
  await page.getByPlaceholder('Search records').fill('gluc');
  await page.keyboard.press('Enter');
  const results = page.getByRole('list', { name: 'Search results' });
  await expect(results.locator('.result-item').first()).toContainText(/Glucose/i);
  await expect(results.locator('.result-item').first().locator('.badge')).toHaveText('Result');
  expect(watch.foreign).toEqual([]);
});

test('a Synthea clinical note and a PDF attachment open in the app', async ({ page, server, watch }) => {
  // Clinical notes of the bulk export (DocumentReference with base64 text/plain content).
  const notes = readFileSync(join(SHARED_DATA, 'bulk-ndjson-10-patients', 'DocumentReference.000.ndjson'), 'utf8').split('\n').filter(Boolean);
  const note = JSON.parse(notes[0]) as { id: string; content: { attachment: { data: string } }[] };
  const noteText = Buffer.from(note.content[0].attachment.data, 'base64').toString('utf8');
  const line = noteText.split('\n').map((l) => l.trim()).find((l) => l.length > 20)!;
  const notesFile = join(server.tmp, 'notes.ndjson');
  writeFileSync(notesFile, notes.slice(0, 20).join('\n') + '\n');

  const pdf = tinyPdf('Hello from a PDF attachment');
  const bundle = {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        resource: {
          resourceType: 'DocumentReference',
          id: 'pdf-doc',
          status: 'current',
          type: { text: 'Discharge letter' },
          date: '2021-05-06T10:00:00Z',
          content: [{ attachment: { contentType: 'application/pdf', url: 'Binary/pdf-bin', title: 'letter.pdf', size: pdf.length } }],
        },
      },
      { resource: { resourceType: 'Binary', id: 'pdf-bin', contentType: 'application/pdf', data: pdf.toString('base64') } },
    ],
  };
  const pdfFile = join(server.tmp, 'pdf.json');
  writeFileSync(pdfFile, JSON.stringify(bundle));
  await importFiles(server, [notesFile, pdfFile]);
  await page.route('**/api/v1/events', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"off"}}' }));
  await openApp(page, server);

  await page.goto(`${server.origin}#/records/DocumentReference/${note.id}`);
  const view = page.getByTestId('attachment-view');
  await expect(view).toContainText(line);
  await expect(page.getByTestId('attachment-mismatch')).toHaveCount(0);
  await shot(page, 'readable-clinical-note');

  await page.goto(`${server.origin}#/records/DocumentReference/pdf-doc`);
  const pages = page.getByTestId('pdf-pages');
  await expect(pages.locator('.pdf-page canvas')).toHaveCount(1);
  await expect(pages).toContainText('Hello from a PDF attachment');
  await expect(page.getByRole('button', { name: /Save a copy \(letter\.pdf\)/ })).toBeVisible();
  await shot(page, 'readable-pdf');
  expect(watch.foreign).toEqual([]);
  expect(watch.errors).toEqual([]);
});

test('a hostile HTML attachment runs no script and loads nothing remote', async ({ page, server, watch }) => {
  const html = [
    '<html><head><script>window.__pwned="head"</script><link rel="stylesheet" href="http://203.0.113.7/x.css">',
    '<meta http-equiv="refresh" content="0;url=http://203.0.113.7/refresh"></head><body>',
    '<p>Hostile attachment text</p>',
    '<script>window.__pwned="script"</script>',
    '<img src="x" onerror="window.__pwned=\'onerror\'">',
    '<img src="http://203.0.113.7/remote.png">',
    '<iframe src="http://203.0.113.7/frame"></iframe>',
    '<p style="background:url(http://203.0.113.7/bg.png)">styled</p>',
    '<a href="javascript:window.__pwned=\'link\'">js link</a>',
    '</body></html>',
  ].join('');
  const bundle = {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        resource: {
          resourceType: 'DocumentReference',
          id: 'hostile-doc',
          status: 'current',
          content: [{ attachment: { contentType: 'text/html', data: Buffer.from(html).toString('base64'), title: 'page.html' } }],
        },
      },
    ],
  };
  const file = join(server.tmp, 'hostile.json');
  writeFileSync(file, JSON.stringify(bundle));
  await importFiles(server, [file]);
  await page.route('**/api/v1/events', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"off"}}' }));
  await openApp(page, server);
  await page.goto(`${server.origin}#/records/DocumentReference/hostile-doc`);
  const view = page.getByTestId('attachment-view');
  await expect(view).toContainText('Hostile attachment text');
  await expect(view).toContainText('styled');
  expect(await view.locator('script, iframe, link, meta, style, [onerror], [style]').count()).toBe(0);
  await view.getByText('js link').click();
  await shot(page, 'readable-hostile-html');
  await page.waitForLoadState('networkidle');
  expect(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned)).toBeUndefined();
  expect(watch.foreign).toEqual([]);
  for (const r of watch.csp) expect(r).toMatch(/(has been blocked|was blocked)/);

  // The bytes themselves, fetched as a page would, come with the sandbox and nosniff headers.
  const res = await fetch(new URL('api/v1/resources/DocumentReference/hostile-doc/attachments/0', server.origin), { headers: { Authorization: `Bearer ${server.token}` } });
  expect(res.headers.get('content-security-policy')).toBe('sandbox');
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
});

test('people who died show their date of death in the household, the switcher and the person banner', async ({ page, server }) => {
  await importFiles(server, [join(SYNTHEA, DECEASED_FILE), join(SYNTHEA, ALIVE_FILE)]);
  const people = await server.api<{ id: number; name: string; deceased: unknown }[]>('/profiles');
  const dead = people.find((p) => p.deceased)!;
  const alive = people.find((p) => !p.deceased)!;
  expect(dead.name).toContain('Wolf');
  expect(dead.deceased).toBe('1998-11-24T05:19:57+00:00');
  expect(alive).toBeTruthy();
  await page.route('**/api/v1/events', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"off"}}' }));
  await openApp(page, server);

  // Household (the People page).
  await page.goto(`${server.origin}#/people`);
  const card = page.getByTestId('household-person').filter({ hasText: dead.name });
  await expect(card).toContainText(/Died .*1998/);
  await expect(card).not.toContainText(/\d+ years/);
  await expect(page.getByTestId('household-person').filter({ hasText: alive.name })).not.toContainText('Died');
  await shot(page, 'readable-household-deceased');

  // Switcher.
  await page.getByTestId('person-switcher').click();
  const item = page.getByRole('menuitemradio', { name: new RegExp(dead.name) });
  await expect(item).toContainText(/Died .*1998/);
  await page.keyboard.press('Escape');

  // Person banner.
  await page.goto(`${server.origin}#/people/${dead.id}`);
  await expect(page.getByTestId('person-deceased')).toContainText(/Died .*1998/);

  // "Everyone": every item on the dashboard says whose it is.
  await page.goto(`${server.origin}#/`);
  const items = page.locator('.item-list li');
  await expect(items.first()).toBeVisible();
  const n = await items.count();
  await expect(items.getByTestId('item-person')).toHaveCount(n);
  const chips = page.getByTestId('item-person');
  await expect(chips.filter({ hasText: dead.name }).first()).toBeVisible();
  await expect(chips.filter({ hasText: alive.name }).first()).toBeVisible();
  await shot(page, 'readable-everyone');
});
