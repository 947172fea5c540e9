import { describe, expect, it, vi, beforeEach } from 'vitest';
import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import type { ReactNode } from 'react';
import { AppContext, type AppState } from '../AppContext';
import { EventHub } from '../lib/events';
import { parseHash } from '../lib/router';
import { mockApi } from '../test/api';
import { Dashboard } from './Dashboard';
import { Records } from './Records';
import { Sources } from './Sources';
import { RecordDetail } from './RecordDetail';
import type { Source } from '../api/types';

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

const patient = {
  resourceType: 'Patient',
  id: 'p1',
  name: [{ use: 'official', given: ['José', 'María'], family: 'Casares', prefix: ['Mr.'] }],
  birthDate: '1974-07-05',
  gender: 'male',
};

const glucose = {
  source_id: 1,
  type: 'Observation',
  id: 'o1',
  date: '2019-03-01T10:00:00Z',
  title: 'Glucose',
  resource: {
    resourceType: 'Observation',
    id: 'o1',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '2339-0', display: 'Glucose' }] },
    valueQuantity: { value: 95.3, unit: 'mg/dL' },
  },
};

beforeEach(() => {
  vi.unstubAllGlobals();
  history.replaceState(null, '', '/');
});

describe('Dashboard', () => {
  it('shows the patient (accents intact), the counts, and signals ui.ready once', async () => {
    const EventsEmit = vi.fn();
    vi.stubGlobal('runtime', { EventsEmit });
    const info = vi.spyOn(console, 'info').mockImplementation(() => {});
    mockApi({
      '/api/v1/summary': { patient, counts: { Observation: 71, Condition: 6 }, labs: [glucose], vitals: [], conditions: [], encounters: [] },
      '/api/v1/resources/counts': { Observation: 71, Condition: 6, Patient: 1 },
    });
    render(wrap(<Dashboard />));
    expect(await screen.findByTestId('patient-name')).toHaveProperty('textContent', 'José María Casares');
    expect(screen.getByText(/Born 5 Jul 1974|Born Jul 5, 1974/)).toBeTruthy();
    expect(screen.getByTestId('count-Observation').textContent).toBe('71');
    expect(screen.getByTestId('count-Condition').textContent).toBe('6');
    expect(screen.getByTestId('count-Patient').textContent).toBe('1');
    expect(screen.getByText('95.3 mg/dL')).toBeTruthy();
    expect(screen.getByText('No active problems recorded.')).toBeTruthy();
    await waitFor(() => expect(info).toHaveBeenCalledWith('fasten:ui-ready dashboard'));
    expect(EventsEmit).toHaveBeenCalledWith('ui.ready', { view: 'dashboard' });
  });

  it('names every person when the records hold several patients', async () => {
    const other = { ...patient, id: 'p2', name: [{ given: ['Raúl'], family: 'Fernández' }], birthDate: '1971-12-23' };
    mockApi({
      '/api/v1/summary': { patient, counts: { Patient: 2 } },
      '/api/v1/resources/counts': { Patient: 2, Observation: 3 },
      '/api/v1/resources': (u: URL) => {
        expect(u.searchParams.get('type')).toBe('Patient');
        return { items: [patient, other].map((r) => ({ source_id: 1, type: 'Patient', id: r.id, resource: r })) };
      },
    });
    render(wrap(<Dashboard />));
    expect((await screen.findByTestId('patient-name')).textContent).toBe('Records of 2 people');
    expect(screen.getByText(/José María Casares \(born/)).toBeTruthy();
    expect(screen.getByText(/Raúl Fernández \(born/)).toBeTruthy();
  });

  it('shows the first-launch page with import and a disabled connect', async () => {
    mockApi({ '/api/v1/summary': { patient: null, counts: {} }, '/api/v1/resources/counts': {} });
    render(wrap(<Dashboard />));
    expect(await screen.findByRole('heading', { name: 'Welcome to Fasten' })).toBeTruthy();
    expect(screen.getByRole('link', { name: 'Import a file' }).getAttribute('href')).toBe('#/import');
    const connect = screen.getByRole('button', { name: 'Connect a provider' }) as HTMLButtonElement;
    expect(connect.disabled).toBe(true);
    expect(connect.getAttribute('aria-describedby')).toBe('connect-why');
  });

  it('shows the API error message as is', async () => {
    mockApi({ '/api/v1/summary': new Response(JSON.stringify({ error: { code: 'internal', message: 'The database is locked by another program.' } }), { status: 500 }) });
    render(wrap(<Dashboard />));
    expect((await screen.findByRole('alert')).textContent).toContain('The database is locked by another program.');
  });
});

describe('Records', () => {
  it('pages with the cursor and sorts through the API', async () => {
    const calls: URL[] = [];
    mockApi({
      '/api/v1/resources/counts': { Observation: 3 },
      '/api/v1/resources': (u: URL) => {
        calls.push(u);
        return u.searchParams.get('cursor') === 'next1' ? { items: [{ ...glucose, id: 'o3', title: 'Second page' }] } : { items: [glucose], next_cursor: 'next1' };
      },
    });
    const route = parseHash('#/records/Observation');
    const { rerender } = render(wrap(<Records route={route} type="Observation" />));
    expect(await screen.findByRole('link', { name: 'Glucose' })).toBeTruthy();
    expect(calls[0].searchParams.get('sort')).toBe('-date');
    expect(calls[0].searchParams.get('type')).toBe('Observation');
    fireEvent.click(screen.getByRole('button', { name: /Next/ }));
    expect(location.hash).toContain('cursors=next1');
    rerender(wrap(<Records route={parseHash(location.hash)} type="Observation" />));
    expect(await screen.findByRole('link', { name: 'Second page' })).toBeTruthy();
    expect(calls[calls.length - 1].searchParams.get('cursor')).toBe('next1');
    fireEvent.click(screen.getByRole('button', { name: /Name/ }));
    expect(parseHash(location.hash).params.get('sort')).toBe('title');
    expect(parseHash(location.hash).params.get('cursors')).toBeNull();
  });
});

describe('RecordDetail', () => {
  it('shows key fields, a sanitised narrative and the raw JSON', async () => {
    const res = {
      ...glucose.resource,
      text: { status: 'generated', div: '<div><p>Fasting</p><script>window.__pwned=1</script><img src="http://evil.example/x.png"/></div>' },
      referenceRange: [{ low: { value: 70, unit: 'mg/dL' }, high: { value: 100, unit: 'mg/dL' } }],
    };
    mockApi({ '/api/v1/resources/Observation/o1': { ...glucose, resource: res } });
    render(wrap(<RecordDetail type="Observation" id="o1" source="1" />, { sources: [{ id: 1, name: 'patient.json' } as Source] }));
    expect(await screen.findByRole('heading', { level: 1, name: 'Glucose' })).toBeTruthy();
    expect(screen.getByText('70–100 mg/dL')).toBeTruthy();
    const narrative = screen.getByTestId('narrative');
    expect(narrative.textContent).toBe('Fasting');
    expect(narrative.querySelector('script, img')).toBeNull();
    expect(screen.getByText('Raw FHIR JSON')).toBeTruthy();
    expect(screen.getByLabelText('Raw FHIR JSON').textContent).toContain('"valueQuantity"');
    expect((window as unknown as { __pwned?: number }).__pwned).toBeUndefined();
  });
});

describe('Sources', () => {
  const src: Source = { id: 7, kind: 'manual', name: 'patient-José.json', status: 'ok', syncing: false, created_at: '2024-01-01T10:00:00Z', resource_count: 143 };

  it('confirms a delete with the exact counts, then deletes', async () => {
    const f = mockApi({
      '/api/v1/sources/7': { ...src, counts: { Observation: 71, Claim: 14, Patient: 1 } },
      'DELETE /api/v1/sources/7': { deleted: 86, counts: { Observation: 71, Claim: 14, Patient: 1 } },
    });
    const refresh = vi.fn();
    const hub = new EventHub();
    const events = vi.fn();
    hub.on(events);
    render(wrap(<Sources />, { sources: [src], refreshSources: refresh, hub }));
    fireEvent.click(screen.getByRole('button', { name: 'Delete patient-José.json' }));
    const dialog = await screen.findByRole('dialog');
    await within(dialog).findByText(/Deleting it removes/);
    expect(dialog.textContent).toContain('86 records');
    expect(dialog.textContent).toContain('71 Labs & observations');
    expect(dialog.textContent).toContain('14 Claims');
    expect(dialog.textContent).toContain('you can import it again later');
    // Focus starts on the safe choice.
    expect(document.activeElement?.textContent).toBe('Keep it');
    await act(async () => {
      fireEvent.click(within(dialog).getByRole('button', { name: 'Delete 86 records' }));
    });
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(f.mock.calls.some(([u, i]) => String(u) === '/api/v1/sources/7' && i?.method === 'DELETE')).toBe(true);
    expect(screen.getByRole('status').textContent).toContain('Deleted “patient-José.json” and its 86 records');
    expect(refresh).toHaveBeenCalled();
    expect(events).toHaveBeenCalledWith(expect.objectContaining({ type: 'resources.changed' }));
  });

  it('Escape closes the dialog without deleting', async () => {
    const f = mockApi({ '/api/v1/sources/7': { ...src, counts: { Patient: 1 } } });
    render(wrap(<Sources />, { sources: [src] }));
    fireEvent.click(screen.getByRole('button', { name: 'Delete patient-José.json' }));
    const dialog = await screen.findByRole('dialog');
    fireEvent.keyDown(dialog, { key: 'Escape' });
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(f.mock.calls.every(([, i]) => i?.method !== 'DELETE')).toBe(true);
  });

  it('renames a source', async () => {
    const f = mockApi({ 'PATCH /api/v1/sources/7': { ...src, name: 'My file' } });
    render(wrap(<Sources />, { sources: [src] }));
    fireEvent.click(screen.getByRole('button', { name: 'Rename patient-José.json' }));
    const input = screen.getByLabelText('New name for patient-José.json');
    fireEvent.change(input, { target: { value: 'My file' } });
    await act(async () => {
      fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    });
    expect(f.mock.calls[0][1]?.body).toBe('{"name":"My file"}');
    expect(await screen.findByText('Renamed to “My file”.')).toBeTruthy();
  });
});
