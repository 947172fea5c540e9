import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, openApp, shot, test } from './fixtures';

// A hostile narrative (SECURITY.md, "Hostile input"): every way a narrative could run a script or
// make the page load something from elsewhere. 203.0.113.0/24 is TEST-NET-3: never routable.
const HOSTILE_DIV = [
  '<div xmlns="http://www.w3.org/1999/xhtml">',
  '<p>Hostile narrative test</p>',
  '<script>window.__pwned = "script"</script>',
  '<img src="x" onerror="window.__pwned = \'img-onerror\'"/>',
  '<img src="http://203.0.113.7/remote.png" alt="remote image"/>',
  '<img srcset="http://203.0.113.7/srcset.png 1x" alt="srcset image"/>',
  '<a href=" javascript:window.__pwned=\'js-link\'" id="jslink">javascript link</a>',
  '<a href="http://203.0.113.7/page" id="httplink">http link</a>',
  '<p style="background:url(http://203.0.113.7/bg.png)">styled paragraph</p>',
  '<iframe src="http://203.0.113.7/frame"></iframe>',
  '<object data="http://203.0.113.7/object"></object>',
  '<svg><image href="http://203.0.113.7/svg.png"/></svg>',
  '<link rel="stylesheet" href="http://203.0.113.7/x.css"/>',
  '<style>p { background: url(http://203.0.113.7/css.png) }</style>',
  '<table><tr><td onmouseover="window.__pwned=\'td\'">cell</td></tr></table>',
  '</div>',
].join('');

function hostileBundle() {
  return {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      {
        fullUrl: 'urn:uuid:7a1c0f1e-0000-4000-8000-000000000001',
        resource: {
          resourceType: 'Patient',
          id: 'hostile-patient',
          name: [{ use: 'official', given: ['Zoë'], family: 'Narrative' }],
          birthDate: '1990-02-03',
          gender: 'female',
        },
      },
      {
        fullUrl: 'urn:uuid:7a1c0f1e-0000-4000-8000-000000000002',
        resource: {
          resourceType: 'Observation',
          id: 'hostile-obs',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '2339-0', display: 'Glucose' }], text: 'Glucose' },
          subject: { reference: 'Patient/hostile-patient' },
          effectiveDateTime: '2020-01-02T10:00:00Z',
          valueQuantity: { value: 90, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' },
          text: { status: 'generated', div: HOSTILE_DIV },
        },
      },
    ],
  };
}

test('a hostile narrative renders inert: no script runs, nothing is fetched from elsewhere', async ({ page, server, watch }) => {
  const file = join(server.tmp, 'hostile-narrative.json');
  writeFileSync(file, JSON.stringify(hostileBundle()));

  // The live event stream (GET /api/v1/events) stays open, so "networkidle" below would never
  // come: this page does without it (the app falls back to polling).
  await page.route('**/api/v1/events', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{"error":{"code":"not_found","message":"off for this test"}}' }));
  await openApp(page, server);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Import' }).click();
  await page.getByTestId('file-input').setInputFiles(file);
  const job = page.getByTestId('import-job');
  await expect(job).toHaveAttribute('data-state', /done|failed/, { timeout: 30_000 });
  const state = await job.getAttribute('data-state');
  expect(state, `import refused: ${await job.textContent()}`).toBe('done');

  await page.goto(`${server.origin}#/records/Observation/hostile-obs`);
  const narrative = page.getByTestId('narrative');
  await expect(narrative).toContainText('Hostile narrative test');
  await expect(narrative).toContainText('styled paragraph');
  await expect(narrative).toContainText('cell');

  // Nothing active survived in the DOM.
  expect(await narrative.locator('script, iframe, object, embed, svg, link, style, form').count()).toBe(0);
  expect(await narrative.locator('img').count()).toBe(0);
  expect(await narrative.locator('[style], [onerror], [onclick], [onmouseover], [srcset]').count()).toBe(0);
  await expect(narrative.getByText('javascript link')).not.toHaveAttribute('href', /./);

  // Poke it: hover the cell, click both links.
  await narrative.getByText('cell').hover();
  await narrative.getByText('javascript link').click();
  const popup = page.context().waitForEvent('page', { timeout: 3_000 }).catch(() => null);
  await narrative.getByText('http link').click();
  const opened = await popup;
  if (opened) await opened.close();
  await expect(page).toHaveURL(/#\/records\/Observation\/hostile-obs/);
  await shot(page, 'narrative-sanitised');

  // Settle, then check: no script ran, and not a single request left for another host.
  await page.waitForLoadState('networkidle');
  expect(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned)).toBeUndefined();
  // The http link opens outside the app (a new tab in a browser); that tab's navigation is the
  // user's explicit choice, so only requests made by the app page itself count here.
  expect(watch.foreign.filter((u) => !u.startsWith('http://203.0.113.7/page'))).toEqual([]);
  expect(watch.foreign).not.toContainEqual(expect.stringMatching(/remote\.png|srcset\.png|bg\.png|frame|object|svg\.png|x\.css|css\.png/));
  expect(watch.errors.filter((e) => !/203\.0\.113\.7\/page/.test(e))).toEqual([]);
  // CSP reports from the sanitiser's inert parse: each one says the action was blocked.
  for (const r of watch.csp) expect(r).toMatch(/(has been blocked|was blocked)/);
});
