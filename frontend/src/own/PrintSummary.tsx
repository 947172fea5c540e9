// #/summary: one readable page (or a few) for a doctor – the person's International Patient
// Summary (GET /export/ips) rendered from its section narratives, plus recent visits. The person
// chooses the sections and the date range; Print opens the window's (or browser's) print dialog,
// where it can also be saved as PDF; "Save as FHIR" downloads the IPS document itself.
import { useMemo, useState } from 'react';
import type { Patient } from 'fhir/r4';
import { getSummary, saveBlob } from '../api/client';
import { getIps, type IpsChoice, type IpsSection } from '../api/own';
import { useApp } from '../AppContext';
import { ErrorMessage, Loading } from '../components/common';
import { Narrative } from '../components/Narrative';
import { formatDate, humanName, capitalise } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { resourceTitle, summaryValue } from '../lib/resources';
import './own.css';

export const OPTIONAL_SECTIONS: { key: string; label: string }[] = [
  { key: 'immunizations', label: 'Immunizations' },
  { key: 'results', label: 'Results' },
  { key: 'vitals', label: 'Vital signs' },
  { key: 'procedures', label: 'Procedures' },
  { key: 'past_illness', label: 'Past illness' },
  { key: 'implants', label: 'Devices and implants' },
  { key: 'care_plans', label: 'Care plans' },
];

const DEFAULT_SECTIONS = ['immunizations', 'results', 'vitals', 'procedures'];

export function PrintSummary() {
  const { profile, profiles } = useApp();
  useTitle('Summary for a doctor');
  const person = profile ?? (profiles?.length === 1 ? profiles[0].id : undefined);
  const [sections, setSections] = useState<string[]>(DEFAULT_SECTIONS);
  const [since, setSince] = useState('');
  const [until, setUntil] = useState('');
  const [visits, setVisits] = useState(true);
  const [saveError, setSaveError] = useState<unknown>(null);
  const choice: IpsChoice | null = person === undefined ? null : { profile: person, sections, since: since || undefined, until: until || undefined };
  const st = useAsync(
    async (signal) => {
      if (!choice) return null;
      const [doc, summary] = await Promise.all([getIps(choice, signal), getSummary({ profile: choice.profile }, signal)]);
      return { doc, summary };
    },
    [person, sections.join(','), since, until],
  );

  const parts = useMemo(() => {
    const doc = st.data?.doc;
    if (!doc) return null;
    const comp = doc.entry[0]?.resource as unknown as { section?: IpsSection[]; title?: string; subject?: { reference?: string } };
    const patient = doc.entry.find((e) => e.fullUrl === comp.subject?.reference)?.resource as unknown as Patient | undefined;
    return { sections: comp.section ?? [], patient, stamp: doc.timestamp };
  }, [st.data]);

  if (person === undefined) {
    return (
      <div className="page">
        <h1>Summary for a doctor</h1>
        <p>Choose a person at the top: a summary is about one person.</p>
      </div>
    );
  }
  const toggle = (k: string) => setSections((old) => (old.includes(k) ? old.filter((x) => x !== k) : [...old, k]));
  const saveFhir = async () => {
    setSaveError(null);
    try {
      const doc = await getIps(choice!);
      const text = JSON.stringify(doc, null, 2);
      const filename = `patient-summary-${new Date().toISOString().slice(0, 10)}.json`;
      // The desktop window saves through the system's dialog (a webview cannot save a Blob).
      const shell = (globalThis as unknown as { go?: { app?: { Shell?: { SaveDocument?: (n: string, c: string) => Promise<string> } } } }).go?.app?.Shell;
      if (shell?.SaveDocument) await shell.SaveDocument(filename, text);
      else saveBlob({ blob: new Blob([text], { type: 'application/fhir+json' }), filename });
    } catch (e) {
      setSaveError(e);
    }
  };
  const encounters = (st.data?.summary.encounters ?? []).slice(0, 8);
  return (
    <div className="page print-summary">
      <section className="card no-print summary-options" aria-labelledby="summary-opts">
        <h1 id="summary-opts">Summary for a doctor</h1>
        <p className="muted">
          Current problems, medications and allergies are always in. Choose what else goes in, and from which dates (empty: the
          last three years of each section; every vaccine's latest dose).
        </p>
        <fieldset className="summary-sections">
          <legend>Also include</legend>
          {OPTIONAL_SECTIONS.map((s) => (
            <label key={s.key} className="check">
              <input type="checkbox" checked={sections.includes(s.key)} onChange={() => toggle(s.key)} data-testid={`section-${s.key}`} />
              {s.label}
            </label>
          ))}
          <label className="check">
            <input type="checkbox" checked={visits} onChange={() => setVisits(!visits)} />
            Recent visits (on paper only)
          </label>
        </fieldset>
        <div className="own-row">
          <label className="field">
            <span>From</span>
            <input type="date" value={since} onChange={(e) => setSince(e.target.value)} data-testid="summary-since" />
          </label>
          <label className="field">
            <span>Until</span>
            <input type="date" value={until} onChange={(e) => setUntil(e.target.value)} data-testid="summary-until" />
          </label>
        </div>
        <div className="summary-buttons">
          <button type="button" className="btn btn-primary" onClick={() => window.print()} disabled={!parts} data-testid="summary-print">
            Print or save as PDF
          </button>
          <button type="button" className="btn" onClick={saveFhir} disabled={!parts} data-testid="summary-fhir">
            Save as FHIR (International Patient Summary)
          </button>
        </div>
        {saveError ? <ErrorMessage error={saveError} /> : null}
      </section>
      {st.error ? (
        <ErrorMessage error={st.error} onRetry={st.reload} />
      ) : !parts ? (
        <Loading label="Putting the summary together…" />
      ) : (
        <article className="summary-paper" data-testid="summary-paper" aria-label="Patient summary">
          <header className="summary-head">
            <div>
              <h2 className="summary-name" data-testid="summary-name">
                {humanName(parts.patient?.name) || profiles?.find((p) => p.id === person)?.name}
              </h2>
              <p className="summary-facts">
                {parts.patient?.birthDate && <span>Born {formatDate(parts.patient.birthDate)}</span>}
                {parts.patient?.gender && <span>{capitalise(parts.patient.gender)}</span>}
              </p>
            </div>
            <p className="summary-stamp">
              Patient summary
              <br />
              made {formatDate(parts.stamp)}
              {since || until ? (
                <>
                  <br />
                  {since ? `from ${formatDate(since)} ` : ''}
                  {until ? `until ${formatDate(until)}` : ''}
                </>
              ) : null}
            </p>
          </header>
          {parts.sections.map((s) => (
            <section key={s.code.coding[0]?.code} className="summary-section" data-section={s.code.coding[0]?.code}>
              <h3>{s.title}</h3>
              {s.entry?.length ? <Narrative div={s.text?.div ?? ''} /> : <p className="muted">{s.emptyReason?.text ?? 'Nothing recorded.'}</p>}
            </section>
          ))}
          {visits && (
            <section className="summary-section" data-section="visits">
              <h3>Recent visits</h3>
              {encounters.length === 0 ? (
                <p className="muted">No visits recorded.</p>
              ) : (
                <table>
                  <thead>
                    <tr>
                      <th>Visit</th>
                      <th>Details</th>
                      <th>Date</th>
                    </tr>
                  </thead>
                  <tbody>
                    {encounters.map((e) => (
                      <tr key={e.type + e.id + e.source_id}>
                        <td>{resourceTitle(e)}</td>
                        <td>{summaryValue(e)}</td>
                        <td className="nowrap">{formatDate(e.date)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </section>
          )}
          <footer className="summary-foot">
            Made by the patient with Fasten from their own health records. Items marked “entered by the patient” were recorded by the patient, not by a clinician.
          </footer>
        </article>
      )}
    </div>
  );
}
