// Settings: start at login and how often connected providers are synced (GET/PATCH /preferences).
import { useEffect, useState } from 'react';
import { getPreferences, patchPreferences } from '../api/client';
import type { Preferences, PreferencesPatch } from '../api/types';
import { ErrorMessage, Loading } from './common';

/** "12h" -> hours, for the Go durations the backend uses ("1h30m" -> 1.5); NaN if unreadable. */
export function intervalHours(s: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(s.trim());
  if (!m || s.trim() === '') return NaN;
  return Number(m[1] ?? 0) + Number(m[2] ?? 0) / 60 + Number(m[3] ?? 0) / 3600;
}

/** A sync interval in plain words: "every hour", "every 12 hours", "every day", "every week". */
export function intervalWords(s: string): string {
  const h = intervalHours(s);
  if (!Number.isFinite(h) || h <= 0) return `every ${s}`;
  if (h === 168) return 'every week';
  if (h % 24 === 0) return h === 24 ? 'every day' : `every ${h / 24} days`;
  if (Number.isInteger(h)) return h === 1 ? 'every hour' : `every ${h} hours`;
  const min = Math.round(h * 60);
  return `every ${Math.floor(min / 60)} h ${min % 60} min`;
}

function capitalised(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function StartupSettings() {
  const [prefs, setPrefs] = useState<Preferences | null | undefined>(undefined);
  const [loadError, setLoadError] = useState<unknown>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState('');

  useEffect(() => {
    const ctrl = new AbortController();
    getPreferences(ctrl.signal).then(
      (p) => setPrefs(p),
      (e) => !ctrl.signal.aborted && setLoadError(e),
    );
    return () => ctrl.abort();
  }, []);

  if (loadError) return <ErrorMessage error={loadError} />;
  if (prefs === undefined) return <Loading />;
  if (prefs === null) return <p className="muted">These settings are not available in this version.</p>;

  const save = async (patch: PreferencesPatch, done: (p: Preferences) => string) => {
    setBusy(true);
    setError(undefined);
    setMessage('');
    try {
      const p = await patchPreferences(patch);
      setPrefs(p);
      setMessage(done(p));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const choices = prefs.sync_interval_choices.includes(prefs.sync_interval)
    ? prefs.sync_interval_choices
    : [...prefs.sync_interval_choices, prefs.sync_interval].sort((a, b) => intervalHours(a) - intervalHours(b));
  const pendingRestart = prefs.sync_interval_active !== prefs.sync_interval;

  return (
    <div className="startup-settings">
      <label className="check">
        <input
          type="checkbox"
          checked={prefs.autostart}
          disabled={busy || !prefs.autostart_supported}
          aria-describedby="autostart-why"
          onChange={(e) =>
            void save({ autostart: e.target.checked }, (p) =>
              p.autostart ? 'Fasten will start in the background when you log in.' : 'Fasten will no longer start when you log in.',
            )
          }
        />
        <span>Start Fasten when I log in, and keep my records up to date in the background</span>
      </label>
      <p id="autostart-why" className="muted small" data-testid="autostart-note">
        {prefs.autostart_supported
          ? 'Fasten starts hidden, syncs the providers that are due and stays out of the way. Opening Fasten shows the window.'
          : prefs.autostart_note || 'Starting at login is not available here.'}
      </p>
      <div className="field">
        <label htmlFor="sync-interval">Sync connected providers</label>
        <select
          id="sync-interval"
          value={prefs.sync_interval}
          disabled={busy}
          aria-describedby="sync-interval-help"
          onChange={(e) => void save({ sync_interval: e.target.value }, (p) => `Connected providers will be synced ${intervalWords(p.sync_interval)}.`)}
        >
          {choices.map((c) => (
            <option key={c} value={c}>
              {capitalised(intervalWords(c))}
              {c === prefs.sync_interval_default ? ' (default)' : ''}
            </option>
          ))}
        </select>
        <span id="sync-interval-help" className="small muted">
          While Fasten runs (open, or in the background), and once when it starts. “Sync now” on the Sources page syncs at any time.
        </span>
      </div>
      {pendingRestart && (
        <p className="notice notice-warn small" data-testid="interval-restart">
          Fasten keeps syncing {intervalWords(prefs.sync_interval_active)} until it is started again; the new schedule applies from the next
          start.
        </p>
      )}
      {message && (
        <p className="notice notice-ok small" role="status">
          {message}
        </p>
      )}
      {error ? <ErrorMessage error={error} /> : null}
    </div>
  );
}
