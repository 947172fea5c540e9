import { Fragment, useEffect, useState, type FormEvent } from 'react';
import { deleteSource, disconnectSource, getSource, renameSource, saveExport } from '../api/client';
import type { Counts, Source, SourceDetail } from '../api/types';
import { useApp } from '../AppContext';
import { ErrorMessage, Loading, Modal } from '../components/common';
import { ConnectButton, ConnectDialog } from '../components/ConnectDialog';
import { SourcePerson } from '../components/SourcePerson';
import { HistoryToggle, SourceSyncStatus, SyncAllButton, SyncHistory, SyncNowButton, useSyncActivity } from '../components/SyncStatus';
import { formatCount, formatDateTime } from '../lib/format';
import { useTitle } from '../lib/hooks';
import { orderedTypes, countLabel } from '../lib/resources';
import { href } from '../lib/router';

const STATUS: Record<string, string> = {
  ok: 'Up to date',
  connected: 'Connected',
  reconnect_needed: 'Needs you to sign in again',
  error: 'Problem',
};

export function Sources() {
  useTitle('Sources');
  const { sources, refreshSources, hub, profile } = useApp();
  const [renaming, setRenaming] = useState<number | null>(null);
  const [deleting, setDeleting] = useState<Source | null>(null);
  const [disconnecting, setDisconnecting] = useState<Source | null>(null);
  const [reconnecting, setReconnecting] = useState<Source | null>(null);
  const [message, setMessage] = useState<string>('');
  const [error, setError] = useState<unknown>();
  const sync = useSyncActivity();
  const [history, setHistory] = useState<Record<number, boolean>>({});

  return (
    <div className="page sources">
      <div className="page-head">
        <h1>Sources</h1>
        <div className="page-head-actions">
          <SyncAllButton sources={sources} sync={sync} onMessage={setMessage} onError={setError} />
          <ExportButton label="Export everything" profile={profile} onError={setError} />
        </div>
      </div>
      <p className="muted">Where your records came from: files you imported, and providers you connected.</p>
      <div className="connect-row">
        <ConnectButton whyId="sources-connect-why" />
      </div>
      {message && (
        <p className="notice notice-ok" role="status">
          {message}
        </p>
      )}
      {error ? <ErrorMessage error={error} /> : null}
      {sources === null && <Loading />}
      {sources && sources.length === 0 && (
        <p>
          No sources yet. <a href={href('/import')}>Import a file</a> to get started.
        </p>
      )}
      {sources && sources.length > 0 && (
        <div className="table-wrap">
          <table className="data sources-table">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Kind</th>
                <th scope="col" className="num">Records</th>
                <th scope="col">Status</th>
                <th scope="col">Last updated</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {sources.map((s) => (
                <Fragment key={s.id}>
                <tr data-source-id={s.id}>
                  <td>
                    {renaming === s.id ? (
                      <RenameForm
                        source={s}
                        onDone={(msg) => {
                          setRenaming(null);
                          if (msg) setMessage(msg);
                          refreshSources();
                        }}
                      />
                    ) : (
                      <a href={href('/timeline', { source: s.id })} className="source-name">
                        {s.name}
                      </a>
                    )}
                    <SourcePerson source={s} />
                  </td>
                  <td data-label="Kind">{s.kind === 'manual' ? 'Imported file' : 'Provider'}</td>
                  <td className="num" data-label="Records">{formatCount(s.resource_count)}</td>
                  <td data-label="Status">
                    {s.kind === 'provider' ? (
                      <SourceSyncStatus source={s} activity={sync.activity[s.id]} />
                    ) : (
                      <>
                        {s.syncing ? 'Syncing…' : STATUS[s.status] ?? s.status}
                        {s.last_error && <div className="small error-text">{s.last_error}</div>}
                      </>
                    )}
                  </td>
                  <td className="nowrap" data-label="Last updated">
                    {formatDateTime(s.last_sync || s.updated_at || s.created_at)}
                  </td>
                  <td className="actions">
                    <button type="button" className="btn btn-small" onClick={() => setRenaming(s.id)} disabled={renaming === s.id} aria-label={`Rename ${s.name}`}>
                      Rename
                    </button>
                    <ExportButton label="Export" small source={s.id} ariaLabel={`Export ${s.name}`} onError={setError} />
                    {s.kind === 'provider' ? (
                      <>
                        <SyncNowButton source={s} running={!!sync.activity[s.id]?.running} sync={sync} onError={setError} />
                        <HistoryToggle source={s} open={!!history[s.id]} controls={`sync-history-${s.id}`} onToggle={() => setHistory((h) => ({ ...h, [s.id]: !h[s.id] }))} />
                        {(s.status === 'reconnect_needed' || s.status === 'error') && (
                          <button type="button" className="btn btn-small btn-primary" onClick={() => setReconnecting(s)} aria-label={`Sign in to ${s.name} again`}>
                            Sign in again
                          </button>
                        )}
                        <button type="button" className="btn btn-small btn-danger" onClick={() => setDisconnecting(s)} aria-label={`Disconnect ${s.name}`}>
                          Disconnect
                        </button>
                      </>
                    ) : (
                      <button type="button" className="btn btn-small btn-danger" onClick={() => setDeleting(s)} aria-label={`Delete ${s.name}`}>
                        Delete
                      </button>
                    )}
                  </td>
                </tr>
                {history[s.id] && s.kind === 'provider' && (
                  <tr className="sync-history-row">
                    <td colSpan={6}>
                      <SyncHistory source={s} id={`sync-history-${s.id}`} />
                    </td>
                  </tr>
                )}
                </Fragment>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {disconnecting && (
        <DisconnectDialog
          source={disconnecting}
          onClose={() => setDisconnecting(null)}
          onDone={(msg, deleted) => {
            const id = disconnecting.id;
            setDisconnecting(null);
            setMessage(msg);
            refreshSources();
            hub.emit({ type: deleted ? 'resources.changed' : 'source.status', data: { source_id: id } });
          }}
        />
      )}
      {reconnecting && (
        <ConnectDialog
          reconnect={reconnecting}
          onClose={() => {
            setReconnecting(null);
            refreshSources();
          }}
        />
      )}
      {deleting && (
        <DeleteDialog
          source={deleting}
          onClose={() => setDeleting(null)}
          onDeleted={(msg) => {
            setDeleting(null);
            setMessage(msg);
            refreshSources();
            hub.emit({ type: 'resources.changed', data: { deleted_source: deleting.id } });
          }}
        />
      )}
    </div>
  );
}

function RenameForm({ source, onDone }: { source: Source; onDone: (msg?: string) => void }) {
  const [name, setName] = useState(source.name);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const v = name.trim();
    if (!v) {
      setError('Please type a name.');
      return;
    }
    if (v === source.name) return onDone();
    setBusy(true);
    try {
      await renameSource(source.id, v);
      onDone(`Renamed to “${v}”.`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} className="rename-form" onKeyDown={(e) => e.key === 'Escape' && onDone()}>
      <label>
        <span className="visually-hidden">New name for {source.name}</span>
        <input value={name} onChange={(e) => setName(e.target.value)} maxLength={200} autoFocus />
      </label>
      <button type="submit" className="btn btn-small btn-primary" disabled={busy}>
        Save
      </button>
      <button type="button" className="btn btn-small" onClick={() => onDone()}>
        Cancel
      </button>
      {error ? <ErrorMessage error={error} /> : null}
    </form>
  );
}

function countsList(counts: Counts | undefined) {
  const types = orderedTypes(counts ?? {});
  if (!types.length) return null;
  return (
    <ul className="delete-counts">
      {types.map((t) => (
        <li key={t}>
          <span className="num">{formatCount(counts![t])}</span> {countLabel(t, counts![t])}
        </li>
      ))}
    </ul>
  );
}

function DeleteDialog({ source, onClose, onDeleted }: { source: Source; onClose: () => void; onDeleted: (msg: string) => void }) {
  const [detail, setDetail] = useState<SourceDetail | null>(null);
  const [loadError, setLoadError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let live = true;
    getSource(source.id).then(
      (d) => live && setDetail(d),
      (e) => live && setLoadError(e),
    );
    return () => {
      live = false;
    };
  }, [source.id]);
  const total = detail ? Object.values(detail.counts ?? {}).reduce((a, b) => a + b, 0) || detail.resource_count : source.resource_count;
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const res = await deleteSource(source.id);
      const n = res?.deleted ?? total;
      onDeleted(`Deleted “${source.name}” and its ${formatCount(n)} records from this computer.`);
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={`Delete “${source.name}”?`}
      onClose={onClose}
      actions={
        <>
          <button type="button" className="btn" onClick={onClose} data-autofocus>
            Keep it
          </button>
          <button type="button" className="btn btn-danger" onClick={confirm} disabled={busy || !detail}>
            {busy ? 'Deleting…' : `Delete ${formatCount(total)} records`}
          </button>
        </>
      }
    >
      {loadError ? <ErrorMessage error={loadError} /> : null}
      {!detail && !loadError && <Loading label="Counting what would be deleted…" />}
      {detail && (
        <>
          <p>
            Deleting it removes <strong>{formatCount(total)} records</strong> from this computer:
          </p>
          {countsList(detail.counts)}
          <p>
            This cannot be undone in Fasten.{' '}
            {source.kind === 'manual'
              ? 'The file you imported is not touched: you can import it again later to get these records back.'
              : 'You can connect the provider again later to download them again.'}{' '}
            Records from your other sources stay as they are.
          </p>
        </>
      )}
      {error ? <ErrorMessage error={error} /> : null}
    </Modal>
  );
}

export function ExportButton({
  label,
  source,
  profile,
  small,
  ariaLabel,
  onError,
}: {
  label: string;
  source?: number;
  profile?: number;
  small?: boolean;
  ariaLabel?: string;
  onError: (e: unknown) => void;
}) {
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    onError(undefined);
    try {
      await saveExport({ source, profile });
    } catch (e) {
      onError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <button type="button" className={small ? 'btn btn-small' : 'btn'} onClick={run} disabled={busy} aria-label={ariaLabel}>
      {busy ? 'Preparing…' : label}
    </button>
  );
}

function DisconnectDialog({ source, onClose, onDone }: { source: Source; onClose: () => void; onDone: (msg: string, deleted: boolean) => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const n = source.resource_count;
  const run = async (deleteRecords: boolean) => {
    setBusy(true);
    setError(undefined);
    try {
      const res = await disconnectSource(source.id, deleteRecords);
      onDone(
        res.source_deleted
          ? `Disconnected “${source.name}” and deleted its ${formatCount(res.deleted)} records from this computer.`
          : `Disconnected “${source.name}”. Its ${formatCount(n)} records are kept; sign in again to get updates.`,
        res.source_deleted,
      );
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Modal
      title={`Disconnect “${source.name}”?`}
      onClose={onClose}
      actions={
        <>
          <button type="button" className="btn" onClick={onClose} data-autofocus>
            Stay connected
          </button>
          <button type="button" className="btn" onClick={() => void run(false)} disabled={busy}>
            Disconnect, keep records
          </button>
          <button type="button" className="btn btn-danger" onClick={() => void run(true)} disabled={busy}>
            {`Disconnect and delete ${formatCount(n)} records`}
          </button>
        </>
      }
    >
      <p>
        Fasten will forget its sign-in to {source.name} (the saved sign-in is deleted from this computer's keyring) and stop updating these
        records.
      </p>
      <p>
        What should happen to the <strong>{formatCount(n)} records</strong> already on this computer? If you keep them, you can sign in again
        later to resume updates.
      </p>
      {error ? <ErrorMessage error={error} /> : null}
    </Modal>
  );
}
