// The household overview: each person with their counts and latest activity, and what is not
// linked to anyone. Shown on the dashboard when "Everyone" is chosen, and on the People page.
import { useState } from 'react';
import { getUnlinked, listPeople, type Person } from '../api/people';
import { useApp } from '../AppContext';
import { formatCount, formatDate } from '../lib/format';
import { useAsync } from '../lib/hooks';
import { countLabel } from '../lib/resources';
import { href, navigate } from '../lib/router';
import { ErrorMessage, Loading } from './common';
import { PersonAvatar, personAge } from './PersonSwitcher';
import './people.css';

// The types a card names first (when the person has them).
const HIGHLIGHT = ['Condition', 'MedicationRequest', 'Encounter', 'Immunization', 'Observation', 'Procedure', 'AllergyIntolerance'];

// A large household shows its first people; the rest on request.
export const HOUSEHOLD_FIRST = 24;

export function Household({ heading = 'Household', manage = false }: { heading?: string; manage?: boolean }) {
  const { setProfile, profiles } = useApp();
  const [all, setAll] = useState(false);
  const st = useAsync(
    async (signal) => {
      const [people, unlinked] = await Promise.all([
        listPeople(true, signal, all ? undefined : HOUSEHOLD_FIRST + 1),
        getUnlinked(signal).catch(() => null),
      ]);
      return { people, unlinked };
    },
    [all],
  );
  if (st.error && !st.data) return <ErrorMessage error={st.error} onRetry={st.reload} />;
  if (!st.data) return <Loading label="Loading the household…" />;
  const { unlinked } = st.data;
  const more = !all && st.data.people.length > HOUSEHOLD_FIRST;
  const people = more ? st.data.people.slice(0, HOUSEHOLD_FIRST) : st.data.people;
  const total = Math.max(profiles?.length ?? 0, st.data.people.length);
  const open = (p: Person) => {
    setProfile(p.id);
    navigate('/');
  };
  return (
    <section className="household" aria-labelledby="household-h">
      <div className="page-head">
        <h2 id="household-h">{heading}</h2>
        {!manage && (
          <a className="more" href={href('/people')}>
            Manage people
          </a>
        )}
      </div>
      {people.length === 0 && <p className="muted">Nobody yet: import a file or connect a provider, and the people in it appear here.</p>}
      <ul className="household-grid">
        {people.map((p) => (
          <li key={p.id} className="card household-card" data-testid="household-person" data-profile-id={p.id}>
            <div className="household-card-head">
              <PersonAvatar person={p} size="lg" />
              <div>
                <h3 className="household-name">{p.name}</h3>
                <p className="muted small">
                  {p.birth_date ? `Born ${formatDate(p.birth_date)}` : 'Birth date unknown'}
                  {personAge(p) ? ` · ${personAge(p)}` : ''}
                </p>
              </div>
            </div>
            <dl className="household-facts">
              <div>
                <dt>Records</dt>
                <dd data-testid="household-records">{formatCount(p.resource_count)}</dd>
              </div>
              <div>
                <dt>Sources</dt>
                <dd>{formatCount(p.source_count)}</dd>
              </div>
              <div>
                <dt>Latest</dt>
                <dd>{p.last_activity ? formatDate(p.last_activity) : '—'}</dd>
              </div>
            </dl>
            {p.counts && Object.keys(p.counts).length > 0 && (
              <ul className="household-counts" aria-label={`${p.name}'s records by type`}>
                {HIGHLIGHT.filter((t) => p.counts?.[t]).slice(0, 5).map((t) => (
                  <li key={t}>
                    <span className="household-count">{formatCount(p.counts![t])}</span> {countLabel(t, p.counts![t])}
                  </li>
                ))}
              </ul>
            )}
            <div className="household-actions">
              <button type="button" className="btn btn-primary btn-small" onClick={() => open(p)} aria-label={`Show ${p.name}'s dashboard`}>
                Open dashboard
              </button>
              <a className="btn btn-small" href={href(`/people/${p.id}`)} aria-label={`Manage ${p.name}`}>
                Manage
              </a>
            </div>
          </li>
        ))}
        {unlinked && unlinked.resource_count > 0 && (
          <li className="card household-card household-unlinked" data-testid="household-unlinked">
            <div className="household-card-head">
              <span className="person-avatar person-avatar-lg person-avatar-none" aria-hidden="true">
                ?
              </span>
              <div>
                <h3 className="household-name">Not linked to a person</h3>
                <p className="muted small">Organizations, practitioners and other records that name no patient stay with their source.</p>
              </div>
            </div>
            <dl className="household-facts">
              <div>
                <dt>Records</dt>
                <dd data-testid="unlinked-records">{formatCount(unlinked.resource_count)}</dd>
              </div>
              <div>
                <dt>Sources</dt>
                <dd>{formatCount(unlinked.sources.length)}</dd>
              </div>
              {unlinked.patients.length > 0 && (
                <div>
                  <dt>Patients to assign</dt>
                  <dd>{formatCount(unlinked.patients.length)}</dd>
                </div>
              )}
            </dl>
          </li>
        )}
      </ul>
      {more && (
        <p className="household-more">
          <button type="button" className="btn" onClick={() => setAll(true)} data-testid="household-show-all">
            Show all {formatCount(total)} people
          </button>
        </p>
      )}
    </section>
  );
}
