import { expect, keyringMissing, openApp, sandboxTest, shot, test } from './fixtures';

interface Settings {
  onboarding_done: boolean;
  lighthouse_url: string;
  installation: { installation_id: string } | null;
}

sandboxTest.describe('first launch: register', () => {
  sandboxTest.use({ onboarded: false });
  const missing = keyringMissing();
  sandboxTest.skip(!!missing, missing ?? '');

  sandboxTest('onboarding registers with the Lighthouse, and Settings shows the ID', async ({ page, server, watch, lighthouse }) => {
    await openApp(page, server);
    await expect(page.getByRole('heading', { name: 'Set up Fasten' })).toBeVisible();
    await expect(page.getByText('limits how many people one installation can connect to each provider')).toBeVisible();
    await expect(page.getByText('your medical records never go to the Lighthouse')).toBeVisible();
    await expect(page.getByText(`Registers with the Lighthouse at ${lighthouse}`)).toBeVisible();
    await expect(page.getByRole('navigation', { name: 'Main' })).toHaveCount(0);
    await shot(page, 'onboarding');

    // Validation in plain words, before anything is sent.
    await page.getByLabel("Administrator's name").fill('Ada Lovelace');
    await page.getByLabel('Email').fill('ada-at-example');
    await page.getByRole('button', { name: 'Register', exact: true }).click();
    await expect(page.getByText('Please enter a valid email address, such as name@example.org.')).toBeVisible();
    await expect(page.getByLabel('Email')).toBeFocused();
    await shot(page, 'onboarding-invalid');
    expect((await server.api<Settings>('/settings')).installation).toBeNull();

    await page.getByLabel('Email').fill('ada@example.org');
    await page.getByRole('button', { name: 'Register', exact: true }).click();
    await expect(page.getByRole('heading', { name: 'This installation is registered' })).toBeVisible();
    const id = (await page.getByTestId('onboarding-installation-id').textContent()) ?? '';
    const st = await server.api<Settings>('/settings');
    expect(st.installation?.installation_id).toBe(id);
    expect(st.onboarding_done).toBe(true);
    expect(st.lighthouse_url).toBe(lighthouse);
    await shot(page, 'onboarding-registered');

    await page.getByRole('button', { name: 'Continue' }).click();
    await expect(page.getByRole('heading', { name: 'Welcome to Fasten' })).toBeVisible();
    await expect(page.getByRole('button', { name: 'Connect a provider' })).toBeEnabled();

    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
    await expect(page.getByTestId('installation-id')).toHaveText(id);
    await expect(page.getByTestId('installation-admin')).toHaveText('Ada Lovelace <ada@example.org>');
    await expect(page.getByLabel('Lighthouse address')).toHaveValue(lighthouse!);
    await expect(page.getByText('Set when Fasten was started (--lighthouse-url')).toBeVisible();
    await shot(page, 'settings');

    // Register again from Settings: a new ID.
    await page.getByRole('button', { name: 'Register again…' }).click();
    await page.getByRole('button', { name: 'Register again', exact: true }).click();
    await expect(page.getByRole('status')).toContainText('Registered. The installation ID is');
    await expect(page.getByTestId('installation-id')).not.toHaveText(id);

    expect(watch.foreign).toEqual([]);
    expect(watch.errors).toEqual([]);
    expect(watch.csp).toEqual([]);
  });
});

test.describe('first launch: skip', () => {
  test.use({ onboarded: false });

  test('skip: import files only, register later from Settings', async ({ page, server, watch }) => {
    await openApp(page, server);
    await expect(page.getByRole('heading', { name: 'Set up Fasten' })).toBeVisible();
    await page.getByRole('button', { name: 'Skip: I will only import files' }).click();
    await expect(page.getByRole('heading', { name: 'Welcome to Fasten' })).toBeVisible();
    const connect = page.getByRole('button', { name: 'Connect a provider' });
    await expect(connect).toBeDisabled();
    await expect(page.locator('#connect-why')).toContainText('needs this installation to be registered');
    await expect(page.getByRole('button', { name: 'Register this installation' })).toBeVisible();
    const st = await server.api<Settings>('/settings');
    expect(st.onboarding_done).toBe(true);
    expect(st.installation).toBeNull();
    await shot(page, 'welcome-after-skip');

    // The choice sticks.
    await page.reload();
    await expect(page.getByRole('heading', { name: 'Welcome to Fasten' })).toBeVisible();
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
    await expect(page.getByTestId('not-registered')).toBeVisible();
    await expect(page.getByRole('form', { name: 'Register this installation' })).toBeVisible();
    await shot(page, 'settings-not-registered');

    expect(watch.foreign).toEqual([]);
    expect(watch.errors).toEqual([]);
  });
});
