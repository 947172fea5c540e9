import { describe, expect, it, vi, beforeEach } from 'vitest';
import { render, screen, waitFor, within } from '@testing-library/react';
import { AppContext, type AppState } from '../AppContext';
import { EventHub } from '../lib/events';
import { mockApi } from '../test/api';
import { RecordDetail } from './RecordDetail';
import { personAge } from '../components/PersonSwitcher';

function wrap(children: React.ReactNode) {
  const state: AppState = {
    hub: new EventHub(),
    profile: undefined,
    setProfile: () => {},
    profiles: null,
    sources: [],
    refreshSources: () => {},
    settings: null,
    refreshSettings: async () => {},
  };
  return <AppContext.Provider value={state}>{children}</AppContext.Provider>;
}

beforeEach(() => {
  vi.unstubAllGlobals();
});

describe('record detail', () => {
  it('shows a visit with names and its contents grouped by kind', async () => {
    mockApi({
      '/api/v1/resources/Encounter/e1': {
        source_id: 1,
        type: 'Encounter',
        id: 'e1',
        title: 'General examination',
        date: '2020-01-01',
        resource: {
          resourceType: 'Encounter',
          id: 'e1',
          status: 'finished',
          class: { code: 'AMB' },
          type: [{ text: 'General examination' }],
          participant: [{ individual: { reference: 'Practitioner/d1' } }],
          serviceProvider: { reference: 'Organization/gone' },
        },
        references: { 'Practitioner/d1': { type: 'Practitioner', id: 'd1', title: 'Dr. Liane Kunze' } },
        unresolved: [{ reference: 'Organization/gone', type: 'Organization', text: 'a clinic or organisation not in your records' }],
        related: [
          { type: 'Condition', id: 'c1', title: 'Acute bronchitis', date: '2020-01-01' },
          { type: 'Observation', id: 'o1', title: 'Glucose', date: '2020-01-01', resource: { resourceType: 'Observation', status: 'final', code: { text: 'Glucose' }, valueQuantity: { value: 130, unit: 'mg/dL' }, interpretation: [{ coding: [{ code: 'H' }] }] } },
          { type: 'Claim', id: 'cl1', title: 'Claim of 2020-01-01', date: '2020-01-01', resource: { resourceType: 'Claim', total: { value: 125.5, currency: 'USD' } } },
        ],
      },
    });
    render(wrap(<RecordDetail type="Encounter" id="e1" source={null} />));
    await screen.findByRole('heading', { name: 'General examination' });
    expect(screen.getByRole('link', { name: 'Dr. Liane Kunze' })).toBeTruthy();
    expect(screen.getByText('a clinic or organisation not in your records')).toBeTruthy();
    expect(screen.getByText('Outpatient visit')).toBeTruthy();
    const shown = [...document.querySelectorAll('.fields, .visit-contents')].map((e) => e.textContent).join(' ');
    expect(shown).not.toMatch(/\bPractitioner\b|\bOrganization\b|AMB/);
    const groups = screen.getAllByTestId('visit-group').map((g) => within(g).getByRole('heading').textContent);
    expect(groups).toEqual(['Diagnoses (1)', 'Tests and results (1)', 'Costs (1)']);
    expect(document.body.textContent).toContain('130 mg/dL · High');
    expect(shown).toMatch(/Claim: \$125\.50/);
  });

  it('shows a report as a results table with values, units, ranges and flags', async () => {
    mockApi({
      '/api/v1/resources/DiagnosticReport/r1': {
        source_id: 1,
        type: 'DiagnosticReport',
        id: 'r1',
        title: 'Basic metabolic panel',
        resource: { resourceType: 'DiagnosticReport', id: 'r1', status: 'final', code: { text: 'Basic metabolic panel' }, result: [{ reference: 'Observation/o1' }, { reference: 'Observation/o2' }] },
        references: {
          'Observation/o1': {
            type: 'Observation',
            id: 'o1',
            title: 'Glucose',
            resource: {
              resourceType: 'Observation',
              status: 'final',
              code: { coding: [{ system: 'http://loinc.org', code: '2339-0', display: 'Glucose' }] },
              effectiveDateTime: '2020-01-01',
              valueQuantity: { value: 130, unit: 'mg/dL' },
              referenceRange: [{ low: { value: 70, unit: 'mg/dL' }, high: { value: 99, unit: 'mg/dL' } }],
            },
          },
        },
        unresolved: [],
        related: [],
      },
    });
    render(wrap(<RecordDetail type="DiagnosticReport" id="r1" source={null} />));
    const table = await screen.findByTestId('report-results');
    const rows = within(table).getAllByRole('row');
    expect(rows[1].textContent).toContain('Glucose');
    expect(rows[1].textContent).toContain('130');
    expect(rows[1].textContent).toContain('mg/dL');
    expect(rows[1].textContent).toContain('High');
    expect(rows[2].textContent).toBe('a test result not in your records');
  });

  it('opens a text attachment and warns about a hash mismatch', async () => {
    mockApi({
      '/api/v1/resources/DocumentReference/d1': {
        source_id: 1,
        type: 'DocumentReference',
        id: 'd1',
        title: 'Clinical note',
        resource: { resourceType: 'DocumentReference', id: 'd1', status: 'current', content: [{ attachment: { contentType: 'text/plain', data: 'eA==' } }] },
        references: {},
        unresolved: [],
        related: [],
      },
      '/api/v1/resources/DocumentReference/d1/attachments/0': () =>
        new Response('Chief complaint: cough', { status: 200, headers: { 'Content-Type': 'text/plain', 'X-Attachment-Check': 'hash-mismatch' } }),
    });
    render(wrap(<RecordDetail type="DocumentReference" id="d1" source={null} />));
    await waitFor(() => expect(screen.getByTestId('attachment-view').textContent).toContain('Chief complaint: cough'));
    expect(screen.getByTestId('attachment-mismatch').textContent).toContain('fingerprint');
  });

  it('shows deceased people with their date of death, not an age counting up', () => {
    expect(personAge({ birth_date: '1936-01-01', deceased: '1998-11-24T05:19:57+00:00' })).toMatch(/^Died .*1998 \(aged 62\)$/);
    expect(personAge({ birth_date: '1936-01-01', deceased: true })).toBe('Deceased');
    expect(personAge({ birth_date: '2015-01-01', deceased: null })).toMatch(/years?$/);
  });
});
