// Settings → Backup and restore: save a checked copy of everything (the system's save dialog in
// the window, a download in a browser), and put a backup back: the file is checked and shown
// first, and the records are replaced only after the person confirms; the records from before are
// kept in a file beside the database.
import { useRef, useState } from 'react';
import { cancelRestore, confirmRestore, prepareRestore, saveBackup } from '../api/client';
import type { RestorePending, RestoreResult, RestoreSummary } from '../api/types';
import { useApp } from '../AppContext';
import { formatBytes, formatCount, formatDate } from '../lib/format';
import { typeWord } from '../lib/names';
import { href } from '../lib/router';
import { ErrorMessage, Modal } from './common';

/** "3 test results", "1 allergy". */
export function countWords(n: number, type: string): string {
  const w = typeWord(type);
  if (n === 1) return `1 ${w}`;
  // "explanation of benefit" → "explanations of benefit": the head noun takes the plural.
  const [head, ...rest] = w.split(' of ');
  const plural = /[^aeiou]y$/.test(head) ? head.slice(0, -1) + 'ies' : /(s|x|ch|sh)$/.test(head) ? head + 'es' : head + 's';
  return `${formatCount(n)} ${[plural, ...rest].join(' of ')}`;
}

function records(n: number): string {
  return n === 1 ? '1 record' : `${formatCount(n)} records`;
}

/** What a backup holds, in words: people, where the records came from, the most common kinds. */
export function BackupContents({ summary }: { summary: RestoreSummary }) {
  const kinds = Object.entries(summary.counts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 6);
  return (
    <div className="backup-contents" data-testid="backup-contents">
      <p>
        <strong>{summary.name}</strong> is a good backup: checked, nothing damaged. It holds {records(summary.total)}
        {summary.newest ? <>, last changed {formatDate(summary.newest)}</> : null} ({formatBytes(summary.size)}).
      </p>
      {summary.people.length > 0 && (
        <>
          <h4>People</h4>
          <ul className="plain-list">
            {summary.people.map((p, i) => (
              <li key={i}>
                {p.name}
                {p.birth_date ? <span className="muted">, born {formatDate(p.birth_date)}</span> : null}: {records(p.records)}
              </li>
            ))}
          </ul>
        </>
      )}
      {summary.sources.length > 0 && (
        <>
          <h4>From</h4>
          <ul className="plain-list">
            {summary.sources.map((s, i) => (
              <li key={i}>
                {s.name} <span className="muted">({s.kind === 'provider' ? 'a provider' : 'a file'})</span>: {records(s.records)}
              </li>
            ))}
          </ul>
        </>
      )}
      {kinds.length > 0 && <p className="muted">Mostly {kinds.map(([t, n]) => countWords(n, t)).join(', ')}.</p>}
    </div>
  );
}

export function BackupSettings() {
  const { hub, refreshSources } = useApp();
  const fileRef = useRef<HTMLInputElement>(null);
  const [busy, setBusy] = useState<'' | 'saving' | 'checking' | 'restoring'>('');
  const [error, setError] = useState<unknown>();
  const [message, setMessage] = useState('');
  const [pending, setPending] = useState<RestorePending | null>(null);
  const [done, setDone] = useState<RestoreResult | null>(null);

  const backup = async () => {
    setBusy('saving');
    setError(undefined);
    setMessage('');
    setDone(null);
    try {
      const r = await saveBackup();
      if (r.path) setMessage(`Backup saved to ${r.path}.`);
      else if (r.filename) setMessage(`Backup downloaded as ${r.filename}.`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy('');
    }
  };

  const check = async (file: File) => {
    setBusy('checking');
    setError(undefined);
    setMessage('');
    setDone(null);
    try {
      setPending(await prepareRestore(file));
    } catch (e) {
      setError(e);
    } finally {
      setBusy('');
      if (fileRef.current) fileRef.current.value = '';
    }
  };

  const cancel = async () => {
    const p = pending;
    setPending(null);
    setMessage('Nothing was changed.');
    if (p) await cancelRestore(p.id).catch(() => undefined);
  };

  const restore = async () => {
    if (!pending) return;
    setBusy('restoring');
    setError(undefined);
    try {
      const r = await confirmRestore(pending.id);
      setPending(null);
      setDone(r);
      hub.emit({ type: 'resources.changed', data: { restored: true } });
      refreshSources();
    } catch (e) {
      setError(e);
    } finally {
      setBusy('');
    }
  };

  const providers = done?.summary.sources.filter((s) => s.kind === 'provider').length ?? 0;

  return (
    <div className="backup-settings">
      <p>
        A backup is one file with all your records, people and sources. Keep it somewhere safe, such as a USB drive. Sign-ins to
        providers are not in it: after a restore you sign in to each provider again.
      </p>
      <div className="actions-row">
        <button type="button" className="btn" onClick={() => void backup()} disabled={busy !== ''}>
          {busy === 'saving' ? 'Saving a backup…' : 'Save a backup…'}
        </button>
        <button type="button" className="btn" onClick={() => fileRef.current?.click()} disabled={busy !== ''}>
          {busy === 'checking' ? 'Checking the backup…' : 'Restore from a backup…'}
        </button>
        <input
          ref={fileRef}
          type="file"
          hidden
          data-testid="restore-file"
          aria-label="Choose a backup file to restore"
          onChange={(e) => {
            const f = e.target.files?.[0];
            if (f) void check(f);
          }}
        />
      </div>
      {message && (
        <p className="notice notice-ok" role="status">
          {message}
        </p>
      )}
      {error ? <ErrorMessage error={error} title={busy === 'saving' ? 'The backup was not saved' : 'Nothing was changed'} /> : null}
      {done && (
        <div className="notice notice-ok" role="status" data-testid="restore-done">
          <p className="notice-title">Restored from {done.summary.name}: {records(done.summary.total)}.</p>
          <p>Your records from before are kept in {done.previous}, in case you need them again.</p>
          {providers > 0 && (
            <p>
              {providers === 1 ? 'One provider needs' : `${providers} providers need`} a new sign-in before they sync again:{' '}
              <a href={href('/sources')}>go to Sources</a> and choose Reconnect.
            </p>
          )}
        </div>
      )}
      {pending && (
        <Modal
          title="Restore this backup?"
          onClose={() => void cancel()}
          actions={
            <>
              <button type="button" className="btn" data-autofocus onClick={() => void cancel()} disabled={busy === 'restoring'}>
                Cancel
              </button>
              <button type="button" className="btn btn-danger" onClick={() => void restore()} disabled={busy === 'restoring'}>
                {busy === 'restoring' ? 'Restoring…' : 'Replace my records'}
              </button>
            </>
          }
        >
          <BackupContents summary={pending.summary} />
          <p>
            <strong>All the records in Fasten now are replaced by the backup's.</strong> They are not lost: Fasten keeps them in a file
            beside its database.
          </p>
          {error ? <ErrorMessage error={error} /> : null}
        </Modal>
      )}
    </div>
  );
}
