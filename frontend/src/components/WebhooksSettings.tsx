// Settings: the webhook subscriptions of the user's own tools (GET /hub/subscriptions), with delete
// and the per-subscription permission to send full records.
import { useCallback, useEffect, useState } from 'react';
import { allowSubscriptionResources, deleteSubscription, getToken, listSubscriptions } from '../api/client';
import type { HubState, HubSubscription } from '../api/types';
import { openExternal } from '../lib/events';
import { formatCount, formatDateTime } from '../lib/format';
import { ErrorMessage, Loading, Modal } from './common';

export const WEBHOOKS_DOC_URL = 'https://github.com/fastenhealth/fasten-desktop/blob/main/docs/webhooks.md';

/** How often the list is read again while Settings is open (states change on the hub's side). */
export const WEBHOOKS_REFRESH_MS = 15_000;

const STATE: Record<HubState, { label: string; help: string }> = {
  pending: { label: 'Waiting for confirmation', help: 'Fasten asked the callback to confirm that it wants these notifications.' },
  active: { label: 'Active', help: 'Receiving notifications.' },
  failed: { label: 'Never confirmed', help: 'It gets nothing. The tool can subscribe again.' },
  dead: { label: 'Stopped', help: 'A notification could not be delivered after every retry, so nothing more is sent. The tool can subscribe again.' },
  expired: { label: 'Expired', help: 'The lease ended, so nothing more is sent. The tool can subscribe again.' },
};

export function WebhooksSettings() {
  const [subs, setSubs] = useState<HubSubscription[] | null | undefined>(undefined);
  const [error, setError] = useState<unknown>();
  const [message, setMessage] = useState('');
  const [deleting, setDeleting] = useState<HubSubscription | null>(null);

  const load = useCallback(async (signal?: AbortSignal) => {
    try {
      const s = await listSubscriptions(signal);
      setSubs(s);
      setError(undefined);
    } catch (e) {
      if (!signal?.aborted) setError(e);
    }
  }, []);
  useEffect(() => {
    const ctrl = new AbortController();
    void load(ctrl.signal);
    const id = setInterval(() => {
      if (document.visibilityState !== 'hidden') void load(ctrl.signal);
    }, WEBHOOKS_REFRESH_MS);
    return () => {
      ctrl.abort();
      clearInterval(id);
    };
  }, [load]);

  const setAllowed = async (s: HubSubscription, allow: boolean) => {
    setError(undefined);
    setMessage('');
    try {
      const updated = await allowSubscriptionResources(s.id, allow);
      setSubs((prev) => prev?.map((x) => (x.id === s.id ? updated : x)) ?? prev);
      setMessage(allow ? `${s.callback} may now receive full records.` : `${s.callback} gets ids, types and counts only.`);
    } catch (e) {
      setError(e);
    }
  };

  return (
    <div className="webhooks">
      <p>
        Your own tools (a script that tells you about a new lab result, a home dashboard) can get a signed notification when an import or a
        sync finishes or records change. They carry ids, record types and counts; the full record only if the tool asks for it and you allow
        it below.
      </p>
      <HowToSubscribe />
      {message && (
        <p className="notice notice-ok small" role="status">
          {message}
        </p>
      )}
      {error ? <ErrorMessage error={error} onRetry={() => void load()} /> : null}
      {subs === undefined && !error && <Loading />}
      {subs === null && <p className="muted">Notifications to other apps are not available in this version.</p>}
      {subs && subs.length === 0 && (
        <p className="muted" data-testid="no-subscriptions">
          No subscriptions.
        </p>
      )}
      {subs && subs.length > 0 && (
        <ul className="webhook-list" aria-label="Subscriptions">
          {subs.map((s) => (
            <Subscription key={s.id} sub={s} onDelete={() => setDeleting(s)} onAllow={(v) => void setAllowed(s, v)} />
          ))}
        </ul>
      )}
      <button type="button" className="btn btn-small" onClick={() => void load()}>
        Refresh
      </button>
      {deleting && (
        <DeleteSubscription
          sub={deleting}
          onClose={() => setDeleting(null)}
          onDeleted={() => {
            setSubs((prev) => prev?.filter((x) => x.id !== deleting.id) ?? prev);
            setMessage(`Deleted the subscription of ${deleting.callback}.`);
            setDeleting(null);
          }}
        />
      )}
    </div>
  );
}

function Subscription({ sub, onDelete, onAllow }: { sub: HubSubscription; onDelete: () => void; onAllow: (allow: boolean) => void }) {
  const st = STATE[sub.state] ?? { label: sub.state, help: '' };
  const allowId = `allow-${sub.id}`;
  return (
    <li className="webhook" data-subscription-id={sub.id} data-state={sub.state}>
      <div className="webhook-head">
        <code className="webhook-callback">{sub.callback}</code>
        <span className={`webhook-state state-${sub.state}`} title={st.help}>
          {st.label}
        </span>
      </div>
      <dl className="fields small">
        <div className="field-row">
          <dt>Events</dt>
          <dd>{sub.events.join(', ')}</dd>
        </div>
        <div className="field-row">
          <dt>{sub.state === 'expired' ? 'Lease ended' : 'Lease until'}</dt>
          <dd>{sub.lease_expires ? formatDateTime(sub.lease_expires) : '—'}</dd>
        </div>
        <div className="field-row">
          <dt>Delivered</dt>
          <dd>
            {formatCount(sub.delivered)}
            {sub.last_delivery ? `, last ${formatDateTime(sub.last_delivery)}` : ''}
            {sub.dropped ? ` (${formatCount(sub.dropped)} dropped from a full queue)` : ''}
          </dd>
        </div>
        {(sub.failures > 0 || sub.last_error) && (
          <div className="field-row">
            <dt>Problems</dt>
            <dd>
              {sub.failures > 0 && `${formatCount(sub.failures)} failed attempt${sub.failures === 1 ? '' : 's'} in a row. `}
              {sub.last_error && <span className="error-text">{sub.last_error}</span>}
            </dd>
          </div>
        )}
      </dl>
      {sub.state !== 'active' && st.help && <p className="small muted">{st.help}</p>}
      {sub.dead_letters && sub.dead_letters.length > 0 && (
        <details className="dead-letters">
          <summary>
            {formatCount(sub.dead_letters.length)} undelivered notification{sub.dead_letters.length === 1 ? '' : 's'}
          </summary>
          <ul className="small">
            {sub.dead_letters.map((d) => (
              <li key={d.event_id + d.failed_at}>
                <strong>{d.event}</strong> of {formatDateTime(d.timestamp)} (<code>{d.event_id}</code>): {d.attempts} attempts, the last{' '}
                {formatDateTime(d.failed_at)}: {d.error}
              </li>
            ))}
          </ul>
        </details>
      )}
      <div className="webhook-actions">
        <label className="check" htmlFor={allowId}>
          <input
            id={allowId}
            type="checkbox"
            checked={sub.allowed_resources}
            disabled={!sub.include_resources && !sub.allowed_resources}
            onChange={(e) => onAllow(e.target.checked)}
          />
          <span>
            Allow full records
            <span className="small muted block">
              {sub.include_resources
                ? 'The tool asked for the records themselves (names, results, notes), not only ids and counts.'
                : 'This tool did not ask for full records; it gets ids, types and counts.'}
            </span>
          </span>
        </label>
        <button type="button" className="btn btn-small btn-danger" onClick={onDelete} aria-label={`Delete the subscription of ${sub.callback}`}>
          Delete
        </button>
      </div>
    </li>
  );
}

function DeleteSubscription({ sub, onClose, onDeleted }: { sub: HubSubscription; onClose: () => void; onDeleted: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await deleteSubscription(sub.id);
      onDeleted();
    } catch (e) {
      setError(e);
      setBusy(false);
    }
  };
  return (
    <Modal
      title="Delete this subscription?"
      onClose={onClose}
      actions={
        <>
          <button type="button" className="btn" onClick={onClose} data-autofocus>
            Keep it
          </button>
          <button type="button" className="btn btn-danger" onClick={() => void run()} disabled={busy}>
            {busy ? 'Deleting…' : 'Delete'}
          </button>
        </>
      }
    >
      <p>
        <code>{sub.callback}</code> stops getting notifications at once, and is told so. Its secret is removed from this computer. The tool
        can subscribe again later.
      </p>
      {error ? <ErrorMessage error={error} /> : null}
    </Modal>
  );
}

/** A short version of docs/webhooks.md. */
function HowToSubscribe() {
  const desktop = typeof window !== 'undefined' && !!window.runtime;
  const hub = desktop || !getToken() ? 'http://127.0.0.1:9300/api/v1/hub' : `${window.location.origin}/api/v1/hub`;
  return (
    <details className="how-to">
      <summary>How a tool subscribes</summary>
      <ol className="small">
        <li>
          {desktop ? (
            <>
              Run <code>fasten-desktop serve</code> (the desktop window has no network address); it prints the API token.
            </>
          ) : (
            <>The tool needs the API token that <code>fasten-desktop serve</code> printed.</>
          )}
        </li>
        <li>
          It sends a form to <code>{hub}</code> with <code>Authorization: Bearer &lt;token&gt;</code>: <code>hub.mode=subscribe</code>,{' '}
          <code>hub.callback</code> (<code>https://</code>, or <code>http://127.0.0.1</code> on this computer), <code>hub.events</code> (such
          as <code>import.done,sync.done</code>), a random <code>hub.secret</code> of 16 to 199 characters, and optionally{' '}
          <code>hub.lease_seconds</code> (up to 7 days) and <code>hub.include=resource</code>.
        </li>
        <li>
          Fasten checks the callback really asked: it must answer a GET by echoing <code>hub.challenge</code> exactly.
        </li>
        <li>
          Each notification is a POST signed <code>X-Hub-Signature: sha256=…</code> (HMAC-SHA256 of the body with the secret): the tool
          must check it. Failed deliveries are retried for a few minutes, then the subscription stops.
        </li>
      </ol>
      <p className="small">
        Examples in Go and Python:{' '}
        <a
          href={WEBHOOKS_DOC_URL}
          onClick={(e) => {
            e.preventDefault();
            openExternal(WEBHOOKS_DOC_URL);
          }}
        >
          docs/webhooks.md
        </a>
        .
      </p>
    </details>
  );
}
