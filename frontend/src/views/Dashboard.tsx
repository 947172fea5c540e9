import { useEffect, useState } from 'react';
import type { Observation, Patient } from 'fhir/r4';
import { getCounts, getSummary, listResources } from '../api/client';
import type { Counts, ResourceItem, Summary } from '../api/types';
import { useApp } from '../AppContext';
import { ErrorMessage, ItemPerson, Loading, ResourceLink, ResultFlag, Section } from '../components/common';
import { signalReady } from '../lib/events';
import { ageInYears, capitalise, codeKey, formatCount, formatDate, humanName } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { isMinorType, orderedTypes, resourceTitle, summaryValue, countLabel } from '../lib/resources';
import { href } from '../lib/router';
import { ConnectButton } from '../components/ConnectDialog';
import { Household } from '../components/Household';
import { PersonAvatar } from '../components/PersonSwitcher';
import type { Profile } from '../api/types';
import { OwnQuickActions } from '../own/OwnQuickActions';

let readySignalled = false;

export function Dashboard() {
  const { profile, profiles } = useApp();
  useTitle('Dashboard');
  // A connect started from the welcome page brings records in (its first sync) while its dialog
  // still shows the outcome: the welcome page stays until the dialog is closed.
  const [welcomeDialog, setWelcomeDialog] = useState(false);
  const person = profiles?.find((p) => p.id === profile) ?? null;
  // Everyone in a household of several people: the household overview first.
  const household = profile === undefined && !!profiles && profiles.length > 1;
  const st = useAsync(
    async (signal) => {
      const [summary, counts] = await Promise.all([getSummary({ profile }, signal), getCounts({ profile }, signal)]);
      // Several people in one view (before profiles): name them all rather than one. The newest
      // by date, through the date index (sorting a million-record household's patients by name
      // read every one of them), then shown by name.
      const people =
        (counts.Patient ?? 0) > 1
          ? (await listResources({ type: 'Patient', sort: '-date', limit: 20, profile }, signal)).items
              .map((it) => it.resource as Patient)
              .sort((a, b) => humanName(a.name).localeCompare(humanName(b.name)))
          : [];
      return { summary, counts, people };
    },
    [profile],
  );
  const total = st.data ? Object.values(st.data.counts ?? {}).reduce((a, b) => a + b, 0) : 0;

  useEffect(() => {
    if (!readySignalled && st.data && total > 0) {
      readySignalled = true;
      signalReady('dashboard');
    }
  }, [st.data, total]);

  if (st.error && !st.data) return <div className="page"><h1>Dashboard</h1><ErrorMessage error={st.error} onRetry={st.reload} /></div>;
  if (!st.data) return <div className="page"><h1>Dashboard</h1><Loading label="Loading your records…" /></div>;
  if (total === 0 || welcomeDialog) return <Welcome onDialog={setWelcomeDialog} />;
  const { summary, counts, people } = st.data;
  return (
    <div className="page dashboard">
      {household ? (
        <Household heading="Everyone" />
      ) : people.length > 1 && !person ? (
        <PeopleBanner people={people} total={total} />
      ) : (
        <PatientBanner patient={summary.patient ?? null} total={total} person={person} />
      )}
      {st.error ? <ErrorMessage error={st.error} onRetry={st.reload} /> : null}
      {!household && <OwnQuickActions />}
      <CountsGrid counts={counts} />
      <div className="grid">
        <ItemList title="Active problems" items={summary.conditions} empty="No active problems recorded." show="date" moreHref={href('/records/Condition')} />
        <ItemList title="Medications" items={summary.medications} empty="No active medications recorded." show="date" moreHref={href('/records/MedicationRequest')} />
        <ItemList title="Allergies" items={summary.allergies} empty="No allergies recorded." show="value" moreHref={href('/records/AllergyIntolerance')} />
        <Measurements title="Latest vitals" items={summary.vitals} empty="No vital signs recorded." />
        <ItemList title="Immunizations" items={summary.immunizations} empty="No immunizations recorded." show="date" moreHref={href('/records/Immunization')} />
        <ItemList title="Recent encounters" items={summary.encounters} empty="No encounters recorded." show="date" moreHref={href('/records/Encounter')} />
        <Measurements title="Latest labs" items={summary.labs} empty="No lab results recorded." wide />
      </div>
    </div>
  );
}

function PatientBanner({ patient, total, person }: { patient: Patient | null; total: number; person: Profile | null }) {
  const name = patient ? humanName(patient.name) : person?.name ?? '';
  const age = patient?.deceasedDateTime || patient?.deceasedBoolean ? null : ageInYears(patient?.birthDate);
  return (
    <section className="patient-banner" aria-label="Patient">
      {person ? (
        <PersonAvatar person={person} size="lg" />
      ) : (
        <div className="avatar" aria-hidden="true">
          {(name || 'Me')
            .split(/\s+/)
            .filter(Boolean)
            .slice(0, 2)
            .map((s) => s[0])
            .join('')}
        </div>
      )}
      <div>
        <h1 data-testid="patient-name">{name || 'Your records'}</h1>
        <p className="patient-facts">
          {patient?.birthDate && (
            <span>
              Born {formatDate(patient.birthDate)}
              {age !== null ? ` (${age} years)` : ''}
            </span>
          )}
          {patient?.gender && <span>{capitalise(patient.gender)}</span>}
          {patient?.deceasedDateTime && <span>Died {formatDate(patient.deceasedDateTime)}</span>}
          <span>{formatCount(total)} records</span>
        </p>
      </div>
    </section>
  );
}

function PeopleBanner({ people, total }: { people: Patient[]; total: number }) {
  return (
    <section className="patient-banner" aria-label="People">
      <div className="avatar" aria-hidden="true">
        {people.length}
      </div>
      <div>
        <h1 data-testid="patient-name">Records of {people.length} people</h1>
        <p className="patient-facts">
          {people.map((p, i) => (
            <span key={p.id ?? i}>
              {humanName(p.name) || 'Unnamed'}
              {p.birthDate ? ` (born ${formatDate(p.birthDate)})` : ''}
            </span>
          ))}
          <span>{formatCount(total)} records</span>
        </p>
      </div>
    </section>
  );
}

function CountsGrid({ counts }: { counts: Counts }) {
  const types = orderedTypes(counts);
  return (
    <section aria-labelledby="counts-h" className="counts-section">
      <h2 id="counts-h" className="visually-hidden">
        Records by type
      </h2>
      <ul className="counts" data-testid="counts">
        {types.map((t) => (
          <li key={t} className={isMinorType(t) ? 'count-minor' : undefined}>
            <a href={href(`/records/${t}`)} className="count-tile" data-type={t}>
              <span className="count-number" data-testid={`count-${t}`}>
                {formatCount(counts[t])}
              </span>
              <span className="count-label">{countLabel(t, counts[t])}</span>
            </a>
          </li>
        ))}
      </ul>
    </section>
  );
}

function ItemList({
  title,
  items,
  empty,
  show,
  moreHref,
  wide,
}: {
  title: string;
  items: ResourceItem[] | undefined;
  empty: string;
  show: 'date' | 'value';
  moreHref: string;
  wide?: boolean;
}) {
  const list = items ?? [];
  return (
    <div className={wide ? 'span-2' : undefined}>
      <Section title={title} actions={list.length > 0 ? <a href={moreHref} className="more">See all</a> : undefined}>
        {list.length === 0 ? (
          <p className="muted">{empty}</p>
        ) : (
          <ul className="item-list">
            {list.map((it) => (
              <li key={it.type + it.id + it.source_id}>
                <ResourceLink item={it}>{resourceTitle(it)}</ResourceLink> <ItemPerson profileId={it.profile_id} />
                <span className="item-meta">
                  {show === 'value' ? summaryValue(it) : ''}
                  {show === 'date' && it.date ? formatDate(it.date) : ''}
                  {show === 'date' && it.type === 'Encounter' && summaryValue(it) ? ` · ${summaryValue(it)}` : ''}
                </span>
              </li>
            ))}
          </ul>
        )}
      </Section>
    </div>
  );
}

function Measurements({ title, items, empty, wide }: { title: string; items: ResourceItem[] | undefined; empty: string; wide?: boolean }) {
  const list = items ?? [];
  return (
    <div className={wide ? 'span-2' : undefined}>
    <Section title={title} actions={list.length > 0 ? <a href={href('/labs')} className="more">Charts</a> : undefined}>
      {list.length === 0 ? (
        <p className="muted">{empty}</p>
      ) : !wide ? (
        <ul className="item-list measure-list">
          {list.map((it) => {
            const code = codeKey((it.resource as Observation).code);
            return (
              <li key={it.type + it.id + it.source_id}>
                {code ? <a href={href('/labs', { code })}>{resourceTitle(it)}</a> : <ResourceLink item={it} />} <ItemPerson profileId={it.profile_id} />
                <span className="measure">
                  <span className="measure-value">
                    {summaryValue(it)} <ResultFlag item={it} />
                  </span>
                  <span className="item-meta">{formatDate(it.date)}</span>
                </span>
              </li>
            );
          })}
        </ul>
      ) : (
        <table className="compact">
          <thead>
            <tr>
              <th scope="col">Test</th>
              <th scope="col" className="num">Value</th>
              <th scope="col">Date</th>
            </tr>
          </thead>
          <tbody>
            {list.map((it) => {
              const code = codeKey((it.resource as Observation).code);
              return (
                <tr key={it.type + it.id + it.source_id}>
                  <td>
                    {code ? <a href={href('/labs', { code })}>{resourceTitle(it)}</a> : <ResourceLink item={it} />} <ItemPerson profileId={it.profile_id} />
                  </td>
                  <td className="num nowrap">
                    {summaryValue(it)} <ResultFlag item={it} />
                  </td>
                  <td className="nowrap">{formatDate(it.date)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Section>
    </div>
  );
}

function Welcome({ onDialog }: { onDialog?: (open: boolean) => void }) {
  return (
    <div className="page welcome">
      <h1>Welcome to Fasten</h1>
      <p className="lead">Your health records, kept on this computer. Nothing is sent to a cloud.</p>
      <p>There are two ways to bring your records in:</p>
      <div className="ways">
        <section className="card way" aria-labelledby="way-import">
          <h2 id="way-import">Import a file</h2>
          <p>
            If your hospital, clinic or another app gave you your records as a file (FHIR JSON, NDJSON, or a zip of those),
            add it here. You can import several files at once.
          </p>
          <a className="btn btn-primary" href={href('/import')}>
            Import a file
          </a>
        </section>
        <section className="card way" aria-labelledby="way-connect">
          <h2 id="way-connect">Connect a provider</h2>
          <p>Sign in to your hospital's patient portal and let Fasten keep your records up to date.</p>
          <ConnectButton whyId="connect-why" primary onOpenChange={onDialog} />
        </section>
      </div>
    </div>
  );
}

export type { Summary };
