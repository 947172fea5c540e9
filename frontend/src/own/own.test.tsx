import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { ReactNode } from 'react';
import { AppContext, type AppState } from '../AppContext';
import { EventHub } from '../lib/events';
import { mockApi } from '../test/api';
import { OwnEntryDialog } from './OwnEntryForm';
import { OwnRecordActions } from './OwnRecordActions';
import type { ResourceItem } from '../api/types';

function wrap(children: ReactNode) {
  const state: AppState = {
    hub: new EventHub(),
    profile: 3,
    setProfile: () => {},
    profiles: null,
    sources: [],
    refreshSources: () => {},
    settings: null,
    refreshSettings: async () => {},
  };
  return <AppContext.Provider value={state}>{children}</AppContext.Provider>;
}

afterEach(() => vi.unstubAllGlobals());

const item = (resource: object): ResourceItem =>
  ({ source_id: 1, type: 'Observation', id: 'o1', title: 'Weight', date: '2025-01-01', resource } as unknown as ResourceItem);

describe('own entries in the UI', () => {
  it('posts a weight as FHIR for the person', async () => {
    let body: any;
    const fetch = mockApi({
      'POST /api/v1/resources': (url, init) => {
        expect(url.searchParams.get('profile')).toBe('3');
        body = JSON.parse(String(init?.body));
        return new Response(JSON.stringify({ type: 'Observation', id: 'x', source_id: 9 }), { status: 201 });
      },
    });
    const onClose = vi.fn();
    render(wrap(<OwnEntryDialog profile={3} onClose={onClose} />));
    fireEvent.change(screen.getByTestId('own-value'), { target: { value: '80.4' } });
    fireEvent.click(screen.getByTestId('own-save'));
    await waitFor(() => expect(onClose).toHaveBeenCalled());
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(body.code.coding[0].code).toBe('29463-7');
    expect(body.valueQuantity).toMatchObject({ value: 80.4, code: 'kg', system: 'http://unitsofmeasure.org' });
  });

  it("shows the server's reason for a refused entry and keeps the form", async () => {
    mockApi({
      'POST /api/v1/resources': () =>
        new Response(
          JSON.stringify({
            resourceType: 'OperationOutcome',
            issue: [{ severity: 'error', code: 'invalid', diagnostics: 'Observation.effectiveDateTime is in the future.', location: ['Observation.effectiveDateTime'] }],
          }),
          { status: 400, headers: { 'Content-Type': 'application/fhir+json' } },
        ),
    });
    const onClose = vi.fn();
    render(wrap(<OwnEntryDialog profile={3} onClose={onClose} />));
    fireEvent.change(screen.getByTestId('own-value'), { target: { value: '80' } });
    fireEvent.click(screen.getByTestId('own-save'));
    expect((await screen.findByTestId('own-error')).textContent).toContain('in the future');
    expect(onClose).not.toHaveBeenCalled();
    expect((screen.getByTestId('own-value') as HTMLInputElement).value).toBe('80');
  });

  it('offers change and delete only on self-entered records', () => {
    const own = { resourceType: 'Observation', meta: { tag: [{ system: 'https://fastenhealth.com/fasten-desktop/tags', code: 'self-entered' }] }, status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '29463-7' }] }, valueQuantity: { value: 70, code: 'kg' } };
    const { unmount } = render(wrap(<OwnRecordActions item={item(own)} />));
    expect(screen.getByTestId('self-entered').textContent).toBe('Entered by you');
    expect(screen.queryByTestId('own-edit')).not.toBeNull();
    unmount();
    render(wrap(<OwnRecordActions item={item({ ...own, meta: {} })} />));
    expect(screen.queryByTestId('own-edit')).toBeNull();
    expect(screen.queryByTestId('self-entered')).toBeNull();
  });
});
