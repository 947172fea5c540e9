// #/entries: what the person recorded themselves, newest first, with "Add" and "Change".
import { useState } from 'react';
import { getTimeline } from '../api/client';
import type { ResourceItem } from '../api/types';
import { useApp } from '../AppContext';
import { ErrorMessage, Loading, ResourceLink, TypeBadge } from '../components/common';
import { formatDate } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { resourceTitle, summaryValue } from '../lib/resources';
import { OwnEntryDialog, type EditTarget } from './OwnEntryForm';
import { fromResource } from './entries';
import './own.css';

export function OwnEntries() {
  const { profile, profiles, sources } = useApp();
  useTitle('Your own entries');
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<EditTarget | null>(null);
  const own = (sources ?? []).filter((s) => s.self && (profile === undefined || s.profile_id === profile));
  const st = useAsync(
    async (signal) => {
      const pages = await Promise.all(own.map((s) => getTimeline({ source: s.id, limit: 200 }, signal)));
      return pages.flatMap((p) => p.items).filter((it) => it.type !== 'Patient');
    },
    [own.map((s) => `${s.id}:${s.resource_count}`).join(',')],
  );
  const person = profiles?.find((p) => p.id === profile);
  const canAdd = profile !== undefined || (profiles?.length ?? 0) === 1;
  const target = profile ?? profiles?.[0]?.id;
  return (
    <div className="page own-entries">
      <div className="page-head">
        <h1>Your own entries{person ? `: ${person.name}` : ''}</h1>
        {canAdd ? (
          <button type="button" className="btn btn-primary" onClick={() => setAdding(true)} data-testid="own-add">
            Add an entry
          </button>
        ) : (
          <p className="muted">Choose a person at the top to add an entry.</p>
        )}
      </div>
      <p className="muted">
        Measurements, conditions, medications, allergies, immunizations and notes you record yourself. They appear in your
        records, charts and summaries like the rest, marked “Entered by you”. Records from files or providers cannot be changed.
      </p>
      {st.error ? (
        <ErrorMessage error={st.error} onRetry={st.reload} />
      ) : !st.data ? (
        <Loading />
      ) : st.data.length === 0 ? (
        <p data-testid="own-empty">Nothing entered yet.</p>
      ) : (
        <table className="compact own-table" data-testid="own-list">
          <thead>
            <tr>
              <th scope="col">What</th>
              <th scope="col">Value</th>
              <th scope="col">Date</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {st.data.map((it: ResourceItem) => (
              <tr key={it.type + it.id}>
                <td>
                  <TypeBadge type={it.type} /> <ResourceLink item={it}>{resourceTitle(it)}</ResourceLink>
                </td>
                <td className="nowrap">{summaryValue(it)}</td>
                <td className="nowrap">{formatDate(it.date)}</td>
                <td>
                  {fromResource(it.resource) && (
                    <button type="button" className="btn btn-small" onClick={() => setEditing({ type: it.type, id: it.id, resource: it.resource })}>
                      Change
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {adding && target !== undefined && <OwnEntryDialog profile={target} onClose={() => setAdding(false)} onSaved={() => st.reload()} />}
      {editing && <OwnEntryDialog edit={editing} onClose={() => setEditing(null)} onSaved={() => st.reload()} />}
    </div>
  );
}
