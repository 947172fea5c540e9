// Background sync in the Sources view: live progress from sync.* events, the status of a provider
// source in plain words, "Sync now" / "Sync all", and the per-source sync history.
import { useCallback, useEffect, useId, useMemo, useState, type ReactNode } from 'react';
import { getSyncRuns, syncAll, syncSource } from '../api/client';
import type { Source, SyncRun } from '../api/types';
import { useApp } from '../AppContext';
import type { AppEvent } from '../lib/events';
import { formatCount, formatDateTime } from '../lib/format';
import { typeInfo } from '../lib/resources';
import { ErrorMessage, Loading } from './common';

/** What this page knows about a source's sync from the live events. */
export interface SyncActivity {
  running: boolean;
  /** Asked for here, not started yet. */
  queued?: boolean;
  runId?: number;
  resources?: number;
  requests?: number;
  /** The resource type being read (sync.progress). */
  type?: string;
  /** The last sync that ended while this page was open. */
  finished?: { ok: boolean; added?: number; updated?: number; error?: string };
}

export type SyncActivityMap = Record<number, SyncActivity>;

interface SyncEventData {
  source_id?: number;
  run_id?: number;
  resources?: number;
  requests?: number;
  type?: string;
  added?: number;
  updated?: number;
  error?: string;
  via?: string;
}

/** Applies one event to the activity map (pure; unrelated events return `prev`). */
export function reduceSyncActivity(prev: SyncActivityMap, e: AppEvent): SyncActivityMap {
  const d = (e.data ?? {}) as SyncEventData;
  if (e.type === 'resources.changed' && d.via === 'reconnect') {
    // Events were missed while the stream was down: trust the sources list again.
    const next: SyncActivityMap = {};
    for (const [id, a] of Object.entries(prev)) next[Number(id)] = { ...a, running: false, queued: false };
    return next;
  }
  if (!e.type.startsWith('sync.') || typeof d.source_id !== 'number') return prev;
  const id = d.source_id;
  const cur = prev[id] ?? { running: false };
  switch (e.type) {
    case 'sync.started':
      return { ...prev, [id]: { running: true, runId: d.run_id, resources: 0, requests: 0, finished: cur.finished } };
    case 'sync.progress':
      if (!cur.running && d.run_id !== undefined && d.run_id === cur.runId) return prev; // a late progress of an ended run
      return {
        ...prev,
        [id]: { ...cur, running: true, queued: false, runId: d.run_id ?? cur.runId, resources: d.resources ?? cur.resources, requests: d.requests ?? cur.requests, type: d.type || cur.type },
      };
    case 'sync.done':
      return { ...prev, [id]: { running: false, runId: d.run_id, finished: { ok: true, added: d.added ?? 0, updated: d.updated ?? 0 } } };
    case 'sync.failed':
      return { ...prev, [id]: { running: false, runId: d.run_id, finished: { ok: false, error: d.error } } };
    default:
      return prev;
  }
}

/** How long a sync asked for here shows "Starting to sync…" without hearing from the backend. */
export const QUEUED_TIMEOUT_MS = 30_000;

export interface SyncActivityApi {
  activity: SyncActivityMap;
  /** Shows "Starting to sync…" for sources asked for here, before the POST is sent. */
  markQueued: (ids: number[]) => void;
  /** Takes that back (the request failed, or the backend did not queue the source). */
  unmarkQueued: (ids: number[]) => void;
}

/** Live sync activity per source id, from the sync.* events. */
export function useSyncActivity(): SyncActivityApi {
  const { hub } = useApp();
  const [activity, setActivity] = useState<SyncActivityMap>({});
  useEffect(() => hub.on((e) => setActivity((prev) => reduceSyncActivity(prev, e))), [hub]);
  const unmarkQueued = useCallback((ids: number[]) => {
    setActivity((prev) => {
      const next = { ...prev };
      for (const id of ids) if (next[id]?.queued) next[id] = { ...next[id], running: false, queued: false };
      return next;
    });
  }, []);
  const markQueued = useCallback(
    (ids: number[]) => {
      setActivity((prev) => {
        const next = { ...prev };
        for (const id of ids) if (!next[id]?.running) next[id] = { running: true, queued: true, resources: 0, requests: 0, finished: next[id]?.finished };
        return next;
      });
      // Without live events (the polling fallback) nothing would end it: give up after a while.
      setTimeout(() => unmarkQueued(ids), QUEUED_TIMEOUT_MS);
    },
    [unmarkQueued],
  );
  return { activity, markQueued, unmarkQueued };
}

export const WARNINGS_PREFIX = 'Synced with warnings';

/** The status of a provider source in plain words (with live progress while it syncs). */
export function SourceSyncStatus({ source, activity }: { source: Source; activity?: SyncActivity }) {
  const running = !!activity?.running || (source.syncing && activity?.finished === undefined);
  if (running) {
    const n = activity?.resources ?? 0;
    const r = activity?.requests ?? 0;
    return (
      <div className="sync-status" data-testid="sync-progress" role="status">
        <span className="sync-state">
          <span className="spinner" aria-hidden="true" /> {activity?.queued && !n ? 'Starting to sync…' : 'Syncing…'}
        </span>
        <div className="small muted">
          {formatCount(n)} record{n === 1 ? '' : 's'} received, {formatCount(r)} request{r === 1 ? '' : 's'}
          {activity?.type ? ` · reading ${typeInfo(activity.type).label.toLowerCase()}` : ''}
        </div>
      </div>
    );
  }
  const err = source.last_error ?? '';
  let state: string;
  let detail: ReactNode = null;
  switch (source.status) {
    case 'reconnect_needed':
      state = 'Needs you to sign in again';
      detail = <div className="small muted">Your records are kept. Sign in again to resume updates.</div>;
      break;
    case 'error':
      state = 'Sync failed';
      detail = err ? <div className="small error-text">{err}</div> : null;
      break;
    default:
      if (err.startsWith(WARNINGS_PREFIX)) {
        state = 'Synced with warnings';
        detail = <div className="small muted">{err.slice(WARNINGS_PREFIX.length).replace(/^[:\s]+/, '')}</div>;
      } else {
        state = 'Connected';
        detail = <div className="small muted">{source.last_sync ? `Synced ${formatDateTime(source.last_sync)}` : 'Not synced yet'}</div>;
      }
  }
  const f = activity?.finished;
  return (
    <div className="sync-status" data-testid="sync-status">
      <span className={`sync-state sync-${source.status}`}>{state}</span>
      {detail}
      {f?.ok && (
        <div className="small" role="status">
          Just synced: {formatCount(f.added ?? 0)} new, {formatCount(f.updated ?? 0)} updated.
        </div>
      )}
    </div>
  );
}

/** "Sync now" for one provider source. */
export function SyncNowButton({
  source,
  running,
  sync,
  onError,
}: {
  source: Source;
  running: boolean;
  sync: Pick<SyncActivityApi, 'markQueued' | 'unmarkQueued'>;
  onError: (e: unknown) => void;
}) {
  const [busy, setBusy] = useState(false);
  if (source.kind !== 'provider' || source.status === 'reconnect_needed') return null;
  const run = async () => {
    setBusy(true);
    onError(undefined);
    // Marked before asking: the sync's own events may arrive before the answer does.
    sync.markQueued([source.id]);
    try {
      await syncSource(source.id);
    } catch (e) {
      sync.unmarkQueued([source.id]);
      onError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <button type="button" className="btn btn-small" onClick={() => void run()} disabled={busy || running} aria-label={`Sync ${source.name} now`}>
      {running ? 'Syncing…' : 'Sync now'}
    </button>
  );
}

/** "Sync all": shown when there are provider sources. */
export function SyncAllButton({
  sources,
  sync,
  onMessage,
  onError,
}: {
  sources: Source[] | null;
  sync: Pick<SyncActivityApi, 'markQueued' | 'unmarkQueued'>;
  onMessage: (msg: string) => void;
  onError: (e: unknown) => void;
}) {
  const [busy, setBusy] = useState(false);
  const providers = (sources ?? []).filter((s) => s.kind === 'provider');
  if (!providers.length) return null;
  const run = async () => {
    setBusy(true);
    onError(undefined);
    onMessage('');
    const likely = providers.filter((s) => s.status !== 'reconnect_needed').map((s) => s.id);
    sync.markQueued(likely);
    try {
      const { source_ids } = await syncAll();
      sync.unmarkQueued(likely.filter((id) => !source_ids.includes(id)));
      const left = providers.length - source_ids.length;
      onMessage(
        source_ids.length === 0
          ? 'Nothing to sync: every provider needs you to sign in again.'
          : `Syncing ${source_ids.length} provider${source_ids.length === 1 ? '' : 's'}.` +
              (left > 0 ? ` ${left} need${left === 1 ? 's' : ''} you to sign in again first.` : ''),
      );
    } catch (e) {
      sync.unmarkQueued(likely);
      onError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <button type="button" className="btn" onClick={() => void run()} disabled={busy}>
      Sync all
    </button>
  );
}

/** The button that opens a source's sync history (the panel is SyncHistory, in the next row). */
export function HistoryToggle({ source, open, controls, onToggle }: { source: Source; open: boolean; controls: string; onToggle: () => void }) {
  if (source.kind !== 'provider') return null;
  return (
    <button type="button" className="btn btn-small" aria-expanded={open} aria-controls={controls} onClick={onToggle} aria-label={`Sync history of ${source.name}`}>
      History
    </button>
  );
}

const TRIGGER: Record<string, string> = {
  schedule: 'Scheduled',
  startup: 'At start-up',
  manual: 'You asked',
  connect: 'After connecting',
};

const RUN_STATUS: Record<string, string> = {
  running: 'Syncing…',
  ok: 'Synced',
  failed: 'Failed',
  cancelled: 'Stopped',
  interrupted: 'Interrupted',
};

/** A run's length in plain words ("4 s", "2 min 5 s"); "" while it runs. */
export function runDuration(run: Pick<SyncRun, 'started_at' | 'finished_at'>): string {
  if (!run.finished_at) return '';
  const ms = Date.parse(run.finished_at) - Date.parse(run.started_at);
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return 'under 1 s';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min${s % 60 ? ` ${s % 60} s` : ''}`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** A source's recent syncs (GET /sources/{id}/sync-runs), reloaded when a sync of it ends. */
export function SyncHistory({ source, id }: { source: Source; id?: string }) {
  const { hub } = useApp();
  const [runs, setRuns] = useState<SyncRun[] | null>(null);
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  const headingId = useId();
  useEffect(
    () =>
      hub.on((e) => {
        const d = e.data as SyncEventData | undefined;
        if ((e.type === 'sync.started' || e.type === 'sync.done' || e.type === 'sync.failed') && d?.source_id === source.id) setTick((t) => t + 1);
      }),
    [hub, source.id],
  );
  useEffect(() => {
    const ctrl = new AbortController();
    getSyncRuns(source.id, 20, ctrl.signal).then(
      (r) => {
        setRuns(r);
        setError(undefined);
      },
      (e) => !ctrl.signal.aborted && setError(e),
    );
    return () => ctrl.abort();
  }, [source.id, tick]);
  const rows = useMemo(() => runs ?? [], [runs]);
  return (
    <section className="sync-history" id={id} aria-labelledby={headingId} data-testid="sync-history">
      <h3 id={headingId}>Sync history of {source.name}</h3>
      {error ? <ErrorMessage error={error} /> : null}
      {runs === null && !error && <Loading label="Loading the sync history…" />}
      {runs && runs.length === 0 && <p className="muted small">No syncs yet.</p>}
      {rows.length > 0 && (
        <table className="data compact sync-runs">
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Why</th>
              <th scope="col">Took</th>
              <th scope="col">Result</th>
              <th scope="col" className="num">New</th>
              <th scope="col" className="num">Updated</th>
              <th scope="col" className="num">Unchanged</th>
              <th scope="col" className="num">Requests</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const result = r.status === 'ok' && r.warnings ? 'Synced with warnings' : RUN_STATUS[r.status] ?? r.status;
              const note = r.error || r.warnings;
              return (
                <tr key={r.id} data-run-status={r.status}>
                  <td className="nowrap">{formatDateTime(r.started_at)}</td>
                  <td>{TRIGGER[r.trigger] ?? r.trigger}</td>
                  <td className="nowrap">{runDuration(r)}</td>
                  <td>
                    <span className={`run-${r.status}`}>{result}</span>
                    {note && <div className={`small ${r.error ? 'error-text' : 'muted'}`}>{note}</div>}
                  </td>
                  <td className="num">{formatCount(r.added)}</td>
                  <td className="num">{formatCount(r.updated)}</td>
                  <td className="num">{formatCount(r.unchanged)}</td>
                  <td className="num">{formatCount(r.requests)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
