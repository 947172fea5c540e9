// On a record's page: a record the person entered says so and can be changed or deleted;
// anything from a file or a provider cannot (and offers nothing to click).
import { useState } from 'react';
import type { ResourceItem } from '../api/types';
import { navigate } from '../lib/router';
import { OwnEntryDialog } from './OwnEntryForm';
import { fromResource, isSelfEntered } from './entries';

export function OwnRecordActions({ item, onChanged }: { item: ResourceItem; onChanged?: () => void }) {
  const [open, setOpen] = useState(false);
  if (!isSelfEntered(item.resource)) return null;
  const editable = fromResource(item.resource) !== null;
  return (
    <div className="own-actions no-print">
      <span className="badge badge-self" data-testid="self-entered">
        Entered by you
      </span>
      {editable && (
        <button type="button" className="btn btn-small" onClick={() => setOpen(true)} data-testid="own-edit">
          Change or delete
        </button>
      )}
      {open && (
        <OwnEntryDialog
          edit={{ type: item.type, id: item.id, resource: item.resource }}
          onClose={() => setOpen(false)}
          onSaved={(r) => (r ? onChanged?.() : navigate('/entries'))}
        />
      )}
    </div>
  );
}
