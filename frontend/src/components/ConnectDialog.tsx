import { useEffect, useRef, useState, type ReactNode } from 'react';
import { ApiError, cancelConnect, getConnect, listProviders, reconnectSource, startConnect } from '../api/client';
import type { ConnectStarted, ConnectStatus, Provider, Source } from '../api/types';
import { isRegistered, useApp } from '../AppContext';
import { openExternal } from '../lib/events';
import { useDebounced } from '../lib/hooks';
import { href } from '../lib/router';
import { ErrorMessage, Loading, Modal } from './common';
import { RegisterForm, WHY_REGISTER } from './RegisterForm';

/** The demo hospital's id in the sandbox Lighthouse's catalog. */
export const DEMO_PROVIDER = 'demo';

/** How often the page asks how a sign-in is going. */
export const POLL_MS = 1000;

type Step =
  | { kind: 'register' }
  | { kind: 'choose' }
  | { kind: 'starting'; name: string }
  | { kind: 'waiting'; started: ConnectStarted }
  | { kind: 'connected'; status: ConnectStatus }
  | { kind: 'failed'; error: unknown; title: string };

/** Plain-words titles for a failed or cancelled sign-in (the message itself comes from the backend). */
function failureTitle(code: string | undefined, status: string): string {
  if (status === 'cancelled' || code === 'cancelled') return 'Connecting was cancelled';
  switch (code) {
    case 'denied':
      return 'You declined at the provider';
    case 'provider_error':
    case 'provider_refused':
      return 'The provider refused the sign-in';
    case 'timeout':
      return 'The sign-in timed out';
    case 'keyring_locked':
      return 'Unlock your keyring';
    case 'keyring_unavailable':
      return 'No system keyring';
    case 'user_limit_reached':
      return 'The limit of people for this provider is reached';
    default:
      return 'Connecting did not finish';
  }
}

function errorTitle(e: unknown): string {
  if (e instanceof ApiError) {
    switch (e.code) {
      case 'user_limit_reached':
        return 'The limit of people for this provider is reached';
      case 'provider_insecure':
        return 'This provider cannot be connected safely';
      case 'lighthouse_unreachable':
        return 'The Lighthouse cannot be reached';
      case 'keyring_locked':
        return 'Unlock your keyring';
      case 'keyring_unavailable':
        return 'No system keyring';
      case 'not_registered':
      case 'installation_rejected':
        return 'Register this installation first';
    }
  }
  return 'Connecting could not start';
}

/**
 * Connect a provider: registration first if needed, then the Lighthouse catalog (with a
 * "Try the demo hospital" shortcut when the sandbox Lighthouse is in use), then the sign-in in the
 * system browser while this dialog waits (cancel closes the app's listener), then the outcome.
 * With `reconnect`, it signs in again for that source straight away.
 */
export function ConnectDialog({ onClose, reconnect }: { onClose: () => void; reconnect?: Source }) {
  const { settings, refreshSettings, refreshSources, hub, profile } = useApp();
  const [step, setStep] = useState<Step>(() => (reconnect ? { kind: 'starting', name: reconnect.name } : isRegistered(settings) ? { kind: 'choose' } : { kind: 'register' }));
  const live = useRef(true);
  useEffect(() => {
    live.current = true;
    return () => {
      live.current = false;
    };
  }, []);

  const begin = async (name: string, start: () => Promise<ConnectStarted>) => {
    setStep({ kind: 'starting', name });
    try {
      const started = await start();
      if (!live.current) {
        void cancelConnect(started.connect_id).catch(() => undefined);
        return;
      }
      // The sign-in happens in the system browser, never in this window.
      openExternal(started.authorize_url);
      setStep({ kind: 'waiting', started });
    } catch (e) {
      if (live.current) setStep({ kind: 'failed', error: e, title: errorTitle(e) });
    }
  };

  // A reconnect starts at once.
  const reconnectStarted = useRef(false);
  useEffect(() => {
    if (!reconnect || reconnectStarted.current) return;
    reconnectStarted.current = true;
    void begin(reconnect.name, () => reconnectSource(reconnect.id));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [reconnect]);

  // While waiting: ask how it goes until it ends.
  const waitingId = step.kind === 'waiting' ? step.started.connect_id : null;
  useEffect(() => {
    if (!waitingId) return;
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ctrl = new AbortController();
    const tick = async () => {
      try {
        const st = await getConnect(waitingId, ctrl.signal);
        if (stop) return;
        if (st.status === 'connected') {
          setStep({ kind: 'connected', status: st });
          refreshSources();
          hub.emit({ type: 'source.status', data: { source_id: st.source_id, status: 'connected' } });
          return;
        }
        if (st.status !== 'pending') {
          setStep({ kind: 'failed', error: st.error ?? 'Nothing was connected.', title: failureTitle(st.error_code, st.status) });
          return;
        }
      } catch (e) {
        if (stop) return;
        if (e instanceof ApiError && e.status === 404) {
          setStep({ kind: 'failed', error: 'Fasten no longer knows this sign-in (it may have restarted). Nothing was connected; you can start again.', title: 'Connecting did not finish' });
          return;
        }
        // A network hiccup: keep asking.
      }
      timer = setTimeout(tick, POLL_MS);
    };
    timer = setTimeout(tick, POLL_MS);
    return () => {
      stop = true;
      ctrl.abort();
      if (timer) clearTimeout(timer);
    };
  }, [waitingId, refreshSources, hub]);

  const cancel = async () => {
    if (step.kind !== 'waiting') return;
    const id = step.started.connect_id;
    try {
      const st = await cancelConnect(id);
      if (!live.current) return;
      if (st.status === 'connected') setStep({ kind: 'connected', status: st });
      else setStep({ kind: 'failed', error: st.error ?? 'Connecting was cancelled. Nothing was connected.', title: failureTitle(st.error_code, st.status) });
    } catch (e) {
      if (live.current) setStep({ kind: 'failed', error: e, title: 'Connecting could not be cancelled' });
    }
  };

  // Closing while the browser is out cancels the sign-in: the app's listener must not stay open.
  const close = () => {
    if (step.kind === 'waiting') void cancelConnect(step.started.connect_id).catch(() => undefined);
    onClose();
  };

  let title = 'Connect a provider';
  let body: ReactNode = null;
  let actions: ReactNode = (
    <button type="button" className="btn" onClick={close}>
      Close
    </button>
  );

  switch (step.kind) {
    case 'register':
      title = 'Register this installation';
      body = (
        <>
          <p>Connecting a provider needs this installation to be registered with the Lighthouse first. It takes a moment and is done once.</p>
          <p className="muted">{WHY_REGISTER}</p>
          <RegisterForm
            autoFocus
            initialName={settings?.admin_name ?? ''}
            initialEmail={settings?.admin_email ?? ''}
            lighthouseUrl={settings?.lighthouse_url}
            submitLabel="Register and continue"
            onRegistered={async () => {
              await refreshSettings();
              if (live.current) setStep({ kind: 'choose' });
            }}
          />
        </>
      );
      actions = (
        <button type="button" className="btn" onClick={close}>
          Not now
        </button>
      );
      break;
    case 'choose':
      body = <ChooseProvider onChoose={(p) => void begin(p.name, () => startConnect(p.id, profile))} />;
      actions = (
        <button type="button" className="btn" onClick={close}>
          Cancel
        </button>
      );
      break;
    case 'starting':
      title = reconnect ? `Sign in to ${step.name} again` : `Connect ${step.name}`;
      body = <Loading label="Preparing the sign-in…" />;
      actions = null;
      break;
    case 'waiting': {
      const s = step.started;
      title = `Sign in to ${s.provider_name}`;
      body = (
        <div data-testid="connect-waiting">
          <p className="lead">Your browser opened {s.provider_name}'s sign-in page.</p>
          <ol className="steps">
            <li>Sign in there with your patient portal account.</li>
            <li>Allow Fasten to read your records.</li>
            <li>Come back here: this window updates by itself.</li>
          </ol>
          {s.warning && <p className="notice notice-warn">{s.warning}</p>}
          <Loading label="Waiting for you to finish signing in (up to 10 minutes)…" />
          <p className="small muted">
            Browser did not open?{' '}
            <a
              href={s.authorize_url}
              target="_blank"
              rel="noopener noreferrer"
              onClick={(e) => {
                e.preventDefault();
                openExternal(s.authorize_url);
              }}
            >
              Open the sign-in page
            </a>
            .
          </p>
        </div>
      );
      actions = (
        <button type="button" className="btn" onClick={() => void cancel()}>
          Cancel
        </button>
      );
      break;
    }
    case 'connected': {
      const st = step.status;
      title = st.reconnect ? `Signed in to ${st.provider_name} again` : `Connected to ${st.provider_name}`;
      body = (
        <div className="notice notice-ok" role="status" data-testid="connect-success">
          <p className="notice-title">
            {st.patient_name ? (
              <>
                Connected as <strong data-testid="connected-patient">{st.patient_name}</strong>.
              </>
            ) : (
              'Connected.'
            )}
          </p>
          <p>
            {st.sync_started
              ? 'The first sync has started: your records will appear in a few moments.'
              : 'Fasten will download your records at the next sync.'}
          </p>
        </div>
      );
      actions = (
        <>
          <a className="btn" href={href('/sources')} onClick={onClose}>
            See sources
          </a>
          <button type="button" className="btn btn-primary" onClick={onClose}>
            Done
          </button>
        </>
      );
      break;
    }
    case 'failed':
      body = (
        <div data-testid="connect-failed">
          <ErrorMessage error={step.error} title={step.title} />
        </div>
      );
      actions = (
        <>
          <button type="button" className="btn" onClick={close}>
            Close
          </button>
          {!reconnect && (
            <button type="button" className="btn btn-primary" onClick={() => setStep(isRegistered(settings) ? { kind: 'choose' } : { kind: 'register' })}>
              Try again
            </button>
          )}
        </>
      );
      break;
  }

  return (
    <Modal title={title} onClose={close} actions={actions}>
      {body}
    </Modal>
  );
}

/** Provider search over the Lighthouse catalog, with the demo hospital shortcut. */
function ChooseProvider({ onChoose }: { onChoose: (p: Provider) => void }) {
  const [q, setQ] = useState('');
  const query = useDebounced(q.trim(), 250);
  const [list, setList] = useState<Provider[] | null>(null);
  const [error, setError] = useState<unknown>();
  const [demo, setDemo] = useState<Provider | null>(null);

  useEffect(() => {
    const ctrl = new AbortController();
    setError(undefined);
    listProviders(query, ctrl.signal).then(
      (ps) => {
        setList(ps);
        if (!query) setDemo(ps.find((p) => p.id === DEMO_PROVIDER) ?? null);
      },
      (e) => {
        if (!ctrl.signal.aborted) {
          setError(e);
          setList([]);
        }
      },
    );
    return () => ctrl.abort();
  }, [query]);

  return (
    <div className="choose-provider">
      {demo && (
        <div className="demo-shortcut">
          <div>
            <p className="notice-title">Try the demo hospital</p>
            <p className="small muted">A test provider with made-up patients, running on this computer. No real records.</p>
          </div>
          <button type="button" className="btn btn-primary" onClick={() => onChoose(demo)}>
            Try the demo hospital
          </button>
        </div>
      )}
      <div className="field">
        <label htmlFor="provider-search">Find your hospital or clinic</label>
        <input id="provider-search" type="search" value={q} onChange={(e) => setQ(e.target.value)} placeholder="Name of the provider" autoComplete="off" autoFocus />
      </div>
      {error ? <ErrorMessage error={error} /> : null}
      {list === null && !error && <Loading label="Loading the providers…" />}
      {list && list.length === 0 && !error && <p className="muted">No provider matches “{query}”.</p>}
      {list && list.length > 0 && (
        <ul className="provider-list" aria-label="Providers">
          {list.map((p) => (
            <li key={p.id}>
              <button type="button" className="provider-item" onClick={() => onChoose(p)}>
                <span className="provider-name">{p.name}</span>
                <span className="small muted">{new URL(p.fhir_base).host}</span>
              </button>
            </li>
          ))}
        </ul>
      )}
      <p className="small muted">You sign in at the provider's own page, in your browser. Fasten never sees your password.</p>
    </div>
  );
}

/**
 * "Connect a provider": opens the dialog once registered; before that it is disabled, says why,
 * and offers to register.
 */
export function ConnectButton({
  whyId = 'connect-why',
  primary,
  onOpenChange,
}: {
  whyId?: string;
  primary?: boolean;
  /** Told when the dialog opens and closes (the welcome page stays while it is open). */
  onOpenChange?: (open: boolean) => void;
}) {
  const { settings } = useApp();
  const [open, setOpenState] = useState(false);
  const setOpen = (v: boolean) => {
    setOpenState(v);
    onOpenChange?.(v);
  };
  const registered = isRegistered(settings);
  return (
    <>
      {registered ? (
        <button type="button" className={primary ? 'btn btn-primary' : 'btn'} onClick={() => setOpen(true)}>
          Connect a provider
        </button>
      ) : (
        <>
          <button type="button" className="btn" disabled aria-describedby={whyId}>
            Connect a provider
          </button>
          <p id={whyId} className="muted small">
            Connecting a provider needs this installation to be registered with the Lighthouse.{' '}
            {settings && (
              <button type="button" className="link-button" onClick={() => setOpen(true)}>
                Register this installation
              </button>
            )}
          </p>
        </>
      )}
      {open && <ConnectDialog onClose={() => setOpen(false)} />}
    </>
  );
}
