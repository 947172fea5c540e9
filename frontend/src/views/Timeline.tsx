import { useCallback, useEffect, useRef, useState } from 'react';
import { getCounts, getTimeline } from '../api/client';
import type { ResourceItem } from '../api/types';
import { sourceName, useApp } from '../AppContext';
import { ErrorMessage, ItemPerson, Loading, ResourceLink, ResultFlag, TypeBadge } from '../components/common';
import { formatDate, monthHeading } from '../lib/format';
import { useAsync, useDataEvents, useDebounced, useTitle } from '../lib/hooks';
import { NOT_EVENTS } from '../lib/names';
import { orderedTypes, summaryValue, typeInfo } from '../lib/resources';
import { navigate, type Route } from '../lib/router';

const PAGE = 50;

export function Timeline({ route }: { route: Route }) {
  useTitle('Timeline');
  const { profile, sources } = useApp();
  const types = (route.params.get('types') ?? '').split(',').filter(Boolean);
  const typesKey = types.join(',');
  const source = route.params.get('source') ?? '';
  const qParam = route.params.get('q') ?? '';
  const [q, setQ] = useState(qParam);
  const dq = useDebounced(q, 350);

  const setParams = useCallback(
    (p: { types?: string; source?: string; q?: string }) => {
      const next = { types: typesKey, source, q: qParam, ...p };
      navigate('/timeline', next, true);
    },
    [typesKey, source, qParam],
  );

  useEffect(() => {
    if (dq.trim() !== qParam) setParams({ q: dq.trim() });
  }, [dq, qParam, setParams]);

  const counts = useAsync((signal) => getCounts({ profile }, signal), [profile]);
  const [items, setItems] = useState<ResourceItem[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const [done, setDone] = useState(false);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  const gen = useRef(0);
  // The query the list shows now, and the cursor of its last page. A "load more" from before a
  // change of filter or person (an observer still holding the old callback and cursor) must not
  // append a page of another query, nor continue this query from another query's cursor.
  const query = `${typesKey}|${source}|${qParam}|${profile ?? ''}`;
  const queryRef = useRef(query);
  queryRef.current = query;
  const cursorRef = useRef<string | undefined>(undefined);
  useDataEvents(() => setTick((t) => t + 1));

  const load = useCallback(
    async (reset: boolean, from: string | undefined) => {
      const mine = `${typesKey}|${source}|${qParam}|${profile ?? ''}`;
      if (!reset && (mine !== queryRef.current || !from || from !== cursorRef.current)) return;
      if (!reset) cursorRef.current = undefined; // taken: a second call with it does nothing
      const g = reset ? ++gen.current : gen.current;
      setLoading(true);
      setError(undefined);
      try {
        const page = await getTimeline({
          types: typesKey ? typesKey.split(',') : undefined,
          source: source ? Number(source) : undefined,
          q: qParam || undefined,
          profile,
          cursor: reset ? undefined : from,
          limit: PAGE,
        });
        if (g !== gen.current || mine !== queryRef.current) return;
        cursorRef.current = page.next_cursor;
        setItems((prev) => (reset ? page.items : [...prev, ...page.items]));
        setCursor(page.next_cursor);
        setDone(!page.next_cursor);
      } catch (e) {
        if (g === gen.current) {
          if (!reset && mine === queryRef.current) cursorRef.current = from; // may be tried again
          setError(e);
        }
      } finally {
        if (g === gen.current) setLoading(false);
      }
    },
    [typesKey, source, qParam, profile],
  );

  useEffect(() => {
    cursorRef.current = undefined;
    setItems([]);
    setCursor(undefined);
    setDone(false);
    void load(true, undefined);
  }, [load, tick]);

  const loadMore = useCallback(() => {
    if (!loading && !done && cursor && !error) void load(false, cursor);
  }, [loading, done, cursor, error, load]);

  // Infinite scroll: load the next page when the end of the list comes into view.
  const sentinel = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = sentinel.current;
    if (!el || typeof IntersectionObserver === 'undefined') return;
    const io = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadMore(), { rootMargin: '600px' });
    io.observe(el);
    return () => io.disconnect();
  }, [loadMore]);

  // Directory entries and a visit's costs are not events (the API leaves them out too).
  const available = orderedTypes(counts.data ?? {}).filter((t) => !NOT_EVENTS.has(t) || types.includes(t));
  const toggleType = (t: string) => {
    const set = new Set(types);
    if (set.has(t)) set.delete(t);
    else set.add(t);
    setParams({ types: [...set].join(',') });
  };

  // Where a record came from helps only among several providers; a file's name does not.
  const providers = (sources ?? []).filter((x) => x.kind === 'provider');
  const showSource = (id: number) => providers.length > 1 && providers.some((x) => x.id === id);

  // Group by month, newest first (the API's order).
  const groups: { heading: string; items: ResourceItem[] }[] = [];
  for (const it of items) {
    const h = monthHeading(it.date);
    const last = groups[groups.length - 1];
    if (last && last.heading === h) last.items.push(it);
    else groups.push({ heading: h, items: [it] });
  }

  return (
    <div className="page timeline">
      <h1>Timeline</h1>
      <div className="filters" role="group" aria-label="Filter the timeline">
        <label className="field">
          <span>Search in the timeline</span>
          <input type="search" value={q} onChange={(e) => setQ(e.target.value)} placeholder="e.g. glucose, flu, Hospital" />
        </label>
        <label className="field">
          <span>Source</span>
          <select value={source} onChange={(e) => setParams({ source: e.target.value })}>
            <option value="">All sources</option>
            {(sources ?? []).map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      {available.length > 0 && (
        <div className="chips" role="group" aria-label="Types shown">
          <button type="button" className="chip" aria-pressed={types.length === 0} onClick={() => setParams({ types: '' })}>
            All types
          </button>
          {available.map((t) => (
            <button key={t} type="button" className="chip" aria-pressed={types.includes(t)} onClick={() => toggleType(t)}>
              {typeInfo(t).label}
            </button>
          ))}
        </div>
      )}
      {groups.length === 0 && !loading && !error && <p className="muted">No records match these filters.</p>}
      <ol className="tl" aria-label="Records by date, newest first">
        {groups.map((g, gi) => (
          <li key={g.heading + gi} className="tl-group">
            <h2 className="tl-heading">{g.heading}</h2>
            <ul className="tl-items">
              {g.items.map((it) => (
                <li key={it.type + '/' + it.id + '/' + it.source_id} className="tl-item">
                  <span className="tl-date">{formatDate(it.date) || '—'}</span>
                  <TypeBadge type={it.type} />
                  <span className="tl-title">
                    <ResourceLink item={it} />
                    {summaryValue(it) && <span className="tl-value"> {summaryValue(it)}</span>} <ResultFlag item={it} /> <ItemPerson profileId={it.profile_id} />
                  </span>
                  {showSource(it.source_id) && <span className="tl-source muted small">{sourceName(sources, it.source_id)}</span>}
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ol>
      <div ref={sentinel} className="tl-end">
        {error ? <ErrorMessage error={error} onRetry={() => load(items.length === 0, cursor)} /> : null}
        {loading && <Loading label={items.length ? 'Loading more…' : 'Loading the timeline…'} />}
        {!loading && !error && !done && items.length > 0 && (
          <button type="button" className="btn" onClick={loadMore}>
            Load more
          </button>
        )}
        {done && items.length > 0 && <p className="muted">That is everything: {items.length} records.</p>}
      </div>
    </div>
  );
}
