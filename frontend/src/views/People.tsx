// People: the household overview and managing people (#/people), and one person (#/people/ID):
// edit, re-assign their sources and patients, merge someone into them (with undo), delete.
import { useState, type FormEvent } from 'react';
import {
  confirmMerge,
  createPerson,
  deletePerson,
  getPerson,
  getUnlinked,
  mergePeople,
  pendingMerges,
  planDeletePerson,
  reassignPatient,
  reassignSource,
  undoMerge,
  updatePerson,
  type DeletePlan,
  type Merge,
  type PatientLink,
  type Person,
} from '../api/people';
import type { Profile } from '../api/types';
import { useApp } from '../AppContext';
import { ErrorMessage, Loading, Modal, Section } from '../components/common';
import { Household } from '../components/Household';
import { PersonAvatar, personAge } from '../components/PersonSwitcher';
import { formatCount, formatDate } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { orderedTypes, countLabel } from '../lib/resources';
import { href, navigate, type Route } from '../lib/router';
import '../components/people.css';

export function People({ route }: { route: Route }) {
  const id = Number(route.segments[1]);
  if (route.segments[1] && Number.isInteger(id) && id > 0) return <PersonPage key={id} id={id} />;
  return <PeopleIndex />;
}

function PeopleIndex() {
  useTitle('People');
  const [message, setMessage] = useState('');
  return (
    <div className="page people">
      <h1>People</h1>
      <p className="muted">
        Everyone whose records Fasten keeps. Records are matched to a person by the patient's identifiers, or by name and birth
        date; move a source or a patient if Fasten got it wrong.
      </p>
      {message && (
        <p className="notice notice-ok" role="status">
          {message}
        </p>
      )}
      <MergeBar onMessage={setMessage} />
      <Household heading="Household" manage />
      <Unassigned onMessage={setMessage} />
      <AddPerson onMessage={setMessage} />
    </div>
  );
}

/** Merges that can still be undone. */
function MergeBar({ onMessage }: { onMessage: (m: string) => void }) {
  const { refreshSources } = useApp();
  const st = useAsync((signal) => pendingMerges(signal), []);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  if (!st.data || st.data.length === 0) return error ? <ErrorMessage error={error} /> : null;
  const act = async (m: Merge, undo: boolean) => {
    setBusy(true);
    setError(undefined);
    try {
      if (undo) {
        await undoMerge(m.id);
        onMessage(`Undone: ${m.from_name} is a separate person again.`);
      } else {
        await confirmMerge(m.id);
        onMessage(`${m.from_name} is now part of ${m.into_name} for good.`);
      }
      refreshSources();
      st.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      {error ? <ErrorMessage error={error} /> : null}
      {st.data.map((m) => (
        <div key={m.id} className="notice notice-warn merge-bar" role="status" data-testid="merge-bar">
          <p>
            <strong>{m.from_name}</strong> was merged into <strong>{m.into_name}</strong> ({formatCount(m.moved)} records moved). You can
            undo this until you keep it, or until the next merge, deletion or move.
          </p>
          <div className="merge-bar-actions">
            <button type="button" className="btn btn-small" disabled={busy} onClick={() => void act(m, true)}>
              Undo merge
            </button>
            <button type="button" className="btn btn-small btn-primary" disabled={busy} onClick={() => void act(m, false)}>
              Keep merged
            </button>
          </div>
        </div>
      ))}
    </>
  );
}

/** A select of people, with "not linked" as an option when allowed. */
function PersonSelect({
  label,
  value,
  onChange,
  exclude,
  allowNone,
  disabled,
}: {
  label: string;
  value: number | null | undefined;
  onChange: (id: number | null) => void;
  exclude?: number;
  allowNone?: boolean;
  disabled?: boolean;
}) {
  const { profiles } = useApp();
  return (
    <select
      aria-label={label}
      value={value === undefined ? '' : value === null ? 'none' : String(value)}
      disabled={disabled}
      onChange={(e) => {
        const v = e.target.value;
        if (v === '') return;
        onChange(v === 'none' ? null : Number(v));
      }}
    >
      <option value="">Choose…</option>
      {(profiles ?? [])
        .filter((p) => p.id !== exclude)
        .map((p) => (
          <option key={p.id} value={p.id}>
            {p.name}
          </option>
        ))}
      {allowNone && <option value="none">Not linked to a person</option>}
    </select>
  );
}

/** Patients of sources that belong to nobody, with a way to assign them. */
function Unassigned({ onMessage }: { onMessage: (m: string) => void }) {
  const { refreshSources } = useApp();
  const st = useAsync((signal) => getUnlinked(signal), []);
  const [error, setError] = useState<unknown>();
  const patients = st.data?.patients ?? [];
  if (patients.length === 0) return null;
  const assign = async (l: PatientLink, id: number | null) => {
    setError(undefined);
    try {
      const r = await reassignPatient(l.source_id, l.patient_id, id);
      onMessage(`Moved ${formatCount(r.moved)} records of ${l.name ?? l.patient_ref}.`);
      refreshSources();
      st.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Section title="Patients not linked to a person">
      <p className="muted small">
        Records in these sources name a patient whose details Fasten has not seen (for example a file of lab results without the
        patient). Import the patient's file, or choose who they are.
      </p>
      {error ? <ErrorMessage error={error} /> : null}
      <PatientTable links={patients} onAssign={assign} allowNone={false} />
    </Section>
  );
}

function PatientTable({
  links,
  onAssign,
  exclude,
  allowNone,
}: {
  links: PatientLink[];
  onAssign: (l: PatientLink, id: number | null) => void;
  exclude?: number;
  allowNone: boolean;
}) {
  return (
    <div className="table-wrap">
      <table className="data">
        <thead>
          <tr>
            <th scope="col">Patient</th>
            <th scope="col">Source</th>
            <th scope="col" className="num">
              Records
            </th>
            <th scope="col">Move to</th>
          </tr>
        </thead>
        <tbody>
          {links.map((l) => (
            <tr key={l.source_id + l.patient_ref} data-patient={l.patient_ref}>
              <td>
                {l.name ?? <span className="muted">{l.patient_ref}</span>}
                {l.birth_date && <div className="small muted">Born {formatDate(l.birth_date)}</div>}
              </td>
              <td>{l.source_name}</td>
              <td className="num">{formatCount(l.resource_count)}</td>
              <td>
                <PersonSelect label={`Move ${l.name ?? l.patient_ref} from ${l.source_name} to`} value={undefined} exclude={exclude} allowNone={allowNone} onChange={(id) => onAssign(l, id)} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function AddPerson({ onMessage }: { onMessage: (m: string) => void }) {
  const { refreshSources } = useApp();
  const [name, setName] = useState('');
  const [birth, setBirth] = useState('');
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const p = await createPerson({ name, birth_date: birth || undefined });
      onMessage(`Added ${p.name}. Their records join them when you import or connect them.`);
      setName('');
      setBirth('');
      refreshSources();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Section title="Add a person">
      <p className="muted small">For example a child, before their records arrive: records with the same name and birth date join them.</p>
      {error ? <ErrorMessage error={error} /> : null}
      <form className="person-form" onSubmit={(e) => void submit(e)}>
        <label className="field">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} autoComplete="off" />
        </label>
        <label className="field">
          <span>Birth date</span>
          <input type="date" value={birth} onChange={(e) => setBirth(e.target.value)} />
        </label>
        <button type="submit" className="btn btn-primary">
          Add person
        </button>
      </form>
    </Section>
  );
}

function PersonPage({ id }: { id: number }) {
  const { refreshSources, setProfile, profile } = useApp();
  const [deleting, setDeleting] = useState(false);
  // Not live while the delete dialog is open: the deletion's own events would otherwise refetch a
  // person who is gone (a 404) before the route has moved on.
  const st = useAsync((signal) => getPerson(id, signal), [id], !deleting);
  useTitle(st.data ? st.data.name : 'Person');
  const [message, setMessage] = useState('');
  const [error, setError] = useState<unknown>();
  if (st.error && !st.data)
    return (
      <div className="page">
        <p className="crumbs">
          <a href={href('/people')}>People</a>
        </p>
        <ErrorMessage error={st.error} onRetry={st.reload} />
      </div>
    );
  if (!st.data)
    return (
      <div className="page">
        <Loading />
      </div>
    );
  const p = st.data;
  const done = (msg: string) => {
    setMessage(msg);
    setError(undefined);
    refreshSources();
    st.reload();
  };
  const run = async (fn: () => Promise<string>) => {
    setError(undefined);
    try {
      done(await fn());
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div className="page person-page">
      <p className="crumbs">
        <a href={href('/people')}>People</a>
      </p>
      <div className="person-head">
        <PersonAvatar person={p} size="lg" />
        <div>
          <h1>{p.name}</h1>
          <p className="muted">
            {p.birth_date ? `Born ${formatDate(p.birth_date)}` : 'Birth date unknown'} ·{' '}
            {p.deceased && (
              <>
                <span className="person-deceased" data-testid="person-deceased">
                  {personAge(p)}
                </span>{' '}
                ·{' '}
              </>
            )}
            {formatCount(p.resource_count)} records in{' '}
            {formatCount(p.source_count)} {p.source_count === 1 ? 'source' : 'sources'}
          </p>
        </div>
        <button
          type="button"
          className="btn btn-primary"
          onClick={() => {
            setProfile(p.id);
            navigate('/');
          }}
        >
          Open {p.name}'s dashboard
        </button>
      </div>
      {message && (
        <p className="notice notice-ok" role="status">
          {message}
        </p>
      )}
      {error ? <ErrorMessage error={error} /> : null}
      <MergeBar onMessage={setMessage} />
      <EditPerson key={`${p.id}-${p.updated_at}`} person={p} onDone={done} />
      <Section title="Records">
        {p.counts && Object.keys(p.counts).length > 0 ? (
          <ul className="household-counts">
            {orderedTypes(p.counts).map((t) => (
              <li key={t}>
                <span className="household-count">{formatCount(p.counts![t])}</span> {countLabel(t, p.counts![t])}
              </li>
            ))}
          </ul>
        ) : (
          <p className="muted">No records yet.</p>
        )}
      </Section>
      <Section title="Sources">
        {(p.sources ?? []).length === 0 ? (
          <p className="muted">No source holds {p.name}'s records.</p>
        ) : (
          <div className="table-wrap">
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">Source</th>
                  <th scope="col" className="num">
                    {p.name}'s records
                  </th>
                  <th scope="col">Move the whole source to</th>
                </tr>
              </thead>
              <tbody>
                {(p.sources ?? []).map((s) => (
                  <tr key={s.id} data-source-id={s.id}>
                    <td>
                      <a href={href('/timeline', { source: s.id })}>{s.name}</a>
                      <div className="small muted">
                        {s.kind === 'provider' ? 'Provider' : 'Imported file'}
                        {s.shared ? ' · also holds other people' : ''}
                      </div>
                    </td>
                    <td className="num">{formatCount(s.resource_count)}</td>
                    <td>
                      <PersonSelect
                        label={`Move ${s.name} to`}
                        value={undefined}
                        exclude={p.id}
                        allowNone
                        onChange={(to) =>
                          void run(async () => {
                            const r = await reassignSource(s.id, to);
                            return `Moved ${s.name} (${formatCount(r.moved)} records).`;
                          })
                        }
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Section>
      {(p.patients ?? []).length > 0 && (
        <Section title="Patients">
          <p className="muted small">The patient records each source holds for {p.name}. Move one if it is someone else.</p>
          <PatientTable
            links={p.patients ?? []}
            exclude={p.id}
            allowNone
            onAssign={(l, to) =>
              void run(async () => {
                const r = await reassignPatient(l.source_id, l.patient_id, to);
                return `Moved ${formatCount(r.moved)} records of ${l.name ?? l.patient_ref} from ${l.source_name}.`;
              })
            }
          />
        </Section>
      )}
      <MergeInto person={p} onDone={done} />
      <Section title={`Delete ${p.name}`}>
        <p className="muted small">Removes {p.name} and their records. Fasten shows exactly what goes before anything is deleted.</p>
        <button type="button" className="btn btn-danger" onClick={() => setDeleting(true)}>
          Delete {p.name}…
        </button>
      </Section>
      {deleting && (
        <DeletePersonDialog
          person={p}
          onClose={() => setDeleting(false)}
          onDeleted={(plan) => {
            // The dialog stays until the route changes and this page unmounts.
            if (profile === p.id) setProfile(undefined);
            refreshSources();
            navigate('/people');
            void plan;
          }}
        />
      )}
    </div>
  );
}

function EditPerson({ person, onDone }: { person: Person; onDone: (msg: string) => void }) {
  const [name, setName] = useState(person.name);
  const [birth, setBirth] = useState(person.birth_date ?? '');
  const [gender, setGender] = useState(person.gender ?? '');
  const [color, setColor] = useState(person.color);
  const [initials, setInitials] = useState(person.initials);
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const p = await updatePerson(person.id, { name, birth_date: birth, gender, color, initials });
      onDone(`Saved ${p.name}.`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Section title="Details">
      {error ? <ErrorMessage error={error} /> : null}
      <form className="person-form" onSubmit={(e) => void submit(e)}>
        <label className="field">
          <span>Name</span>
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
        </label>
        <label className="field">
          <span>Birth date</span>
          <input value={birth} onChange={(e) => setBirth(e.target.value)} placeholder="YYYY-MM-DD" pattern="\d{4}(-\d{2}(-\d{2})?)?" />
        </label>
        <label className="field">
          <span>Gender</span>
          <select value={gender} onChange={(e) => setGender(e.target.value)}>
            <option value="">Not given</option>
            <option value="female">Female</option>
            <option value="male">Male</option>
            <option value="other">Other</option>
            <option value="unknown">Unknown</option>
          </select>
        </label>
        <label className="field">
          <span>Colour</span>
          <input type="color" value={color} onChange={(e) => setColor(e.target.value)} />
        </label>
        <label className="field">
          <span>Initials</span>
          <input value={initials} onChange={(e) => setInitials(e.target.value)} maxLength={3} size={4} />
        </label>
        <button type="submit" className="btn btn-primary">
          Save
        </button>
      </form>
    </Section>
  );
}

function MergeInto({ person, onDone }: { person: Person; onDone: (msg: string) => void }) {
  const { profiles } = useApp();
  const [from, setFrom] = useState<number | null>(null);
  const [error, setError] = useState<unknown>();
  const others = (profiles ?? []).filter((p) => p.id !== person.id);
  if (others.length === 0) return null;
  const other: Profile | undefined = others.find((p) => p.id === from);
  const merge = async () => {
    if (!from) return;
    setError(undefined);
    try {
      const m = await mergePeople(person.id, from);
      setFrom(null);
      onDone(`Merged ${m.from_name} into ${m.into_name}: ${formatCount(m.moved)} records moved.`);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Section title={`Merge someone into ${person.name}`}>
      <p className="muted small">
        When two people here are the same person (for example the same child from two hospitals). Their sources and records join{' '}
        {person.name}; you can undo it until you keep it.
      </p>
      {error ? <ErrorMessage error={error} /> : null}
      <div className="person-form">
        <PersonSelect label={`Person to merge into ${person.name}`} value={from ?? undefined} exclude={person.id} onChange={(id) => setFrom(id)} />
        <button type="button" className="btn" disabled={!other} onClick={() => void merge()}>
          {other ? `Merge ${other.name} into ${person.name}` : 'Merge'}
        </button>
      </div>
    </Section>
  );
}

function DeletePersonDialog({ person, onClose, onDeleted }: { person: Person; onClose: () => void; onDeleted: (p: DeletePlan) => void }) {
  const plan = useAsync((signal) => planDeletePerson(person.id, signal), [person.id], false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const go = async () => {
    setBusy(true);
    setError(undefined);
    try {
      onDeleted(await deletePerson(person.id));
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  const p = plan.data;
  return (
    <Modal
      title={`Delete ${person.name}?`}
      onClose={onClose}
      actions={
        <>
          <button type="button" className="btn" onClick={onClose} data-autofocus>
            Keep {person.name}
          </button>
          <button type="button" className="btn btn-danger" disabled={!p || busy} onClick={() => void go()}>
            {p ? `Delete ${person.name} and ${formatCount(p.resource_count)} records` : 'Delete'}
          </button>
        </>
      }
    >
      {error ? <ErrorMessage error={error} /> : null}
      {plan.error ? <ErrorMessage error={plan.error} /> : null}
      {!p ? (
        <Loading label="Working out what goes…" />
      ) : (
        <div data-testid="delete-plan">
          <p>
            Deleting {person.name} removes <strong>{formatCount(p.resource_count)} records</strong>, in one step that cannot be undone:
          </p>
          {p.resource_count > 0 && (
            <ul className="delete-counts">
              {orderedTypes(p.counts).map((t) => (
                <li key={t}>
                  {formatCount(p.counts[t])} {countLabel(t, p.counts[t])}
                </li>
              ))}
            </ul>
          )}
          {p.sources_deleted.length > 0 && (
            <>
              <p>These sources held only {person.name}'s records and go completely (a provider is disconnected):</p>
              <ul>
                {p.sources_deleted.map((s) => (
                  <li key={s.id}>
                    {s.name} ({formatCount(s.resource_count)} records)
                  </li>
                ))}
              </ul>
            </>
          )}
          {p.sources_kept.length > 0 && (
            <>
              <p>These sources also hold other people's records. They stay; only {person.name}'s records leave them:</p>
              <ul>
                {p.sources_kept.map((s) => (
                  <li key={s.id}>
                    {s.name} ({formatCount(s.resource_count)} of {person.name}'s records)
                  </li>
                ))}
              </ul>
            </>
          )}
          <p className="muted small">Importing the same files again would bring {person.name} back.</p>
        </div>
      )}
    </Modal>
  );
}
