// On the dashboard: add your own entry, open the summary for a doctor.
import { useState } from 'react';
import { useApp } from '../AppContext';
import { href } from '../lib/router';
import { OwnEntryDialog } from './OwnEntryForm';
import './own.css';

export function OwnQuickActions() {
  const { profile, profiles } = useApp();
  const [open, setOpen] = useState(false);
  const person = profile ?? (profiles?.length === 1 ? profiles[0].id : undefined);
  if (person === undefined) return null;
  return (
    <div className="own-actions no-print" data-testid="own-quick">
      <button type="button" className="btn" onClick={() => setOpen(true)} data-testid="own-add">
        Add a measurement or entry
      </button>
      <a className="btn" href={href('/entries')}>
        My entries
      </a>
      <a className="btn" href={href('/summary')} data-testid="open-summary">
        Summary for a doctor
      </a>
      {open && <OwnEntryDialog profile={person} onClose={() => setOpen(false)} />}
    </div>
  );
}
