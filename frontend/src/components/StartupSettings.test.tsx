import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { mockApi } from '../test/api';
import type { HubSubscription, Preferences } from '../api/types';
import { intervalWords, StartupSettings } from './StartupSettings';
import { WebhooksSettings } from './WebhooksSettings';

beforeEach(() => {
  vi.unstubAllGlobals();
});

const prefs: Preferences = {
  autostart: false,
  autostart_supported: true,
  sync_interval: '12h',
  sync_interval_default: '12h',
  sync_interval_active: '12h',
  sync_interval_choices: ['1h', '3h', '6h', '12h', '24h', '72h', '168h'],
};

function body(init?: RequestInit): Record<string, unknown> {
  return JSON.parse(String(init?.body ?? '{}'));
}

describe('StartupSettings', () => {
  it('names intervals in plain words', () => {
    expect(['1h', '6h', '24h', '72h', '168h', '1h30m', '90m'].map(intervalWords)).toEqual([
      'every hour',
      'every 6 hours',
      'every day',
      'every 3 days',
      'every week',
      'every 1 h 30 min',
      'every 1 h 30 min',
    ]);
  });

  it('turns start at login on and changes the sync interval', async () => {
    let current = { ...prefs };
    const api = mockApi({
      '/api/v1/preferences': () => current,
      'PATCH /api/v1/preferences': (_u, init) => {
        const b = body(init);
        if (b.autostart !== undefined) current = { ...current, autostart: b.autostart as boolean };
        // This backend cannot change the running syncer: the new interval applies at the next start.
        if (b.sync_interval !== undefined) current = { ...current, sync_interval: b.sync_interval as string };
        return current;
      },
    });
    render(<StartupSettings />);
    const box = await screen.findByRole('checkbox', { name: /Start Fasten when I log in/ });
    expect((box as HTMLInputElement).checked).toBe(false);
    expect((box as HTMLInputElement).disabled).toBe(false);
    fireEvent.click(box);
    expect((await screen.findByRole('status')).textContent).toBe('Fasten will start in the background when you log in.');
    expect((box as HTMLInputElement).checked).toBe(true);
    expect(body(api.mock.calls.find(([, i]) => i?.method === 'PATCH')![1])).toEqual({ autostart: true });

    const select = screen.getByLabelText('Sync connected providers') as HTMLSelectElement;
    expect(select.value).toBe('12h');
    expect(within(select).getAllByRole('option').map((o) => o.textContent)).toEqual([
      'Every hour',
      'Every 3 hours',
      'Every 6 hours',
      'Every 12 hours (default)',
      'Every day',
      'Every 3 days',
      'Every week',
    ]);
    fireEvent.change(select, { target: { value: '6h' } });
    await waitFor(() => expect(screen.getByRole('status').textContent).toBe('Connected providers will be synced every 6 hours.'));
    expect(screen.getByTestId('interval-restart').textContent).toContain('keeps syncing every 12 hours until it is started again');
  });

  it('explains why starting at login is not available, and shows errors in plain words', async () => {
    mockApi({
      '/api/v1/preferences': { ...prefs, autostart_supported: false, autostart_note: 'This copy of Fasten has no window (a server build).', sync_interval: '90m' },
      'PATCH /api/v1/preferences': () =>
        new Response(JSON.stringify({ error: { code: 'invalid_sync_interval', message: 'Fasten syncs at most once an hour.' } }), { status: 400 }),
    });
    render(<StartupSettings />);
    const box = (await screen.findByRole('checkbox', { name: /Start Fasten when I log in/ })) as HTMLInputElement;
    expect(box.disabled).toBe(true);
    expect(screen.getByTestId('autostart-note').textContent).toBe('This copy of Fasten has no window (a server build).');
    // An interval that is not one of the choices is still shown.
    const select = screen.getByLabelText('Sync connected providers') as HTMLSelectElement;
    expect(select.value).toBe('90m');
    fireEvent.change(select, { target: { value: '1h' } });
    expect((await screen.findByRole('alert')).textContent).toContain('Fasten syncs at most once an hour.');
  });
});

const sub = (over: Partial<HubSubscription>): HubSubscription => ({
  id: 'sub_1',
  callback: 'http://127.0.0.1:8787/hook',
  events: ['import.done', 'sync.done'],
  state: 'active',
  lease_seconds: 86400,
  lease_expires: '2026-03-02T12:00:00Z',
  include_resources: true,
  allowed_resources: false,
  failures: 0,
  delivered: 4,
  dropped: 0,
  created_at: '2026-03-01T12:00:00Z',
  ...over,
});

describe('WebhooksSettings', () => {
  it('lists subscriptions with their state, allows full records and deletes', async () => {
    let subs = [
      sub({}),
      sub({
        id: 'sub_2',
        callback: 'https://home.example/hook',
        state: 'dead',
        include_resources: false,
        failures: 8,
        last_error: 'HTTP 500',
        dead_letters: [{ event_id: 'ab-9', event: 'sync.done', timestamp: '2026-03-01T12:00:00Z', attempts: 8, error: 'HTTP 500', failed_at: '2026-03-01T12:04:00Z' }],
      }),
    ];
    const api = mockApi({
      '/api/v1/hub/subscriptions': () => subs,
      'PATCH /api/v1/hub/subscriptions/sub_1': (_u, init) => ({ ...subs[0], allowed_resources: body(init).allow_resources }),
      'DELETE /api/v1/hub/subscriptions/sub_2': () => {
        subs = subs.slice(0, 1);
        return new Response(null, { status: 204 });
      },
    });
    render(<WebhooksSettings />);
    const list = await screen.findByRole('list', { name: 'Subscriptions' });
    const items = within(list).getAllByRole('listitem');
    expect(items[0].textContent).toMatch(/http:\/\/127\.0\.0\.1:8787\/hook.*Active.*import\.done, sync\.done.*Lease until.*Delivered4/);
    expect(items[1].textContent).toMatch(/Stopped.*8 failed attempts in a row.*HTTP 500/);
    expect(within(items[1]).getByText('1 undelivered notification')).toBeTruthy();
    // The second did not ask for full records: nothing to allow.
    expect((within(items[1]).getByRole('checkbox', { name: /Allow full records/ }) as HTMLInputElement).disabled).toBe(true);

    fireEvent.click(within(items[0]).getByRole('checkbox', { name: /Allow full records/ }));
    await waitFor(() => expect((within(items[0]).getByRole('checkbox', { name: /Allow full records/ }) as HTMLInputElement).checked).toBe(true));
    expect(api.mock.calls.some(([u, i]) => String(u).endsWith('/hub/subscriptions/sub_1') && i?.method === 'PATCH' && body(i).allow_resources === true)).toBe(true);

    fireEvent.click(within(items[1]).getByRole('button', { name: 'Delete the subscription of https://home.example/hook' }));
    const dialog = screen.getByRole('dialog', { name: 'Delete this subscription?' });
    fireEvent.click(within(dialog).getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(within(screen.getByRole('list', { name: 'Subscriptions' })).getAllByRole('listitem')).toHaveLength(1);
    expect(screen.getByRole('status').textContent).toBe('Deleted the subscription of https://home.example/hook.');
  });

  it('says so when there are none, and explains how to subscribe', async () => {
    mockApi({ '/api/v1/hub/subscriptions': [] });
    render(<WebhooksSettings />);
    expect((await screen.findByTestId('no-subscriptions')).textContent).toBe('No subscriptions.');
    expect(screen.getByText('How a tool subscribes')).toBeTruthy();
    expect(screen.getByRole('link', { name: 'docs/webhooks.md' })).toBeTruthy();
  });
});
