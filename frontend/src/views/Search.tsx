import { useCallback, useEffect, useRef, useState } from 'react';
import { search } from '../api/client';
import type { ResourceItem } from '../api/types';
import { useApp } from '../AppContext';
import { ErrorMessage, ItemPerson, Loading, ResourceLink, ResultFlag, TypeBadge } from '../components/common';
import { formatDate } from '../lib/format';
import { useTitle } from '../lib/hooks';
import { summaryValue } from '../lib/resources';
import type { Route } from '../lib/router';

export function SearchView({ route }: { route: Route }) {
  const q = (route.params.get('q') ?? '').trim();
  useTitle(q ? `Search: ${q}` : 'Search');
  const { profile } = useApp();
  const [items, setItems] = useState<ResourceItem[]>([]);
  const [cursor, setCursor] = useState<string | undefined>();
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>();
  const gen = useRef(0);

  const load = useCallback(
    async (from?: string) => {
      const g = from ? gen.current : ++gen.current;
      if (!q) return;
      setLoading(true);
      setError(undefined);
      try {
        const page = await search({ q, profile, cursor: from, limit: 50 });
        if (g !== gen.current) return;
        setItems((prev) => (from ? [...prev, ...page.items] : page.items));
        setCursor(page.next_cursor);
      } catch (e) {
        if (g === gen.current) setError(e);
      } finally {
        if (g === gen.current) setLoading(false);
      }
    },
    [q, profile],
  );

  useEffect(() => {
    setItems([]);
    setCursor(undefined);
    void load();
  }, [load]);

  return (
    <div className="page search">
      <h1>{q ? <>Results for “{q}”</> : 'Search'}</h1>
      {!q && <p>Type what you are looking for in the search box at the top: a condition, a medicine, a test, a doctor…</p>}
      {error ? <ErrorMessage error={error} onRetry={() => load(cursor)} /> : null}
      {q && !loading && !error && items.length === 0 && <p>Nothing found for “{q}”. Try another word, or a shorter one.</p>}
      <ul className="results" aria-label="Search results">
        {items.map((it) => (
          <li key={it.type + '/' + it.id + '/' + it.source_id} className="result-item">
            <TypeBadge type={it.type} />
            <span className="result-title">
              <ResourceLink item={it} />
              {summaryValue(it) && <span className="muted"> {summaryValue(it)}</span>} <ResultFlag item={it} />
            </span>
            <ItemPerson profileId={it.profile_id} always />
            <span className="muted nowrap">{formatDate(it.date)}</span>
          </li>
        ))}
      </ul>
      {loading && <Loading label="Searching…" />}
      {!loading && cursor && (
        <button type="button" className="btn" onClick={() => load(cursor)}>
          More results
        </button>
      )}
    </div>
  );
}
