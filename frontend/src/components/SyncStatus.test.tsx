import { beforeEach, describe, expect, it, vi } from 'vitest';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { ReactNode } from 'react';
import { AppContext, type AppState } from '../AppContext';
import { EventHub } from '../lib/events';
import { mockApi } from '../test/api';
import { Sources } from '../views/Sources';
import type { Source, SyncRun } from '../api/types';
import { reduceSyncActivity, runDuration, SourceSyncStatus } from './SyncStatus';

function wrap(children: ReactNode, over: Partial<AppState> = {}) {
  const state: AppState = {
    hub: new EventHub(),
    profile: undefined,
    setProfile: () => {},
    profiles: null,
    sources: [],
    refreshSources: () => {},
    settings: null,
    refreshSettings: async () => {},
    ...over,
  };
  return <AppContext.Provider value={state}>{children}</AppContext.Provider>;
}

const provider: Source = {
  id: 3,
  kind: 'provider',
  name: 'Demo Hospital',
  status: 'connected',
  syncing: false,
  last_sync: '2026-03-01T12:00:00Z',
  last_error: null,
  created_at: '2026-03-01T11:00:00Z',
  resource_count: 215,
  provider_id: 'demo',
};

const file: Source = { id: 1, kind: 'manual', name: 'bundle.json', status: 'ok', syncing: false, created_at: '2026-03-01T10:00:00Z', resource_count: 10 };

const run = (over: Partial<SyncRun>): SyncRun => ({
  id: 1,
  source_id: 3,
  trigger: 'connect',
  started_at: '2026-03-01T12:00:00Z',
  finished_at: '2026-03-01T12:00:04Z',
  status: 'ok',
  added: 215,
  updated: 0,
  unchanged: 0,
  requests: 12,
  error: null,
  warnings: null,
  ...over,
});

beforeEach(() => {
  vi.unstubAllGlobals();
});

describe('reduceSyncActivity', () => {
  it('follows a sync from start to end, and ignores other events', () => {
    let m = reduceSyncActivity({}, { type: 'sync.started', data: { source_id: 3, run_id: 9, trigger: 'manual' } });
    expect(m[3]).toMatchObject({ running: true, runId: 9, resources: 0 });
    m = reduceSyncActivity(m, { type: 'sync.progress', data: { source_id: 3, run_id: 9, resources: 120, requests: 7, type: 'Observation' } });
    expect(m[3]).toMatchObject({ running: true, resources: 120, requests: 7, type: 'Observation' });
    expect(reduceSyncActivity(m, { type: 'import.done', data: { source_id: 3 } })).toBe(m);
    m = reduceSyncActivity(m, { type: 'sync.done', data: { source_id: 3, run_id: 9, added: 4, updated: 2 } });
    expect(m[3]).toEqual({ running: false, runId: 9, finished: { ok: true, added: 4, updated: 2 } });
    // A progress event of the ended run arriving late does not bring "Syncing…" back.
    expect(reduceSyncActivity(m, { type: 'sync.progress', data: { source_id: 3, run_id: 9, resources: 1 } })).toBe(m);
    m = reduceSyncActivity(m, { type: 'sync.failed', data: { source_id: 3, run_id: 10, error: 'HTTP 500' } });
    expect(m[3].finished).toEqual({ ok: false, error: 'HTTP 500' });
    m = reduceSyncActivity({ 3: { running: true } }, { type: 'resources.changed', data: { via: 'reconnect' } });
    expect(m[3].running).toBe(false);
  });

  it('writes durations in plain words', () => {
    expect(runDuration({ started_at: '2026-03-01T12:00:00Z', finished_at: null })).toBe('');
    expect(runDuration({ started_at: '2026-03-01T12:00:00.000Z', finished_at: '2026-03-01T12:00:00.300Z' })).toBe('under 1 s');
    expect(runDuration({ started_at: '2026-03-01T12:00:00Z', finished_at: '2026-03-01T12:00:04Z' })).toBe('4 s');
    expect(runDuration({ started_at: '2026-03-01T12:00:00Z', finished_at: '2026-03-01T12:02:05Z' })).toBe('2 min 5 s');
    expect(runDuration({ started_at: '2026-03-01T12:00:00Z', finished_at: '2026-03-01T13:30:00Z' })).toBe('1 h 30 min');
  });
});

describe('SourceSyncStatus', () => {
  it('says the status in plain words', () => {
    const cases: [Partial<Source>, RegExp][] = [
      [{}, /Connected.*Synced/],
      [{ last_sync: null }, /Connected.*Not synced yet/],
      [{ status: 'reconnect_needed' }, /Needs you to sign in again.*records are kept/],
      [{ status: 'error', last_error: 'The provider answered HTTP 503.' }, /Sync failed.*HTTP 503/],
      [{ last_error: 'Synced with warnings: Immunization: access denied.' }, /Synced with warnings.*Immunization: access denied/],
      [{ syncing: true }, /Syncing….*0 records received/],
    ];
    for (const [over, re] of cases) {
      const { container, unmount } = render(wrap(<SourceSyncStatus source={{ ...provider, ...over }} />));
      expect(container.textContent).toMatch(re);
      unmount();
    }
  });
});

describe('Sources with background sync', () => {
  it('syncs now, shows live progress from events, then the result and the history', async () => {
    let runs: SyncRun[] = [run({ id: 1 })];
    const api = mockApi({
      'POST /api/v1/sources/3/sync': { source_id: 3, queued: true },
      '/api/v1/sources/3/sync-runs': () => runs,
    });
    const hub = new EventHub();
    render(wrap(<Sources />, { sources: [provider, file], hub }));
    const row = screen.getByText('Demo Hospital').closest('tr')!;
    expect(within(row).getByTestId('sync-status').textContent).toContain('Connected');
    // No sync actions for a file source.
    expect(screen.queryByRole('button', { name: 'Sync bundle.json now' })).toBeNull();

    fireEvent.click(within(row).getByRole('button', { name: 'Sync Demo Hospital now' }));
    await waitFor(() => expect(within(row).getByTestId('sync-progress').textContent).toContain('Starting to sync'));
    expect(api.mock.calls.some(([u, init]) => String(u).endsWith('/sources/3/sync') && init?.method === 'POST')).toBe(true);
    act(() => {
      hub.emit({ type: 'sync.started', data: { source_id: 3, run_id: 2, trigger: 'manual' } });
      hub.emit({ type: 'sync.progress', data: { source_id: 3, run_id: 2, resources: 150, requests: 9, type: 'Observation' } });
    });
    expect(within(row).getByTestId('sync-progress').textContent).toMatch(/Syncing….*150 records received, 9 requests · reading/);
    expect((within(row).getByRole('button', { name: 'Sync Demo Hospital now' }) as HTMLButtonElement).disabled).toBe(true);

    // The history panel.
    const toggle = within(row).getByRole('button', { name: 'Sync history of Demo Hospital' });
    expect(toggle.getAttribute('aria-expanded')).toBe('false');
    fireEvent.click(toggle);
    expect(toggle.getAttribute('aria-expanded')).toBe('true');
    const panel = await screen.findByTestId('sync-history');
    expect(panel.id).toBe(toggle.getAttribute('aria-controls'));
    await waitFor(() => expect(within(panel).getAllByRole('row')).toHaveLength(2));
    expect(within(panel).getAllByRole('row')[1].textContent).toMatch(/After connecting.*4 s.*Synced.*215.*0.*0.*12/);

    // The sync ends: progress goes, the result shows, the history reloads.
    runs = [run({ id: 2, trigger: 'manual', added: 3, updated: 1, unchanged: 211, warnings: 'Synced with warnings: Immunization: access denied.' }), ...runs];
    act(() => hub.emit({ type: 'sync.done', data: { source_id: 3, run_id: 2, added: 3, updated: 1 } }));
    expect(within(row).queryByTestId('sync-progress')).toBeNull();
    expect(row.textContent).toContain('Just synced: 3 new, 1 updated.');
    await waitFor(() => expect(within(panel).getAllByRole('row')).toHaveLength(3));
    expect(within(panel).getAllByRole('row')[1].textContent).toMatch(/You asked.*Synced with warnings.*Immunization: access denied/);
  });

  it('shows a failed run with its error, and "Sync all" when there are providers', async () => {
    mockApi({
      'POST /api/v1/sync': { source_ids: [3] },
      '/api/v1/sources/3/sync-runs': [run({ status: 'failed', error: 'The provider answered HTTP 500 four times.', added: 0 })],
    });
    const { rerender } = render(wrap(<Sources />, { sources: [file] }));
    expect(screen.queryByRole('button', { name: 'Sync all' })).toBeNull();
    rerender(wrap(<Sources />, { sources: [file, provider, { ...provider, id: 4, name: 'Clinic', status: 'reconnect_needed' }] }));
    // A source that needs a new sign-in offers that, not "Sync now".
    expect(screen.queryByRole('button', { name: 'Sync Clinic now' })).toBeNull();
    expect(screen.getByRole('button', { name: 'Sign in to Clinic again' })).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Sync all' }));
    expect(await screen.findByText('Syncing 1 provider. 1 needs you to sign in again first.')).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Sync history of Demo Hospital' }));
    const panel = await screen.findByTestId('sync-history');
    await waitFor(() => expect(panel.textContent).toContain('The provider answered HTTP 500 four times.'));
    expect(panel.textContent).toContain('Failed');
  });

  it('shows the error in plain words when a sync cannot start', async () => {
    mockApi({
      'POST /api/v1/sources/3/sync': () =>
        new Response(JSON.stringify({ error: { code: 'reconnect_needed', message: 'Sign in to Demo Hospital again to resume syncing.' } }), { status: 409 }),
    });
    render(wrap(<Sources />, { sources: [provider] }));
    fireEvent.click(screen.getByRole('button', { name: 'Sync Demo Hospital now' }));
    expect((await screen.findByRole('alert')).textContent).toContain('Sign in to Demo Hospital again to resume syncing.');
  });
});
