import { useState } from 'react';
import { patchSettings } from '../api/client';
import type { Installation } from '../api/types';
import { useApp } from '../AppContext';
import { ErrorMessage } from '../components/common';
import { RegisterForm, WHY_REGISTER } from '../components/RegisterForm';
import { useTitle } from '../lib/hooks';

/**
 * First launch: register this installation with the Lighthouse (administrator name and email), or
 * skip and only import files. Shown until one of the two is chosen.
 */
export function Onboarding() {
  useTitle('Set up Fasten');
  const { settings, refreshSettings } = useApp();
  const [registered, setRegistered] = useState<Installation | null>(null);
  const [skipError, setSkipError] = useState<unknown>();
  const [skipping, setSkipping] = useState(false);

  const skip = async () => {
    setSkipping(true);
    setSkipError(undefined);
    try {
      await patchSettings({ onboarding_done: true });
      await refreshSettings();
    } catch (e) {
      setSkipError(e);
      setSkipping(false);
    }
  };

  return (
    <div className="page onboarding">
      <h1>Set up Fasten</h1>
      <p className="lead">Your health records, kept on this computer. Nothing is sent to a cloud.</p>
      {registered ? (
        <section className="card" aria-labelledby="onb-done">
          <h2 id="onb-done">This installation is registered</h2>
          <p>
            Its installation ID is <code data-testid="onboarding-installation-id">{registered.installation_id}</code>. You can see it
            again in Settings.
          </p>
          <button type="button" className="btn btn-primary" onClick={() => void refreshSettings()} autoFocus>
            Continue
          </button>
        </section>
      ) : (
        <section className="card onboarding-card" aria-labelledby="onb-register">
          <h2 id="onb-register">Register this installation</h2>
          <p>{WHY_REGISTER}</p>
          <RegisterForm
            autoFocus
            initialName={settings?.admin_name ?? ''}
            initialEmail={settings?.admin_email ?? ''}
            lighthouseUrl={settings?.lighthouse_url}
            onRegistered={(inst) => setRegistered(inst)}
          />
          <div className="onboarding-skip">
            <button type="button" className="btn" onClick={() => void skip()} disabled={skipping}>
              Skip: I will only import files
            </button>
            <p className="muted small">You can register later in Settings. Importing files never needs it.</p>
            {skipError ? <ErrorMessage error={skipError} /> : null}
          </div>
        </section>
      )}
    </div>
  );
}
