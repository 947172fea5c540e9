import { useEffect, useId, useRef, type ReactNode } from 'react';
import { ApiError } from '../api/client';
import type { ResourceItem } from '../api/types';
import { href } from '../lib/router';
import { resourceTitle, typeInfo } from '../lib/resources';
import { useApp } from '../AppContext';
import { flagText, isAbnormal, resultFlag } from '../lib/names';
import type { Observation } from 'fhir/r4';
import { PersonAvatar } from './PersonSwitcher';

/** An error in plain words: the API's own message (or every OperationOutcome diagnostic). */
export function ErrorMessage({ error, title, onRetry }: { error: unknown; title?: string; onRetry?: () => void }) {
  if (!error) return null;
  let message = 'Something went wrong.';
  let details: string[] = [];
  if (error instanceof ApiError) {
    message = error.message;
    details = error.details.length > 1 ? error.details : [];
  } else if (error instanceof Error && error.message) {
    message = error.message;
  } else if (typeof error === 'string') {
    message = error;
  }
  return (
    <div className="notice notice-error" role="alert">
      {title && <p className="notice-title">{title}</p>}
      <p className="prewrap">{message}</p>
      {details.length > 0 && (
        <ul className="issues">
          {details.map((d, i) => (
            <li key={i} className="prewrap">
              {d}
            </li>
          ))}
        </ul>
      )}
      {onRetry && (
        <button type="button" className="btn" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

export function detailHref(item: { type: string; id: string; source_id?: number }): string {
  return href(`/records/${item.type}/${item.id}`, { source: item.source_id });
}

export function ResourceLink({ item, children }: { item: ResourceItem; children?: ReactNode }) {
  return <a href={detailHref(item)}>{children ?? resourceTitle(item)}</a>;
}

export function TypeBadge({ type }: { type: string }) {
  return (
    <span className={`badge badge-${type}`} title={type}>
      {typeInfo(type).singular}
    </span>
  );
}

export function Section({ title, children, actions, id }: { title: string; children: ReactNode; actions?: ReactNode; id?: string }) {
  const hid = useId();
  return (
    <section className="card" aria-labelledby={hid} id={id}>
      <div className="card-head">
        <h2 id={hid}>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** A modal dialog: focus moves in, Escape closes, focus goes back where it was. */
export function Modal({
  title,
  children,
  onClose,
  actions,
}: {
  title: string;
  children: ReactNode;
  onClose: () => void;
  actions: ReactNode;
}) {
  const ref = useRef<HTMLDivElement>(null);
  const hid = useId();
  useEffect(() => {
    const prev = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>('[data-autofocus]') ?? el?.querySelector<HTMLElement>('button, [href], input, select, textarea');
    first?.focus();
    return () => prev?.focus?.();
  }, []);
  const onKeyDown = (e: React.KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      onClose();
      return;
    }
    if (e.key !== 'Tab' || !ref.current) return;
    const nodes = ref.current.querySelectorAll<HTMLElement>('button:not([disabled]), [href], input:not([disabled]), select, textarea');
    if (nodes.length === 0) return;
    const first = nodes[0];
    const last = nodes[nodes.length - 1];
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };
  return (
    <div className="modal-backdrop">
      <div className="modal" role="dialog" aria-modal="true" aria-labelledby={hid} ref={ref} onKeyDown={onKeyDown}>
        <h2 id={hid}>{title}</h2>
        <div className="modal-body">{children}</div>
        <div className="modal-actions">{actions}</div>
      </div>
    </div>
  );
}

export function ProgressBar({ value, max, label }: { value?: number; max?: number; label: string }) {
  const determinate = value !== undefined && max !== undefined && max > 0;
  return (
    <progress
      className={determinate ? 'progress' : 'progress progress-indeterminate'}
      value={determinate ? Math.min(value, max) : undefined}
      max={determinate ? max : undefined}
      aria-label={label}
    />
  );
}

/**
 * Whose record this is, beside an item, when the page shows everyone's records and the household
 * has several people (a family must not read someone else's diagnosis as their own).
 */
export function ItemPerson({ profileId, always = false }: { profileId?: number | null; always?: boolean }) {
  const { profile, profiles } = useApp();
  if (!profiles || profiles.length < 2 || !profileId || (profile !== undefined && !always)) return null;
  const p = profiles.find((x) => x.id === profileId);
  if (!p) return null;
  return (
    <span className="item-person" data-testid="item-person">
      <PersonAvatar person={p} size="sm" />
      {p.name}
    </span>
  );
}

/** A result's flag (High, Low, Abnormal...) when it is out of range; nothing otherwise. */
export function ResultFlag({ item }: { item: { type: string; resource: unknown } }) {
  if (item.type !== 'Observation') return null;
  const f = resultFlag(item.resource as Observation);
  if (!isAbnormal(f)) return null;
  return <span className={`flag flag-${f}`}>{flagText(f)}</span>;
}
