// A tiny hash router: `#/records/Observation?sort=date`. Hash routing works the same in the Wails
// window (asset server) and in serve mode, and needs no server-side fallback for deep links.
import { useEffect, useState } from 'react';

export interface Route {
  path: string;
  segments: string[];
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  let h = hash.startsWith('#') ? hash.slice(1) : hash;
  if (!h.startsWith('/')) h = '/' + h;
  const q = h.indexOf('?');
  const rawPath = q >= 0 ? h.slice(0, q) : h;
  const params = new URLSearchParams(q >= 0 ? h.slice(q + 1) : '');
  const segments = rawPath
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  return { path: '/' + segments.join('/'), segments, params };
}

export type Params = Record<string, string | number | undefined | null | false>;

export function href(path: string, params?: Params): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    p.set(k, String(v));
  }
  const encoded = path
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
  const qs = p.toString();
  return '#' + encoded + (qs ? '?' + qs : '');
}

export function navigate(path: string, params?: Params, replace = false): void {
  const h = href(path, params);
  if (replace) {
    history.replaceState(history.state, '', location.pathname + location.search + h);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  } else {
    location.hash = h;
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
