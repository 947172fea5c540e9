import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { ReactNode } from 'react';
import { AppContext, type AppState } from '../AppContext';
import type { Settings } from '../api/types';
import { EventHub } from '../lib/events';
import { mockApi } from '../test/api';
import { ConnectButton, ConnectDialog } from './ConnectDialog';
import { validateAdmin } from './RegisterForm';
import { Onboarding } from '../views/Onboarding';

const registered: Settings = {
  onboarding_done: true,
  lighthouse_url: 'http://127.0.0.1:9500',
  lighthouse_url_source: 'flag',
  default_lighthouse_url: 'https://lighthouse.fastenhealth.com',
  installation: { installation_id: 'abc123', lighthouse_url: 'http://127.0.0.1:9500', name: 'Ada', email: 'ada@example.org' },
};
const fresh: Settings = { ...registered, onboarding_done: false, installation: null };

function wrap(children: ReactNode, over: Partial<AppState> = {}) {
  const state: AppState = {
    hub: new EventHub(),
    profile: undefined,
    setProfile: () => {},
    profiles: null,
    sources: [],
    refreshSources: () => {},
    settings: registered,
    refreshSettings: async () => {},
    ...over,
  };
  return <AppContext.Provider value={state}>{children}</AppContext.Provider>;
}

const providers = [
  { id: 'demo', name: 'Demo Hospital (sandbox)', fhir_base: 'http://127.0.0.1:9400/fhir', confidential: false, user_limit: 10 },
  { id: 'clinic', name: 'Small Clinic', fhir_base: 'https://clinic.example.org/fhir', confidential: true, user_limit: 3 },
];
const started = {
  connect_id: 'c1',
  authorize_url: 'http://127.0.0.1:9500/v1/connect/demo?ticket=t',
  expires_at: '2030-01-01T00:00:00Z',
  provider: 'demo',
  provider_name: 'Demo Hospital (sandbox)',
};
const pending = { ...started, status: 'pending', source_id: null, error: null, sync_started: false };

beforeEach(() => {
  vi.unstubAllGlobals();
});

describe('validateAdmin', () => {
  it('accepts a name and a plausible email, and refuses the rest', () => {
    expect(validateAdmin('Ada Lovelace', 'ada@example.org')).toEqual({});
    expect(validateAdmin('  ', 'ada@example.org').name).toMatch(/name/);
    expect(validateAdmin('a'.repeat(201), 'ada@example.org').name).toBeTruthy();
    for (const bad of ['', 'ada', 'ada@localhost', 'a b@example.org', 'ada@example.', 'ada@.org']) {
      expect(validateAdmin('Ada', bad).email, bad).toBe('Please enter a valid email address, such as name@example.org.');
    }
  });
});

describe('ConnectButton', () => {
  it('is disabled before registering, says why and offers to register', async () => {
    render(wrap(<ConnectButton />, { settings: fresh }));
    const b = screen.getByRole('button', { name: 'Connect a provider' }) as HTMLButtonElement;
    expect(b.disabled).toBe(true);
    expect(document.getElementById('connect-why')?.textContent).toContain('registered with the Lighthouse');
    fireEvent.click(screen.getByRole('button', { name: 'Register this installation' }));
    expect(await screen.findByRole('dialog', { name: 'Register this installation' })).toBeTruthy();
    expect(screen.getByText(/medical records never go to the Lighthouse/)).toBeTruthy();
  });
});

describe('ConnectDialog', () => {
  it('searches the catalog, opens the sign-in in the browser, waits, and shows the patient', async () => {
    const open = vi.fn();
    vi.stubGlobal('open', open);
    let polls = 0;
    const queries: string[] = [];
    const emitted: string[] = [];
    const hub = new EventHub();
    hub.on((e) => emitted.push(e.type));
    mockApi({
      '/api/v1/providers': (u: URL) => {
        const q = u.searchParams.get('q') ?? '';
        queries.push(q);
        return providers.filter((p) => p.name.toLowerCase().includes(q.toLowerCase()));
      },
      'POST /api/v1/connect': (_u: URL, init?: RequestInit) => {
        expect(JSON.parse(String(init?.body))).toEqual({ provider: 'demo' });
        return started;
      },
      '/api/v1/connect/c1': () =>
        ++polls < 2 ? pending : { ...pending, status: 'connected', source_id: 5, patient_name: 'Raúl Fernández', sync_started: true },
    });
    const refreshSources = vi.fn();
    render(wrap(<ConnectDialog onClose={() => {}} />, { refreshSources, hub }));
    // The demo shortcut appears because the catalog has "demo".
    fireEvent.change(await screen.findByLabelText('Find your hospital or clinic'), { target: { value: 'clinic' } });
    await waitFor(() => expect(queries).toContain('clinic'));
    expect(await screen.findByRole('button', { name: /Small Clinic/ })).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Try the demo hospital' }));
    expect(await screen.findByTestId('connect-waiting')).toBeTruthy();
    expect(open).toHaveBeenCalledWith(started.authorize_url, '_blank', 'noopener,noreferrer');
    expect((await screen.findByTestId('connected-patient', {}, { timeout: 5000 })).textContent).toBe('Raúl Fernández');
    expect(screen.getByText(/The first sync has started/)).toBeTruthy();
    expect(refreshSources).toHaveBeenCalled();
    expect(emitted).toContain('source.status');
  });

  it('uses the desktop window’s BrowserOpenURL when there is one', async () => {
    const BrowserOpenURL = vi.fn();
    const open = vi.fn();
    vi.stubGlobal('runtime', { BrowserOpenURL });
    vi.stubGlobal('open', open);
    mockApi({ '/api/v1/providers': providers, 'POST /api/v1/connect': started, '/api/v1/connect/c1': pending });
    render(wrap(<ConnectDialog onClose={() => {}} />));
    fireEvent.click(await screen.findByRole('button', { name: /Small Clinic/ }));
    await screen.findByTestId('connect-waiting');
    expect(BrowserOpenURL).toHaveBeenCalledWith(started.authorize_url);
    expect(open).not.toHaveBeenCalled();
  });

  it('shows the Lighthouse’s limit message word for word', async () => {
    vi.stubGlobal('open', vi.fn());
    const msg = 'This installation has reached the limit of 10 users for Demo Hospital.';
    mockApi({
      '/api/v1/providers': providers,
      'POST /api/v1/connect': () => new Response(JSON.stringify({ error: { code: 'user_limit_reached', message: msg } }), { status: 403 }),
    });
    render(wrap(<ConnectDialog onClose={() => {}} />));
    fireEvent.click(await screen.findByRole('button', { name: 'Try the demo hospital' }));
    const failed = await screen.findByTestId('connect-failed');
    expect(failed.textContent).toContain(msg);
    expect(failed.textContent).toContain('The limit of people for this provider is reached');
  });

  it('cancels: DELETE /connect/{id} and says so', async () => {
    vi.stubGlobal('open', vi.fn());
    const deleted = vi.fn();
    mockApi({
      '/api/v1/providers': providers,
      'POST /api/v1/connect': started,
      '/api/v1/connect/c1': pending,
      'DELETE /api/v1/connect/c1': () => {
        deleted();
        return { ...pending, status: 'cancelled', error: 'Connecting was cancelled. Nothing was connected.', error_code: 'cancelled' };
      },
    });
    render(wrap(<ConnectDialog onClose={() => {}} />));
    fireEvent.click(await screen.findByRole('button', { name: 'Try the demo hospital' }));
    await screen.findByTestId('connect-waiting');
    fireEvent.click(screen.getByRole('button', { name: 'Cancel' }));
    const failed = await screen.findByTestId('connect-failed');
    expect(deleted).toHaveBeenCalledOnce();
    expect(failed.textContent).toContain('Connecting was cancelled');
  });

  it('says in plain words when the provider refused or the sign-in timed out', async () => {
    vi.stubGlobal('open', vi.fn());
    mockApi({
      '/api/v1/providers': providers,
      'POST /api/v1/connect': started,
      '/api/v1/connect/c1': {
        ...pending,
        status: 'failed',
        error_code: 'denied',
        error: 'You declined to share your records at the provider, so nothing was connected.',
      },
    });
    render(wrap(<ConnectDialog onClose={() => {}} />));
    fireEvent.click(await screen.findByRole('button', { name: 'Try the demo hospital' }));
    const failed = await screen.findByTestId('connect-failed', {}, { timeout: 5000 });
    expect(failed.textContent).toContain('You declined at the provider');
    expect(failed.textContent).toContain('nothing was connected');
    expect(screen.getByRole('button', { name: 'Try again' })).toBeTruthy();
  });
});

describe('Onboarding', () => {
  it('skips with onboarding_done and refreshes the settings', async () => {
    const patch = vi.fn();
    mockApi({
      'PATCH /api/v1/settings': (_u: URL, init?: RequestInit) => {
        patch(JSON.parse(String(init?.body)));
        return { ...fresh, onboarding_done: true };
      },
    });
    const refreshSettings = vi.fn(async () => {});
    render(wrap(<Onboarding />, { settings: fresh, refreshSettings }));
    expect(screen.getByText(/limits how many people one installation can connect/)).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Skip: I will only import files' }));
    await waitFor(() => expect(refreshSettings).toHaveBeenCalled());
    expect(patch).toHaveBeenCalledWith({ onboarding_done: true });
  });

  it('validates before registering and shows the backend’s words', async () => {
    const posted = vi.fn();
    mockApi({
      'POST /api/v1/installation': () => {
        posted();
        return new Response(JSON.stringify({ error: { code: 'keyring_locked', message: 'The system keyring is locked. Unlock it and try again.' } }), { status: 503 });
      },
    });
    render(wrap(<Onboarding />, { settings: fresh }));
    fireEvent.click(screen.getByRole('button', { name: 'Register' }));
    expect(await screen.findByText("Please enter the administrator's name (1 to 200 characters).")).toBeTruthy();
    expect(posted).not.toHaveBeenCalled();
    fireEvent.change(screen.getByLabelText("Administrator's name"), { target: { value: 'Ada' } });
    fireEvent.change(screen.getByLabelText('Email'), { target: { value: 'ada@example.org' } });
    fireEvent.click(screen.getByRole('button', { name: 'Register' }));
    expect((await screen.findByRole('alert')).textContent).toContain('The system keyring is locked. Unlock it and try again.');
  });
});
