import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore, type FormEvent } from 'react';
import { getProfiles, getSettings, listSources, onUnauthorized, UNAUTHORIZED_MESSAGE } from './api/client';
import type { Profile, Settings as ConnectSettings, Source } from './api/types';
import { AppContext, type AppState } from './AppContext';
import { DATA_EVENTS, type EventHub } from './lib/events';
import type { ImportQueue } from './lib/imports';
import { href, navigate, useRoute, type Route } from './lib/router';
import { Dashboard } from './views/Dashboard';
import { Timeline } from './views/Timeline';
import { Records } from './views/Records';
import { RecordDetail } from './views/RecordDetail';
import { Labs } from './views/Labs';
import { Sources } from './views/Sources';
import { ImportView } from './views/Import';
import { Settings } from './views/Settings';
import { People } from './views/People';
import { PersonSwitcher } from './components/PersonSwitcher';
import { SearchView } from './views/Search';
import { Onboarding } from './views/Onboarding';
import { Loading } from './components/common';
import { OwnEntries } from './own/OwnEntries';
import { PrintSummary } from './own/PrintSummary';

const NAV: { path: string; label: string }[] = [
  { path: '/', label: 'Dashboard' },
  { path: '/timeline', label: 'Timeline' },
  { path: '/records', label: 'Records' },
  { path: '/labs', label: 'Labs' },
  { path: '/entries', label: 'My entries' },
  { path: '/summary', label: 'Summary' },
  { path: '/sources', label: 'Sources' },
  { path: '/import', label: 'Import' },
  { path: '/people', label: 'People' },
  { path: '/settings', label: 'Settings' },
];

const PROFILE_KEY = 'fasten.profile';

function storedProfile(): number | undefined {
  try {
    const v = localStorage.getItem(PROFILE_KEY);
    return v ? Number(v) : undefined;
  } catch {
    return undefined;
  }
}

export function App({ hub, imports }: { hub: EventHub; imports: ImportQueue }) {
  const route = useRoute();
  const [unauthorized, setUnauthorized] = useState(false);
  const [profiles, setProfiles] = useState<Profile[] | null>(null);
  const [profile, setProfileState] = useState<number | undefined>(storedProfile);
  const [sources, setSources] = useState<Source[] | null>(null);
  const [sourcesTick, setSourcesTick] = useState(0);
  const [settings, setSettings] = useState<ConnectSettings | null>(null);
  const [settingsLoaded, setSettingsLoaded] = useState(false);

  useEffect(() => onUnauthorized(() => setUnauthorized(true)), []);

  // A new page starts at the top, and keyboard and screen-reader users land on its content.
  const firstPath = useRef(true);
  useEffect(() => {
    if (firstPath.current) {
      firstPath.current = false;
      return;
    }
    window.scrollTo(0, 0);
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [route.path]);
  useEffect(() => {
    hub.start();
    return () => hub.stop();
  }, [hub]);

  useEffect(() => {
    getProfiles()
      .then((p) => {
        setProfiles(p && p.length ? p : null);
        if (!p || !p.length) setProfileState(undefined);
        else if (profile !== undefined && !p.some((x) => x.id === profile)) setProfileState(undefined);
      })
      .catch(() => setProfiles(null));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [sourcesTick]);

  const refreshSources = useCallback(() => setSourcesTick((t) => t + 1), []);

  // Connect settings decide whether the first-launch step shows. If they cannot be read, the app
  // runs without it: importing files must always work.
  const refreshSettings = useCallback(async () => {
    try {
      setSettings(await getSettings());
    } catch {
      /* keep what we had */
    } finally {
      setSettingsLoaded(true);
    }
  }, []);
  useEffect(() => {
    void refreshSettings();
  }, [refreshSettings]);
  // First launch only: no choice made yet, no installation, and no records (someone who already
  // imported files, e.g. from the command line, lands on their records; Settings still offers
  // registration).
  const onboarding =
    !!settings && !settings.onboarding_done && !settings.installation && sources !== null && sources.length === 0;
  useEffect(() => hub.on((e) => DATA_EVENTS.includes(e.type) && refreshSources()), [hub, refreshSources]);
  useEffect(() => {
    const ctrl = new AbortController();
    listSources({ profile }, ctrl.signal)
      .then(setSources)
      .catch(() => undefined);
    return () => ctrl.abort();
  }, [profile, sourcesTick]);

  const setProfile = useCallback((id: number | undefined) => {
    setProfileState(id);
    try {
      if (id === undefined) localStorage.removeItem(PROFILE_KEY);
      else localStorage.setItem(PROFILE_KEY, String(id));
    } catch {
      /* private mode */
    }
  }, []);

  const state: AppState = useMemo(
    () => ({ hub, profile, setProfile, profiles, sources, refreshSources, settings, refreshSettings }),
    [hub, profile, setProfile, profiles, sources, refreshSources, settings, refreshSettings],
  );

  if (unauthorized) return <Unauthorized />;

  return (
    <AppContext.Provider value={state}>
      <a className="skip-link" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header className="app-header">
        <div className="header-row">
          <a className="brand" href={href('/')} aria-label="Fasten, go to the dashboard">
            <svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" className="brand-mark">
              <path d="M12 21s-7.5-4.6-9.6-9.2C.9 8.4 3 4.5 6.7 4.5c2.2 0 3.6 1.2 4.3 2.4h2c.7-1.2 2.1-2.4 4.3-2.4 3.7 0 5.8 3.9 4.3 7.3C19.5 16.4 12 21 12 21z" fill="currentColor" />
              <path d="M7 12h3l1.2-2.5L13 15l1.3-3H17" fill="none" stroke="var(--bg)" strokeWidth="1.6" strokeLinecap="round" strokeLinejoin="round" />
            </svg>
            <span>Fasten</span>
          </a>
          {!onboarding && profiles && <PersonSwitcher profiles={profiles} value={profile} onChange={setProfile} />}
          {!onboarding && <SearchBox route={route} />}
          <ImportIndicator imports={imports} />
        </div>
        {!onboarding && <nav aria-label="Main">
          <ul className="nav">
            {NAV.map((n) => {
              const current = n.path === '/' ? route.path === '/' || route.path === '/dashboard' : route.path === n.path || route.path.startsWith(n.path + '/');
              return (
                <li key={n.path}>
                  <a href={href(n.path)} aria-current={current ? 'page' : undefined}>
                    {n.label}
                  </a>
                </li>
              );
            })}
          </ul>
        </nav>}
      </header>
      <main id="main" tabIndex={-1}>
        {!settingsLoaded ? (
          <div className="page">
            <Loading />
          </div>
        ) : onboarding ? (
          <Onboarding />
        ) : (
          <View route={route} imports={imports} />
        )}
      </main>
    </AppContext.Provider>
  );
}

function View({ route, imports }: { route: Route; imports: ImportQueue }) {
  const [a, b, c] = route.segments;
  switch (a ?? '') {
    case '':
    case 'dashboard':
      return <Dashboard />;
    case 'timeline':
      return <Timeline route={route} />;
    case 'records':
      if (b && c) return <RecordDetail type={b} id={c} source={route.params.get('source')} />;
      return <Records route={route} type={b} />;
    case 'labs':
      return <Labs route={route} />;
    case 'sources':
      return <Sources />;
    case 'import':
      return <ImportView imports={imports} />;
    case 'people':
      return <People route={route} />;
    case 'settings':
      return <Settings />;
    case 'search':
      return <SearchView route={route} />;
    case 'entries':
      return <OwnEntries />;
    case 'summary':
      return <PrintSummary />;
    default:
      return (
        <div className="page">
          <h1>Page not found</h1>
          <p>
            There is no page at this address. <a href={href('/')}>Go to the dashboard</a>.
          </p>
        </div>
      );
  }
}

function SearchBox({ route }: { route: Route }) {
  const current = route.path === '/search' ? route.params.get('q') ?? '' : '';
  const [q, setQ] = useState(current);
  useEffect(() => setQ(current), [current]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const v = q.trim();
    if (v) navigate('/search', { q: v });
  };
  return (
    <form role="search" className="search-box" onSubmit={submit}>
      <label htmlFor="global-search" className="visually-hidden">
        Search all records
      </label>
      <input id="global-search" type="search" placeholder="Search records" value={q} onChange={(e) => setQ(e.target.value)} autoComplete="off" />
      <button type="submit" className="btn">
        Search
      </button>
    </form>
  );
}

function ImportIndicator({ imports }: { imports: ImportQueue }) {
  const jobs = useSyncExternalStore(imports.subscribe, imports.getSnapshot);
  const active = jobs.filter((j) => j.state === 'queued' || j.state === 'uploading' || j.state === 'processing').length;
  if (!active) return null;
  return (
    <a className="import-indicator" href={href('/import')}>
      <span className="spinner" aria-hidden="true" /> Importing {active} file{active === 1 ? '' : 's'}…
    </a>
  );
}

function Unauthorized() {
  return (
    <main className="page unauthorized" id="main">
      <h1>Fasten needs its access link</h1>
      <div className="notice notice-error" role="alert">
        <p>{UNAUTHORIZED_MESSAGE}</p>
      </div>
      <p>
        When you start <code>fasten-desktop serve</code>, it prints a line like{' '}
        <code>Fasten is running at http://127.0.0.1:9300/#token=…</code>. Open that exact address; the key in it stays in this
        browser tab only.
      </p>
    </main>
  );
}
