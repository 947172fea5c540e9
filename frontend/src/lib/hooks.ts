import { useCallback, useContext, useEffect, useRef, useState } from 'react';
import { AppContext } from '../AppContext';
import { DATA_EVENTS, type AppEvent } from './events';

export interface AsyncState<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `fn` when deps change (aborting the previous run), and again after a data event
 * (import done, sync done, resources changed) unless `live` is false.
 */
export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[], live = true): AsyncState<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const reload = useCallback(() => setTick((t) => t + 1), []);
  useDataEvents(live ? reload : undefined);
  useEffect(() => {
    const ctrl = new AbortController();
    setLoading(true);
    fnRef
      .current(ctrl.signal)
      .then((d) => {
        if (ctrl.signal.aborted) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      })
      .catch((e) => {
        if (ctrl.signal.aborted) return;
        setError(e);
        setLoading(false);
      });
    return () => ctrl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { data, error, loading, reload };
}

/** Calls `fn` after events that may change stored records. */
export function useDataEvents(fn: ((e: AppEvent) => void) | undefined): void {
  const { hub } = useContext(AppContext);
  const ref = useRef(fn);
  ref.current = fn;
  const enabled = !!fn;
  useEffect(() => {
    if (!enabled) return;
    return hub.on((e) => {
      if (DATA_EVENTS.includes(e.type)) ref.current?.(e);
    });
  }, [hub, enabled]);
}

export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const id = setTimeout(() => setV(value), ms);
    return () => clearTimeout(id);
  }, [value, ms]);
  return v;
}

/** Sets document.title for the current view. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Fasten` : 'Fasten';
  }, [title]);
}
