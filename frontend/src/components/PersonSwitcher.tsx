// The person switcher in the header: "Everyone" (the household) or one person; every view then
// asks the API with ?profile=ID. The choice is remembered by App (localStorage).
import { useEffect, useId, useLayoutEffect, useRef, useState, type KeyboardEvent } from 'react';
import type { Profile } from '../api/types';
import { ageInYears, formatCount, formatDate } from '../lib/format';
import { href } from '../lib/router';
import './people.css';

/** A person's round badge: initials on their colour. */
export function PersonAvatar({ person, size = 'md' }: { person: Pick<Profile, 'name' | 'initials' | 'color'> | null; size?: 'sm' | 'md' | 'lg' }) {
  const ref = useRef<HTMLSpanElement>(null);
  const color = person?.color ?? '';
  useLayoutEffect(() => {
    // Set through the CSSOM (allowed by the page's CSP, unlike a style attribute).
    if (ref.current) ref.current.style.setProperty('--person', /^#[0-9a-fA-F]{6}$/.test(color) ? color : '');
  }, [color]);
  const initials = person ? person.initials || initialsOf(person.name) : '';
  return (
    <span ref={ref} className={`person-avatar person-avatar-${size}${person ? '' : ' person-avatar-all'}`} aria-hidden="true">
      {person ? initials : <HouseholdIcon />}
    </span>
  );
}

export function initialsOf(name: string): string {
  const words = name.split(/\s+/).filter(Boolean);
  if (words.length === 0) return '?';
  if (words.length === 1) return words[0].slice(0, 2);
  return (words[0][0] + words[words.length - 1][0]).toUpperCase();
}

function HouseholdIcon() {
  return (
    <svg viewBox="0 0 24 24" width="60%" height="60%" aria-hidden="true">
      <circle cx="8" cy="8" r="3.2" fill="currentColor" />
      <circle cx="16.5" cy="9.5" r="2.6" fill="currentColor" />
      <path d="M2.5 19c0-3.3 2.5-5.6 5.5-5.6s5.5 2.3 5.5 5.6z M12.8 19c.3-2.6 1.9-4.2 3.7-4.2 2.4 0 4.5 1.7 4.5 4.2z" fill="currentColor" />
    </svg>
  );
}

/**
 * "9 years" from a birth date; for someone who died, "Died 24 Nov 1998 (aged 62)" – no age
 * counting up. "" when nothing is known.
 */
export function personAge(p: Pick<Profile, 'birth_date' | 'deceased'>): string {
  if (p.deceased) {
    if (typeof p.deceased === 'string') {
      const aged = p.birth_date ? ageInYears(p.birth_date, new Date(p.deceased)) : null;
      return `Died ${formatDate(p.deceased)}${aged !== null ? ` (aged ${aged})` : ''}`;
    }
    return 'Deceased';
  }
  const age = p.birth_date ? ageInYears(p.birth_date) : null;
  return age === null ? '' : `${age} ${age === 1 ? 'year' : 'years'}`;
}

/** "9 years · 215 records" style facts. */
export function personFacts(p: Profile): string {
  const parts: string[] = [];
  const age = personAge(p);
  if (age) parts.push(age);
  if (p.resource_count !== undefined) parts.push(`${formatCount(p.resource_count)} records`);
  return parts.join(' · ');
}

export function PersonSwitcher({
  profiles,
  value,
  onChange,
}: {
  profiles: Profile[];
  value: number | undefined;
  onChange: (id: number | undefined) => void;
}) {
  const [open, setOpen] = useState(false);
  const buttonRef = useRef<HTMLButtonElement>(null);
  const menuRef = useRef<HTMLDivElement>(null);
  const menuId = useId();
  const current = profiles.find((p) => p.id === value) ?? null;

  // Close on a click outside.
  useEffect(() => {
    if (!open) return;
    const onDown = (e: MouseEvent) => {
      const t = e.target as Node;
      if (!menuRef.current?.contains(t) && !buttonRef.current?.contains(t)) setOpen(false);
    };
    document.addEventListener('mousedown', onDown);
    return () => document.removeEventListener('mousedown', onDown);
  }, [open]);
  // Focus the checked item when the menu opens.
  useEffect(() => {
    if (!open) return;
    const items = menuRef.current?.querySelectorAll<HTMLElement>('[role="menuitemradio"], [role="menuitem"]');
    const checked = menuRef.current?.querySelector<HTMLElement>('[aria-checked="true"]');
    (checked ?? items?.[0])?.focus();
  }, [open]);

  const choose = (id: number | undefined) => {
    onChange(id);
    setOpen(false);
    buttonRef.current?.focus();
  };
  const onMenuKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const items = Array.from(menuRef.current?.querySelectorAll<HTMLElement>('[role="menuitemradio"], [role="menuitem"]') ?? []);
    const i = items.indexOf(document.activeElement as HTMLElement);
    switch (e.key) {
      case 'ArrowDown':
        e.preventDefault();
        items[(i + 1) % items.length]?.focus();
        break;
      case 'ArrowUp':
        e.preventDefault();
        items[(i - 1 + items.length) % items.length]?.focus();
        break;
      case 'Home':
        e.preventDefault();
        items[0]?.focus();
        break;
      case 'End':
        e.preventDefault();
        items[items.length - 1]?.focus();
        break;
      case 'Escape':
        e.preventDefault();
        setOpen(false);
        buttonRef.current?.focus();
        break;
      case 'Tab':
        setOpen(false);
        break;
    }
  };

  return (
    <div className="person-switcher">
      <button
        ref={buttonRef}
        type="button"
        className="person-switcher-button"
        aria-haspopup="menu"
        aria-expanded={open}
        aria-controls={open ? menuId : undefined}
        aria-label={`Person: ${current ? current.name : 'Everyone'}. Change person`}
        data-testid="person-switcher"
        onClick={() => setOpen((o) => !o)}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown' && !open) {
            e.preventDefault();
            setOpen(true);
          }
        }}
      >
        <PersonAvatar person={current} size="sm" />
        <span className="person-switcher-name">{current ? current.name : 'Everyone'}</span>
        <svg className="person-switcher-caret" viewBox="0 0 12 12" width="12" height="12" aria-hidden="true">
          <path d="M2.5 4.5 6 8l3.5-3.5" fill="none" stroke="currentColor" strokeWidth="1.6" strokeLinecap="round" strokeLinejoin="round" />
        </svg>
      </button>
      {open && (
        <div ref={menuRef} id={menuId} className="person-menu" role="menu" aria-label="Show the records of" onKeyDown={onMenuKey}>
          <button type="button" role="menuitemradio" aria-checked={current === null} className="person-menu-item" onClick={() => choose(undefined)} tabIndex={-1}>
            <PersonAvatar person={null} />
            <span className="person-menu-text">
              <span className="person-menu-name">Everyone</span>
              <span className="person-menu-facts">
                The household: {profiles.length} {profiles.length === 1 ? 'person' : 'people'}
              </span>
            </span>
          </button>
          {profiles.map((p) => (
            <button
              key={p.id}
              type="button"
              role="menuitemradio"
              aria-checked={current?.id === p.id}
              className="person-menu-item"
              data-profile-id={p.id}
              onClick={() => choose(p.id)}
              tabIndex={-1}
            >
              <PersonAvatar person={p} />
              <span className="person-menu-text">
                <span className="person-menu-name">{p.name}</span>
                <span className="person-menu-facts">{personFacts(p)}</span>
              </span>
            </button>
          ))}
          <div className="person-menu-sep" role="separator" />
          <a role="menuitem" className="person-menu-item person-menu-link" href={href('/people')} onClick={() => setOpen(false)} tabIndex={-1}>
            Manage people…
          </a>
        </div>
      )}
    </div>
  );
}
