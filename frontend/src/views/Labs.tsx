import { useEffect, useMemo, useRef, useState } from 'react';
import type { Observation } from 'fhir/r4';
import { fetchAllPages, getSummary, listResources } from '../api/client';
import type { ResourceItem } from '../api/types';
import { sourceName, useApp } from '../AppContext';
import { ErrorMessage, Loading, ResultFlag, detailHref } from '../components/common';
import { isAbnormal, resultFlag } from '../lib/names';
import { LabChart } from '../components/LabChart';
import { codeKey, formatDate, formatNumber, formatRange } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { prepareLabData } from '../lib/labs';
import { resourceTitle, summaryValue } from '../lib/resources';
import { href, navigate, type Route } from '../lib/router';

interface Test {
  code: string;
  name: string;
  group: 'Labs' | 'Vitals';
  latest: ResourceItem;
}

export function Labs({ route }: { route: Route }) {
  const { profile } = useApp();
  const [filter, setFilter] = useState('');
  const summary = useAsync((signal) => getSummary({ profile }, signal), [profile]);

  const tests: Test[] = useMemo(() => {
    const out: Test[] = [];
    const seen = new Set<string>();
    const add = (items: ResourceItem[] | undefined, group: Test['group']) => {
      for (const it of items ?? []) {
        const code = codeKey((it.resource as Observation).code);
        if (!code || seen.has(code)) continue;
        seen.add(code);
        out.push({ code, name: resourceTitle(it), group, latest: it });
      }
    };
    add(summary.data?.labs, 'Labs');
    add(summary.data?.vitals, 'Vitals');
    // Most recent results first, the abnormal ones of a day before the normal ones.
    const day = (t: Test) => (t.latest.date ?? '').slice(0, 10);
    const abnormal = (t: Test) => (isAbnormal(resultFlag(t.latest.resource as Observation)) ? 1 : 0);
    return out.sort(
      (a, b) =>
        (a.group === b.group ? 0 : a.group === 'Labs' ? -1 : 1) ||
        day(b).localeCompare(day(a)) ||
        abnormal(b) - abnormal(a) ||
        a.name.localeCompare(b.name),
    );
  }, [summary.data]);

  const selected = route.params.get('code') ?? tests[0]?.code ?? '';
  const current = tests.find((t) => t.code === selected);
  useTitle(current ? `${current.name} · Labs` : 'Labs');
  const shown = tests.filter((t) => t.name.toLowerCase().includes(filter.trim().toLowerCase()));
  // The selected test is in view in the list (opened from a link, a long list).
  const navRef = useRef<HTMLElement>(null);
  useEffect(() => {
    const a = navRef.current?.querySelector<HTMLElement>('[aria-current="page"]');
    a?.scrollIntoView?.({ block: 'nearest' });
  }, [selected, tests.length]);

  return (
    <div className="page labs">
      <h1>Labs and vitals</h1>
      {summary.error ? <ErrorMessage error={summary.error} onRetry={summary.reload} /> : null}
      {!summary.data && !summary.error && <Loading />}
      {summary.data && tests.length === 0 && (
        <p className="muted">
          No lab results or vital signs with values yet. <a href={href('/import')}>Import a file</a> to see charts here.
        </p>
      )}
      {tests.length > 0 && (
        <div className="labs-layout">
          <label className="field only-narrow">
            <span>Test</span>
            <select value={selected} onChange={(e) => navigate('/labs', { code: e.target.value })}>
              {(['Labs', 'Vitals'] as const).map((g) => (
                <optgroup key={g} label={g === 'Labs' ? 'Lab results' : 'Vital signs'}>
                  {tests
                    .filter((t) => t.group === g)
                    .map((t) => (
                      <option key={t.code} value={t.code}>
                        {t.name}
                      </option>
                    ))}
                </optgroup>
              ))}
            </select>
          </label>
          <nav aria-label="Tests" className="test-list only-wide" ref={navRef}>
            <label className="field">
              <span>Find a test</span>
              <input type="search" value={filter} onChange={(e) => setFilter(e.target.value)} />
            </label>
            {(['Labs', 'Vitals'] as const).map((g) => {
              const list = shown.filter((t) => t.group === g);
              if (list.length === 0) return null;
              return (
                <div key={g}>
                  <h2 className="list-heading">{g === 'Labs' ? 'Lab results, most recent first' : 'Vital signs, most recent first'}</h2>
                  <ul>
                    {list.map((t) => (
                      <li key={t.code}>
                        <a href={href('/labs', { code: t.code })} aria-current={t.code === selected ? 'page' : undefined}>
                          <span>{t.name}</span>
                          <span className="muted small">
                            {summaryValue(t.latest)} <ResultFlag item={t.latest} /> · {formatDate(t.latest.date)}
                          </span>
                        </a>
                      </li>
                    ))}
                  </ul>
                </div>
              );
            })}
          </nav>
          <div className="labs-main">{selected && <TestChart code={selected} name={current?.name} />}</div>
        </div>
      )}
    </div>
  );
}

function TestChart({ code, name }: { code: string; name?: string }) {
  const { profile, sources } = useApp();
  const st = useAsync(
    (signal) => fetchAllPages((cursor) => listResources({ type: 'Observation', code, sort: 'date', limit: 500, cursor, profile }, signal), 5000),
    [code, profile],
  );
  const data = useMemo(() => (st.data ? prepareLabData(st.data.items) : null), [st.data]);
  const rows = useMemo(() => (st.data ? [...st.data.items].reverse() : []), [st.data]);
  return (
    <section className="card" aria-labelledby="chart-h" data-testid="lab-chart">
      <h2 id="chart-h">{data?.title || name || 'Results'}</h2>
      <p className="muted small">Code {code.split('|').pop()}</p>
      {st.error ? <ErrorMessage error={st.error} onRetry={st.reload} /> : null}
      {!st.data && !st.error && <Loading label="Loading values…" />}
      {data && st.data && st.data.items.length === 0 && <p>No results for this test.</p>}
      {data && st.data && st.data.items.length > 0 && <LabChart data={data} />}
      {st.data?.truncated && <p className="muted">Showing the first {st.data.items.length} values.</p>}
      {data && data.skipped > 0 && (
        <p className="muted small">
          {data.skipped} result{data.skipped === 1 ? '' : 's'} without a number or a date {data.skipped === 1 ? 'is' : 'are'} listed below but not drawn.
        </p>
      )}
      {rows.length > 0 && (
        <details className="values">
          <summary>All {rows.length} values as a table</summary>
          <div className="table-wrap">
            <table className="data">
              <thead>
                <tr>
                  <th scope="col">Date</th>
                  <th scope="col" className="num">Value</th>
                  <th scope="col">Normal range</th>
                  {(sources?.length ?? 0) > 1 && <th scope="col">Source</th>}
                </tr>
              </thead>
              <tbody>
                {rows.map((it) => {
                  const o = it.resource as Observation;
                  return (
                    <tr key={it.id + '/' + it.source_id}>
                      <td>
                        <a href={detailHref(it)}>{formatDate(it.date)}</a>
                      </td>
                      <td className="num">
                        {summaryValue(it) || (o.valueQuantity?.value !== undefined ? formatNumber(o.valueQuantity.value) : '')} <ResultFlag item={it} />
                      </td>
                      <td>{(o.referenceRange ?? []).map((r) => r.text || formatRange({ low: r.low, high: r.high })).join('; ')}</td>
                      {(sources?.length ?? 0) > 1 && <td>{sourceName(sources, it.source_id)}</td>}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        </details>
      )}
    </section>
  );
}
