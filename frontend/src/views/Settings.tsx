import { useState, type FormEvent } from 'react';
import { getHealth, getToken, patchSettings } from '../api/client';
import { isRegistered, useApp } from '../AppContext';
import { ErrorMessage, Loading, Section } from '../components/common';
import { RegisterForm, WHY_REGISTER } from '../components/RegisterForm';
import { formatDateTime } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { ExportButton } from './Sources';
import { BackupSettings } from '../components/BackupSettings';
import { StartupSettings } from '../components/StartupSettings';
import { WebhooksSettings } from '../components/WebhooksSettings';

export function Settings() {
  useTitle('Settings');
  const { profile } = useApp();
  const health = useAsync((signal) => getHealth(signal), [], false);
  const [exportError, setExportError] = useState<unknown>();
  const desktop = typeof window !== 'undefined' && !!window.runtime;

  return (
    <div className="page settings">
      <h1>Settings</h1>
      <div className="settings-grid">
        <Section title="About">
          {health.error ? <ErrorMessage error={health.error} onRetry={health.reload} /> : null}
          {!health.data && !health.error && <Loading />}
          {health.data && (
            <dl className="fields">
              <div className="field-row">
                <dt>Version</dt>
                <dd data-testid="app-version">{health.data.version || 'unknown'}</dd>
              </div>
              <div className="field-row">
                <dt>Running as</dt>
                <dd>{desktop ? 'Desktop app' : getToken() ? 'Browser page of fasten-desktop serve' : 'Browser page'}</dd>
              </div>
              <div className="field-row">
                <dt>Appearance</dt>
                <dd>Follows your system's light or dark setting.</dd>
              </div>
            </dl>
          )}
        </Section>

        <Section title="Your data">
          <p>Download all your records as one FHIR Bundle file, to keep a copy or move them to another app.</p>
          <ExportButton label="Export everything" profile={profile} onError={setExportError} />
          {exportError ? <ErrorMessage error={exportError} /> : null}
        </Section>

        <Section title="Backup and restore" id="backup">
          <BackupSettings />
        </Section>

        <Section title="Lighthouse and installation" id="installation">
          <InstallationSettings />
        </Section>

        <Section title="Start-up and background sync" id="startup">
          <StartupSettings />
        </Section>

        <Section title="Notifications to other apps" id="webhooks">
          <WebhooksSettings />
        </Section>
      </div>
    </div>
  );
}

/** The installation ID, the Lighthouse address, the administrator; register later or again. */
function InstallationSettings() {
  const { settings, refreshSettings } = useApp();
  const [registering, setRegistering] = useState(false);
  const [message, setMessage] = useState('');
  if (!settings) return <p className="muted">These settings are not available.</p>;
  const inst = settings.installation;
  const registered = isRegistered(settings);
  return (
    <>
      <p className="muted">{WHY_REGISTER}</p>
      {message && (
        <p className="notice notice-ok" role="status">
          {message}
        </p>
      )}
      {inst ? (
        <dl className="fields">
          <div className="field-row">
            <dt>Installation ID</dt>
            <dd>
              <code data-testid="installation-id">{inst.installation_id}</code>
            </dd>
          </div>
          {inst.registered_at && (
            <div className="field-row">
              <dt>Registered</dt>
              <dd>{formatDateTime(inst.registered_at)}</dd>
            </div>
          )}
          <div className="field-row">
            <dt>Administrator</dt>
            <dd data-testid="installation-admin">
              {inst.name} &lt;{inst.email}&gt;
            </dd>
          </div>
        </dl>
      ) : (
        <>
          {settings.registered_elsewhere && (
            <p className="notice notice-warn">
              This installation is registered with the Lighthouse at <code>{settings.registered_elsewhere}</code>, not with the one in use
              below. Register again to connect providers through it.
            </p>
          )}
          <p data-testid="not-registered">Not registered. Registering is needed only to connect a provider; importing files works without it.</p>
        </>
      )}
      {registering || !registered ? (
        <div className="register-box">
          {registered && <p className="small">Registering again gives this installation a new ID. Connected providers stay connected.</p>}
          <RegisterForm
            initialName={inst?.name ?? settings.admin_name ?? ''}
            initialEmail={inst?.email ?? settings.admin_email ?? ''}
            submitLabel={registered ? 'Register again' : 'Register'}
            onRegistered={async (i) => {
              await refreshSettings();
              setRegistering(false);
              setMessage(`Registered. The installation ID is ${i.installation_id}.`);
            }}
          >
            {registered && (
              <button type="button" className="btn" onClick={() => setRegistering(false)}>
                Cancel
              </button>
            )}
          </RegisterForm>
        </div>
      ) : (
        <div className="register-box">
          <button type="button" className="btn" onClick={() => setRegistering(true)}>
            Register again…
          </button>
        </div>
      )}
      <LighthouseForm onSaved={setMessage} />
    </>
  );
}

function LighthouseForm({ onSaved }: { onSaved: (msg: string) => void }) {
  const { settings, refreshSettings } = useApp();
  const current = settings?.lighthouse_url ?? '';
  const [value, setValue] = useState(current);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  if (!settings) return null;
  const changed = value.trim().replace(/\/+$/, '') !== current;
  const save = async (url: string) => {
    setBusy(true);
    setError(undefined);
    try {
      const st = await patchSettings({ lighthouse_url: url });
      await refreshSettings();
      setValue(st.lighthouse_url);
      onSaved(`The Lighthouse is now ${st.lighthouse_url}.${settings.installation && !st.installation ? ' Register this installation with it to connect providers.' : ''}`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (changed) void save(value.trim());
  };
  const source =
    settings.lighthouse_url_source === 'flag'
      ? 'Set when Fasten was started (--lighthouse-url or FASTEN_LIGHTHOUSE_URL). A change here applies until Fasten is started with that option again.'
      : settings.lighthouse_url_source === 'default'
        ? 'The public Lighthouse.'
        : 'Chosen in these settings. A self-hosted Lighthouse works too.';
  return (
    <form className="lighthouse-form" onSubmit={submit} noValidate aria-labelledby="lighthouse-heading">
      <h3 id="lighthouse-heading">Lighthouse</h3>
      <div className="field">
        <label htmlFor="lighthouse-url">Lighthouse address</label>
        <div className="inline-row">
          <input id="lighthouse-url" type="url" value={value} onChange={(e) => setValue(e.target.value)} spellCheck={false} aria-describedby="lighthouse-help" />
          <button type="submit" className="btn" disabled={busy || !changed}>
            Save
          </button>
        </div>
        <span id="lighthouse-help" className="small muted">
          {source}
        </span>
      </div>
      {changed && settings.installation && (
        <p className="notice notice-warn small">Changing the Lighthouse ends this installation's registration: you will register again with the new one.</p>
      )}
      {settings.lighthouse_url_source !== 'default' && current !== settings.default_lighthouse_url && (
        <button type="button" className="btn btn-small" onClick={() => void save('')} disabled={busy}>
          Use the public Lighthouse
        </button>
      )}
      {error ? <ErrorMessage error={error} /> : null}
    </form>
  );
}
