import { beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import type { ReactNode } from 'react';
import { AppContext, type AppState } from '../AppContext';
import type { Profile } from '../api/types';
import { EventHub } from '../lib/events';
import { mockApi } from '../test/api';
import { PersonSwitcher, initialsOf } from './PersonSwitcher';
import { HOUSEHOLD_FIRST, Household } from './Household';
import { People } from '../views/People';
import { parseHash } from '../lib/router';

const people: Profile[] = [
  { id: 1, name: 'Raúl Fernández', birth_date: '1971-12-23', color: '#3b6fd8', initials: 'RF', resource_count: 215 },
  { id: 2, name: 'Emma Doe', birth_date: '2015-03-28', color: '#d0563b', initials: 'ED', resource_count: 40 },
];

function wrap(children: ReactNode, over: Partial<AppState> = {}) {
  const state: AppState = {
    hub: new EventHub(),
    profile: undefined,
    setProfile: () => {},
    profiles: people,
    sources: [],
    refreshSources: () => {},
    settings: null,
    refreshSettings: async () => {},
    ...over,
  };
  return <AppContext.Provider value={state}>{children}</AppContext.Provider>;
}

beforeEach(() => {
  vi.unstubAllGlobals();
});

describe('PersonSwitcher', () => {
  it('shows the chosen person and lets the user pick another with the keyboard', async () => {
    const onChange = vi.fn();
    render(<PersonSwitcher profiles={people} value={1} onChange={onChange} />);
    const button = screen.getByTestId('person-switcher');
    expect(button.textContent).toContain('Raúl Fernández');
    expect(button.getAttribute('aria-expanded')).toBe('false');
    fireEvent.click(button);
    const menu = screen.getByRole('menu', { name: 'Show the records of' });
    const items = screen.getAllByRole('menuitemradio');
    expect(items.map((i) => i.textContent)).toEqual([
      expect.stringContaining('Everyone'),
      expect.stringContaining('Raúl Fernández'),
      expect.stringContaining('Emma Doe'),
    ]);
    // The checked person has focus; ArrowDown moves to the next; Enter picks it.
    await waitFor(() => expect(document.activeElement).toBe(items[1]));
    expect(items[1].getAttribute('aria-checked')).toBe('true');
    fireEvent.keyDown(menu, { key: 'ArrowDown' });
    expect(document.activeElement).toBe(items[2]);
    fireEvent.click(items[2]);
    expect(onChange).toHaveBeenCalledWith(2);
    expect(screen.queryByRole('menu')).toBeNull();
  });

  it('offers everyone and closes on Escape', () => {
    const onChange = vi.fn();
    render(<PersonSwitcher profiles={people} value={undefined} onChange={onChange} />);
    const button = screen.getByTestId('person-switcher');
    expect(button.textContent).toContain('Everyone');
    fireEvent.click(button);
    fireEvent.keyDown(screen.getByRole('menu'), { key: 'Escape' });
    expect(screen.queryByRole('menu')).toBeNull();
    expect(document.activeElement).toBe(button);
    fireEvent.click(button);
    fireEvent.click(screen.getByRole('menuitemradio', { name: /Everyone/ }));
    expect(onChange).toHaveBeenCalledWith(undefined);
  });

  it('derives initials', () => {
    expect(initialsOf('Raúl Fernández García')).toBe('RG');
    expect(initialsOf('Madonna')).toBe('Ma');
    expect(initialsOf('')).toBe('?');
  });
});

describe('Household', () => {
  it('lists each person with counts and latest activity, and what is not linked', async () => {
    mockApi({
      '/api/v1/profiles': (url: URL) => {
        expect(url.searchParams.get('counts')).toBe('true');
        return [
          { ...people[0], source_count: 1, last_activity: '2024-02-01', counts: { Condition: 3, Encounter: 10 } },
          { ...people[1], source_count: 2, last_activity: null, counts: {} },
        ];
      },
      '/api/v1/unlinked': { resource_count: 7, counts: { Organization: 7 }, sources: [{ id: 1, name: 'a', kind: 'manual', resource_count: 7 }], patients: [] },
    });
    const setProfile = vi.fn();
    render(wrap(<Household />, { setProfile }));
    const cards = await screen.findAllByTestId('household-person');
    expect(cards).toHaveLength(2);
    expect(cards[0].textContent).toContain('Raúl Fernández');
    expect(cards[0].textContent).toContain('215');
    expect(cards[0].textContent).toContain('10 Visits');
    expect(screen.getByTestId('household-unlinked').textContent).toContain('Not linked to a person');
    fireEvent.click(screen.getByRole('button', { name: "Show Emma Doe's dashboard" }));
    expect(setProfile).toHaveBeenCalledWith(2);
  });

  it('shows a large household\'s first people, and everyone on request', async () => {
    const many: Profile[] = Array.from({ length: 60 }, (_, i) => ({ id: i + 1, name: `Person ${i + 1}`, color: '#3b6fd8', initials: 'P', resource_count: 10 }));
    const limits: (string | null)[] = [];
    mockApi({
      '/api/v1/profiles': (url: URL) => {
        const limit = url.searchParams.get('limit');
        limits.push(limit);
        return many.slice(0, limit ? Number(limit) : many.length).map((p) => ({ ...p, source_count: 1, last_activity: null, counts: {} }));
      },
      '/api/v1/unlinked': { resource_count: 0, counts: {}, sources: [], patients: [] },
    });
    render(wrap(<Household />, { profiles: many }));
    expect(await screen.findAllByTestId('household-person')).toHaveLength(HOUSEHOLD_FIRST);
    fireEvent.click(screen.getByRole('button', { name: 'Show all 60 people' }));
    await waitFor(() => expect(screen.getAllByTestId('household-person')).toHaveLength(60));
    expect(screen.queryByTestId('household-show-all')).toBeNull();
    expect(limits).toEqual([String(HOUSEHOLD_FIRST + 1), null]);
  });
});

describe('People', () => {
  it('shows a person, and deleting asks with what goes', async () => {
    const api = mockApi({
      '/api/v1/profiles/2': {
        ...people[1],
        source_count: 1,
        counts: { Observation: 40 },
        sources: [{ id: 9, name: 'emma.json', kind: 'manual', resource_count: 40, shared: false }],
        patients: [],
      },
      '/api/v1/merges': [],
      '/api/v1/profiles/2/deletion': {
        profile_id: 2,
        name: 'Emma Doe',
        resource_count: 42,
        counts: { Observation: 40, Organization: 2 },
        sources_deleted: [{ id: 9, name: 'emma.json', kind: 'manual', resource_count: 42 }],
        sources_kept: [{ id: 3, name: 'family.ndjson', kind: 'manual', resource_count: 5 }],
        deleted: false,
      },
      'DELETE /api/v1/profiles/2': { profile_id: 2, name: 'Emma Doe', resource_count: 42, counts: {}, sources_deleted: [], sources_kept: [], deleted: true },
    });
    render(wrap(<People route={parseHash('#/people/2')} />));
    expect(await screen.findByRole('heading', { name: 'Emma Doe', level: 1 })).toBeTruthy();
    fireEvent.click(screen.getByRole('button', { name: 'Delete Emma Doe…' }));
    await screen.findByRole('dialog');
    const plan = await screen.findByTestId('delete-plan');
    expect(plan.textContent).toContain('removes 42 records');
    expect(plan.textContent).toContain('emma.json (42 records)');
    expect(plan.textContent).toContain("family.ndjson (5 of Emma Doe's records)");
    expect(document.activeElement?.textContent).toBe('Keep Emma Doe');
    fireEvent.click(screen.getByRole('button', { name: 'Delete Emma Doe and 42 records' }));
    await waitFor(() => expect(api.mock.calls.some(([, init]) => (init as RequestInit | undefined)?.method === 'DELETE')).toBe(true));
  });
});
