// Add or change something the person records themselves (a measurement, a condition, a
// medication they take, an allergy, an immunization, a note), in a modal dialog.
import { useId, useState, type FormEvent } from 'react';
import { ApiError } from '../api/client';
import { createOwnEntry, deleteOwnEntry, updateOwnEntry, type OwnEntryResult } from '../api/own';
import { useApp } from '../AppContext';
import { Modal } from '../components/common';
import { KINDS, checkValues, emptyValues, fromResource, kindOf, nowLocal, toResource, type EntryValues, type KindKey } from './entries';

export interface EditTarget {
  type: string;
  id: string;
  resource: unknown;
}

/** The person's message for a refused entry: the server names the field in an OperationOutcome. */
function message(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  return e instanceof Error ? e.message : String(e);
}

export function OwnEntryDialog({
  profile,
  edit,
  initialKind = 'weight',
  onClose,
  onSaved,
}: {
  profile?: number;
  edit?: EditTarget;
  initialKind?: KindKey;
  onClose: () => void;
  onSaved?: (r: OwnEntryResult | null) => void;
}) {
  const { hub } = useApp();
  const start = edit ? fromResource(edit.resource) : null;
  const [v, setV] = useState<EntryValues>(start ?? emptyValues(initialKind, nowLocal()));
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const fid = useId();
  const kind = kindOf(v.kind);
  const set = (patch: Partial<EntryValues>) => setV((old) => ({ ...old, ...patch }));

  const done = (r: OwnEntryResult | null) => {
    hub.emit({ type: 'resources.changed', data: { via: 'own', source_id: r?.source_id } });
    onSaved?.(r);
    onClose();
  };

  const submit = async (e?: FormEvent) => {
    e?.preventDefault();
    const problem = checkValues(v);
    if (problem) {
      setError(problem);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const res = toResource(v);
      const r = edit ? await updateOwnEntry(edit.type, edit.id, res) : await createOwnEntry(profile!, res);
      done(r);
    } catch (err) {
      setError(message(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!edit) return;
    setBusy(true);
    try {
      await deleteOwnEntry(edit.type, edit.id);
      done(null);
    } catch (err) {
      setError(message(err));
      setBusy(false);
    }
  };

  const measurement = !!kind.loinc;
  const needsDay = v.kind === 'condition' || v.kind === 'allergy' || v.kind === 'medication';
  return (
    <Modal
      title={edit ? `Change: ${kind.label.toLowerCase()}` : 'Add your own entry'}
      onClose={onClose}
      actions={
        <>
          {edit &&
            (confirmDelete ? (
              <button type="button" className="btn btn-danger" onClick={remove} disabled={busy} data-testid="own-delete-confirm">
                Yes, delete it
              </button>
            ) : (
              <button type="button" className="btn btn-danger" onClick={() => setConfirmDelete(true)} disabled={busy} data-testid="own-delete">
                Delete
              </button>
            ))}
          <button type="button" className="btn" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          <button type="submit" form={fid} className="btn btn-primary" disabled={busy} data-testid="own-save">
            {busy ? 'Saving…' : 'Save'}
          </button>
        </>
      }
    >
      <form id={fid} onSubmit={submit} className="own-form" noValidate>
        {!edit && (
          <label className="field">
            <span>What</span>
            <select
              value={v.kind}
              onChange={(e) => setV({ ...emptyValues(e.target.value as KindKey, v.date || nowLocal()) })}
              data-testid="own-kind"
              data-autofocus
            >
              {KINDS.map((k) => (
                <option key={k.key} value={k.key}>
                  {k.label}
                </option>
              ))}
            </select>
          </label>
        )}
        {measurement ? (
          <div className="own-row">
            <label className="field">
              <span>{v.kind === 'blood-pressure' ? 'Systolic (upper)' : 'Value'}</span>
              <input inputMode="decimal" value={v.value} onChange={(e) => set({ value: e.target.value })} data-testid="own-value" required />
            </label>
            {v.kind === 'blood-pressure' && (
              <label className="field">
                <span>Diastolic (lower)</span>
                <input inputMode="decimal" value={v.value2} onChange={(e) => set({ value2: e.target.value })} data-testid="own-value2" required />
              </label>
            )}
            <label className="field">
              <span>Unit</span>
              <select value={v.unit} onChange={(e) => set({ unit: e.target.value })} data-testid="own-unit" disabled={(kind.units?.length ?? 0) < 2}>
                {kind.units?.map((u) => (
                  <option key={u.code} value={u.code}>
                    {u.label}
                  </option>
                ))}
              </select>
            </label>
          </div>
        ) : v.kind === 'note' ? (
          <label className="field">
            <span>Note</span>
            <textarea rows={5} value={v.text} onChange={(e) => set({ text: e.target.value })} data-testid="own-text" />
          </label>
        ) : (
          <label className="field">
            <span>{v.kind === 'medication' ? 'Medication' : v.kind === 'allergy' ? 'Allergic to' : v.kind === 'immunization' ? 'Vaccine' : 'Condition'}</span>
            <input value={v.text} onChange={(e) => set({ text: e.target.value })} data-testid="own-text" />
          </label>
        )}
        {v.kind === 'medication' && (
          <>
            <label className="field">
              <span>Dose and how often (optional)</span>
              <input value={v.detail} onChange={(e) => set({ detail: e.target.value })} placeholder="e.g. 10 mg every morning" />
            </label>
            <label className="field">
              <span>Status</span>
              <select value={v.status} onChange={(e) => set({ status: e.target.value })}>
                <option value="active">I take it now</option>
                <option value="completed">I took it before</option>
              </select>
            </label>
          </>
        )}
        {v.kind === 'allergy' && (
          <>
            <label className="field">
              <span>Reaction (optional)</span>
              <input value={v.detail} onChange={(e) => set({ detail: e.target.value })} placeholder="e.g. hives" />
            </label>
            <label className="field">
              <span>How serious</span>
              <select value={v.criticality} onChange={(e) => set({ criticality: e.target.value as EntryValues['criticality'] })}>
                <option value="">Not sure</option>
                <option value="low">Low</option>
                <option value="high">High</option>
              </select>
            </label>
          </>
        )}
        <label className="field">
          <span>{needsDay ? 'Since (optional)' : 'When'}</span>
          <input
            type={needsDay ? 'date' : 'datetime-local'}
            value={needsDay ? v.date.slice(0, 10) : v.date}
            max={needsDay ? nowLocal().slice(0, 10) : nowLocal()}
            onChange={(e) => set({ date: e.target.value })}
            data-testid="own-date"
          />
        </label>
        {error && (
          <p className="error-text" role="alert" data-testid="own-error">
            {error}
          </p>
        )}
      </form>
    </Modal>
  );
}
