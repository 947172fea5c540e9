import { createContext, useContext } from 'react';
import type { Profile, Settings, Source } from './api/types';
import { EventHub } from './lib/events';

export interface AppState {
  hub: EventHub;
  /** The selected person (profile id), when profiles exist. */
  profile: number | undefined;
  setProfile: (id: number | undefined) => void;
  /** null: the backend has no profiles (yet). */
  profiles: Profile[] | null;
  /** All sources, for names in lists and filters; null until loaded. */
  sources: Source[] | null;
  refreshSources: () => void;
  /** Connect settings (onboarding, Lighthouse, registration); null until loaded or when unknown. */
  settings: Settings | null;
  /** Reloads the settings (after registering or changing them); resolves when done. */
  refreshSettings: () => Promise<void>;
}

export const AppContext = createContext<AppState>({
  hub: new EventHub(),
  profile: undefined,
  setProfile: () => {},
  profiles: null,
  sources: null,
  refreshSources: () => {},
  settings: null,
  refreshSettings: async () => {},
});

/** True once this installation is registered with the Lighthouse in use. */
export function isRegistered(settings: Settings | null): boolean {
  return !!settings?.installation?.installation_id;
}

export function useApp(): AppState {
  return useContext(AppContext);
}

export function sourceName(sources: Source[] | null, id: number | undefined | null): string {
  if (id === undefined || id === null) return '';
  return sources?.find((s) => s.id === id)?.name ?? `Source ${id}`;
}

/**
 * Where a record came from, as a sentence part for a record's page: "Entered by me", "From <the
 * provider>", or "Imported from the file <name>" (a bare file name alone reads like a code).
 */
export function sourceProvenance(sources: Source[] | null, id: number | undefined | null): string {
  if (id === undefined || id === null) return '';
  const s = sources?.find((x) => x.id === id);
  if (!s) return `From source ${id}`;
  if (s.self) return 'Entered by me';
  if (s.kind === 'manual') return `Imported from the file ${s.name}`;
  return `From ${s.name}`;
}
