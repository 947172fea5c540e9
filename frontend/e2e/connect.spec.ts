import { expect, keyringMissing, openApp, sandboxTest as test, shot } from './fixtures';

// Raúl Fernández, one of the sandbox's Synthea patients (see app.spec.ts).
const PATIENT = 'Raúl Fernández';
const DEMO = 'Demo Hospital (sandbox)';

interface Source {
  id: number;
  kind: string;
  name: string;
  status: string;
  provider_id: string | null;
  patient_id: string | null;
  resource_count: number;
}

test.describe('connect a provider', () => {
  const missing = keyringMissing();
  test.skip(!!missing, missing ?? '');

  test('connect the demo hospital from the UI', async ({ page, context, server, watch, sandbox }) => {
    // Registered already (the onboarding spec covers that step through the UI).
    await server.api('/installation', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'Ada Lovelace', email: 'ada@example.org' }),
    });
    await openApp(page, server);
    await expect(page.getByRole('heading', { name: 'Welcome to Fasten' })).toBeVisible();
    await page.getByRole('button', { name: 'Connect a provider' }).click();
    const dialog = page.getByRole('dialog', { name: 'Connect a provider' });
    await expect(dialog.getByRole('list', { name: 'Providers' })).toContainText(DEMO);
    // The sandbox Lighthouse is the configured one: the shortcut is there.
    const demoButton = dialog.getByRole('button', { name: 'Try the demo hospital' });
    await expect(demoButton).toBeVisible();
    await shot(page, 'connect-dialog');

    // The app opens the sign-in in a new browser page (the system browser in the desktop window):
    // the test plays the user there.
    const [portal] = await Promise.all([context.waitForEvent('page'), demoButton.click()]);
    await expect(page.getByTestId('connect-waiting')).toBeVisible();
    await expect(page.getByRole('dialog')).toContainText(`Sign in to ${DEMO}`);
    await shot(page, 'connect-waiting');

    await portal.waitForLoadState();
    await expect(portal.getByRole('heading', { name: 'Demo Hospital patient portal' })).toBeVisible();
    expect(portal.url().startsWith(new URL(sandbox.fhirBase).origin)).toBe(true);
    await portal.getByRole('radio', { name: new RegExp(PATIENT) }).check();
    await portal.getByRole('button', { name: 'Allow' }).click();
    // The Lighthouse sends the browser to the app's one-time listener on 127.0.0.1.
    await expect(portal.getByRole('heading', { name: "You're connected" })).toBeVisible();
    expect(new URL(portal.url()).hostname).toBe('127.0.0.1');
    expect(new URL(portal.url()).pathname).toBe('/done');
    await shot(portal, 'connect-browser-done');

    // The window notices by itself.
    const success = page.getByTestId('connect-success');
    await expect(success).toBeVisible();
    await expect(page.getByTestId('connected-patient')).toHaveText(PATIENT);
    await expect(page.getByRole('dialog')).toContainText(`Connected to ${DEMO}`);
    await shot(page, 'connect-connected');
    await page.getByRole('button', { name: 'Done' }).click();
    await expect(page.getByRole('dialog')).toHaveCount(0);

    // The source.
    const sources = await server.api<Source[]>('/sources');
    expect(sources).toHaveLength(1);
    expect(sources[0]).toMatchObject({ kind: 'provider', name: DEMO, status: 'connected', provider_id: 'demo' });
    expect(sources[0].patient_id).toBeTruthy();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sources' }).click();
    const row = page.locator(`tr[data-source-id="${sources[0].id}"]`);
    await expect(row).toContainText(DEMO);
    await expect(row).toContainText('Connected');
    await expect(row.getByRole('button', { name: `Disconnect ${DEMO}` })).toBeVisible();
    await shot(page, 'sources-connected');

    // The first sync starts by itself after the connect; the patient's records reach the
    // dashboard without a reload.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Dashboard' }).click();
    await expect(page.getByTestId('patient-name')).toHaveText(PATIENT, { timeout: 60_000 });
    await expect(page.getByTestId('counts').locator('li').first()).toBeVisible();
    await expect.poll(async () => {
      const counts = await server.api<Record<string, number>>('/resources/counts');
      return (counts['Observation'] ?? 0) > 0 && (counts['Patient'] ?? 0) === 1;
    }, { timeout: 60_000 }).toBe(true);
    await shot(page, 'dashboard-connected');

    // Disconnect, keeping the records: the source stays and asks to sign in again.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sources' }).click();
    await row.getByRole('button', { name: `Disconnect ${DEMO}` }).click();
    const dlg = page.getByRole('dialog');
    await expect(dlg).toContainText('What should happen to the');
    await shot(page, 'disconnect-dialog');
    await dlg.getByRole('button', { name: 'Disconnect, keep records' }).click();
    await expect(page.getByRole('status')).toContainText(`Disconnected “${DEMO}”`);
    await expect(row).toContainText('Needs you to sign in again');
    await expect(row.getByRole('button', { name: `Sign in to ${DEMO} again` })).toBeVisible();
    const after = await server.api<Source[]>('/sources');
    expect(after[0]).toMatchObject({ id: sources[0].id, status: 'reconnect_needed', resource_count: sources[0].resource_count });

    expect(watch.foreign).toEqual([]);
    expect(watch.errors).toEqual([]);
    expect(watch.csp).toEqual([]);
  });

  test('the provider refusing shows in plain words', async ({ page, context, server }) => {
    await server.api('/installation', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'Ada Lovelace', email: 'ada@example.org' }),
    });
    await openApp(page, server);
    await page.getByRole('button', { name: 'Connect a provider' }).click();
    const [portal] = await Promise.all([context.waitForEvent('page'), page.getByRole('button', { name: 'Try the demo hospital' }).click()]);
    await portal.waitForLoadState();
    await portal.getByRole('radio', { name: new RegExp(PATIENT) }).check();
    await portal.getByRole('button', { name: 'Deny' }).click();
    await expect(portal.getByRole('heading', { name: 'You declined to share your records' })).toBeVisible();
    const failed = page.getByTestId('connect-failed');
    await expect(failed).toContainText('You declined at the provider');
    await expect(failed).toContainText('nothing was connected');
    await shot(page, 'connect-denied');
    expect(await server.api<Source[]>('/sources')).toHaveLength(0);
  });
});
