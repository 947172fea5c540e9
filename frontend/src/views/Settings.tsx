import { useState } from 'react';
import { getHealth, getInstallation, getToken } from '../api/client';
import { useApp } from '../AppContext';
import { ErrorMessage, Loading, Section } from '../components/common';
import { useAsync, useTitle } from '../lib/hooks';
import { ExportButton } from './Sources';

export function Settings() {
  useTitle('Settings');
  const { profile } = useApp();
  const health = useAsync((signal) => getHealth(signal), [], false);
  const inst = useAsync((signal) => getInstallation(signal), [], false);
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

        <Section title="Installation">
          {inst.error ? <ErrorMessage error={inst.error} /> : null}
          {!inst.data && !inst.error && inst.loading && <Loading />}
          {inst.data ? (
            <dl className="fields">
              <div className="field-row">
                <dt>Installation ID</dt>
                <dd>
                  <code>{inst.data.installation_id}</code>
                </dd>
              </div>
              {inst.data.lighthouse_url && (
                <div className="field-row">
                  <dt>Lighthouse</dt>
                  <dd>
                    <code>{inst.data.lighthouse_url}</code>
                  </dd>
                </div>
              )}
            </dl>
          ) : (
            !inst.loading &&
            !inst.error && (
              <p className="muted">
                Not registered. An installation ID is needed only to connect a provider, which this version cannot do yet. Importing files
                works without it.
              </p>
            )
          )}
        </Section>

        <Section title="Start-up">
          <label className="check">
            <input type="checkbox" disabled aria-describedby="autostart-why" />
            <span>Start Fasten when I log in, and keep my records up to date in the background</span>
          </label>
          <p id="autostart-why" className="muted small">
            Not available yet: there are no connected providers to keep in sync.
          </p>
        </Section>

        <Section title="Notifications to other apps">
          <p className="muted">
            No subscriptions. Local tools will be able to subscribe to signed notifications (webhooks) in a later version.
          </p>
        </Section>
      </div>
    </div>
  );
}
