import { useId, useState, type FormEvent, type ReactNode } from 'react';
import { registerInstallation } from '../api/client';
import type { Installation } from '../api/types';
import { ErrorMessage } from './common';

/** The two sentences that say why an installation registers (onboarding, connect, settings). */
export const WHY_REGISTER =
  'To connect to hospitals and clinics, Fasten goes through the Lighthouse, which limits how many people one installation can connect to each provider. ' +
  'Your name and email are used only to warn you when that limit is near; your medical records never go to the Lighthouse.';

const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;

/** Checks the administrator's name and email like the backend does; returns messages per field. */
export function validateAdmin(name: string, email: string): { name?: string; email?: string } {
  const out: { name?: string; email?: string } = {};
  const n = name.trim().replace(/\s+/g, ' ');
  if (!n || [...n].length > 200) out.name = "Please enter the administrator's name (1 to 200 characters).";
  const e = email.trim();
  if (!e || e.length > 254 || !EMAIL.test(e)) out.email = 'Please enter a valid email address, such as name@example.org.';
  return out;
}

/**
 * The administrator's name and email, and a Register button. Registers with the Lighthouse in use
 * and calls onRegistered; errors (keyring locked, Lighthouse unreachable, ...) are shown as the
 * backend words them.
 */
export function RegisterForm({
  initialName = '',
  initialEmail = '',
  lighthouseUrl,
  submitLabel = 'Register',
  autoFocus,
  onRegistered,
  children,
}: {
  initialName?: string;
  initialEmail?: string;
  lighthouseUrl?: string;
  submitLabel?: string;
  autoFocus?: boolean;
  onRegistered: (inst: Installation) => void | Promise<void>;
  children?: ReactNode;
}) {
  const [name, setName] = useState(initialName);
  const [email, setEmail] = useState(initialEmail);
  const [fieldErrors, setFieldErrors] = useState<{ name?: string; email?: string }>({});
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const id = useId();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const fe = validateAdmin(name, email);
    setFieldErrors(fe);
    setError(undefined);
    if (fe.name || fe.email) {
      document.getElementById(fe.name ? `${id}-name` : `${id}-email`)?.focus();
      return;
    }
    setBusy(true);
    try {
      const inst = await registerInstallation(name.trim(), email.trim());
      await onRegistered(inst);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="register-form" onSubmit={submit} noValidate aria-label="Register this installation">
      <div className="field">
        <label htmlFor={`${id}-name`}>Administrator's name</label>
        <input
          id={`${id}-name`}
          type="text"
          autoComplete="name"
          value={name}
          maxLength={200}
          onChange={(e) => setName(e.target.value)}
          aria-invalid={!!fieldErrors.name}
          aria-describedby={fieldErrors.name ? `${id}-name-error` : undefined}
          autoFocus={autoFocus}
        />
        {fieldErrors.name && (
          <span id={`${id}-name-error`} className="field-error">
            {fieldErrors.name}
          </span>
        )}
      </div>
      <div className="field">
        <label htmlFor={`${id}-email`}>Email</label>
        <input
          id={`${id}-email`}
          type="email"
          autoComplete="email"
          value={email}
          maxLength={254}
          onChange={(e) => setEmail(e.target.value)}
          aria-invalid={!!fieldErrors.email}
          aria-describedby={fieldErrors.email ? `${id}-email-error` : undefined}
        />
        {fieldErrors.email && (
          <span id={`${id}-email-error`} className="field-error">
            {fieldErrors.email}
          </span>
        )}
      </div>
      {error ? <ErrorMessage error={error} title="This installation could not be registered" /> : null}
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={busy}>
          {busy ? 'Registering…' : submitLabel}
        </button>
        {children}
      </div>
      {lighthouseUrl && (
        <p className="muted small">
          Registers with the Lighthouse at <code>{lighthouseUrl}</code>.
        </p>
      )}
    </form>
  );
}
