import type { FhirResource } from 'fhir/r4';
import { getCounts, listResources } from '../api/client';
import type { ResourceItem, ResourceSort } from '../api/types';
import { sourceName, useApp } from '../AppContext';
import { ErrorMessage, ItemPerson, Loading, ResourceLink, ResultFlag } from '../components/common';
import { capitalise, conceptText, conceptsText, formatCount, formatDate } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { orderedTypes, summaryValue, typeInfo } from '../lib/resources';
import { href, navigate, type Route } from '../lib/router';

const SIZES = [25, 50, 100];

interface Column {
  label: string;
  value: (it: ResourceItem) => string;
  num?: boolean;
}

/** The type-specific column(s) shown between title and date. */
function extraColumns(type: string): Column[] {
  const status = (it: ResourceItem) => capitalise((it.resource as { status?: string }).status);
  switch (type) {
    case 'Observation':
      return [
        { label: 'Value', value: (it) => summaryValue(it), num: true },
        { label: 'Category', value: (it) => conceptsText((it.resource as FhirResource & { category?: never }).category) },
      ];
    case 'Condition':
      return [{ label: 'Status', value: (it) => summaryValue(it) }];
    case 'AllergyIntolerance':
      return [{ label: 'Criticality', value: (it) => capitalise((it.resource as { criticality?: string }).criticality) }];
    case 'Encounter':
      return [{ label: 'Kind', value: (it) => summaryValue(it) }];
    case 'Claim':
    case 'ExplanationOfBenefit':
      return [
        { label: 'Total', value: (it) => summaryValue(it), num: true },
        { label: 'Status', value: status },
      ];
    case 'ImagingStudy':
      return [{ label: 'Study', value: (it) => summaryValue(it) }];
    case 'DiagnosticReport':
      return [
        { label: 'Category', value: (it) => conceptsText((it.resource as { category?: never }).category) },
        { label: 'Status', value: status },
      ];
    case 'DocumentReference':
      return [{ label: 'Type', value: (it) => conceptText((it.resource as { type?: never }).type) }];
    default:
      return [{ label: 'Status', value: status }];
  }
}

export function Records({ route, type }: { route: Route; type?: string }) {
  const { profile } = useApp();
  useTitle(type ? typeInfo(type).label : 'Records');
  const counts = useAsync((signal) => getCounts({ profile }, signal), [profile]);
  const types = orderedTypes(counts.data ?? {});

  return (
    <div className="page records">
      <h1>{type ? typeInfo(type).label : 'Records'}</h1>
      <div className="records-layout">
        <label className="field only-narrow">
          <span>Type of record</span>
          <select value={type ?? ''} onChange={(e) => navigate(e.target.value ? `/records/${e.target.value}` : '/records')}>
            <option value="">Choose…</option>
            {types.map((t) => (
              <option key={t} value={t}>
                {typeInfo(t).label} ({formatCount(counts.data![t])})
              </option>
            ))}
          </select>
        </label>
        <nav aria-label="Record types" className="type-list only-wide">
          {counts.error ? <ErrorMessage error={counts.error} onRetry={counts.reload} /> : null}
          {!counts.data && !counts.error && <Loading />}
          <ul>
            {types.map((t) => (
              <li key={t}>
                <a href={href(`/records/${t}`)} aria-current={t === type ? 'page' : undefined}>
                  <span>{typeInfo(t).label}</span>
                  <span className="count">{formatCount(counts.data![t])}</span>
                </a>
              </li>
            ))}
          </ul>
          {counts.data && types.length === 0 && (
            <p className="muted">
              No records yet. <a href={href('/import')}>Import a file</a>.
            </p>
          )}
        </nav>
        <div className="records-main">
          {type ? (
            <RecordTable type={type} route={route} total={counts.data?.[type]} />
          ) : (
            counts.data && types.length > 0 && <p>Choose a type of record on the left.</p>
          )}
        </div>
      </div>
    </div>
  );
}

function RecordTable({ type, route, total }: { type: string; route: Route; total?: number }) {
  const { profile, sources } = useApp();
  const sort = (route.params.get('sort') as ResourceSort | null) ?? '-date';
  const limit = Number(route.params.get('limit')) || 50;
  const source = route.params.get('source') ?? '';
  // Cursor paging: `cursors` holds the cursor of every page before the current one.
  const cursors = (route.params.get('cursors') ?? '').split(' ').filter(Boolean);
  const cursor = cursors[cursors.length - 1];
  const pageNo = cursors.length + 1;

  const page = useAsync(
    (signal) => listResources({ type, sort, limit, cursor, profile, source: source ? Number(source) : undefined }, signal),
    [type, sort, limit, cursor, profile, source],
  );

  const go = (p: { sort?: string; limit?: number; source?: string; cursors?: string[] }) =>
    navigate(`/records/${type}`, {
      sort: p.sort ?? sort,
      limit: p.limit ?? limit,
      source: p.source ?? source,
      cursors: (p.cursors ?? cursors).join(' '),
    });

  const sortButton = (label: string, field: 'date' | 'title') => {
    const active = sort === field || sort === '-' + field;
    const desc = sort === '-' + field;
    const next = active ? (desc ? field : '-' + field) : field === 'date' ? '-date' : 'title';
    return (
      <th scope="col" aria-sort={active ? (desc ? 'descending' : 'ascending') : 'none'}>
        <button type="button" className="sort" onClick={() => go({ sort: next, cursors: [] })}>
          {label}
          <span aria-hidden="true" className="sort-mark">
            {active ? (desc ? ' ▼' : ' ▲') : ' ↕'}
          </span>
        </button>
      </th>
    );
  };

  const cols = extraColumns(type);
  const items = page.data?.items ?? [];
  const first = (pageNo - 1) * limit + 1;

  return (
    <div>
      <div className="table-tools">
        <label className="field inline">
          <span>Source</span>
          <select value={source} onChange={(e) => go({ source: e.target.value, cursors: [] })}>
            <option value="">All sources</option>
            {(sources ?? []).map((s) => (
              <option key={s.id} value={s.id}>
                {s.name}
              </option>
            ))}
          </select>
        </label>
        <label className="field inline">
          <span>Rows per page</span>
          <select value={limit} onChange={(e) => go({ limit: Number(e.target.value), cursors: [] })}>
            {SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </div>
      {page.error ? <ErrorMessage error={page.error} onRetry={page.reload} /> : null}
      <div className="table-wrap">
        <table className="data" aria-busy={page.loading}>
          <caption className="visually-hidden">
            {typeInfo(type).label}, page {pageNo}
          </caption>
          <thead>
            <tr>
              {sortButton('Name', 'title')}
              {cols.map((c) => (
                <th key={c.label} scope="col" className={c.num ? 'num' : undefined}>
                  {c.label}
                </th>
              ))}
              {sortButton('Date', 'date')}
              {(sources?.length ?? 0) > 1 && <th scope="col">Source</th>}
            </tr>
          </thead>
          <tbody>
            {items.map((it) => (
              <tr key={it.id + '/' + it.source_id}>
                <td>
                  <ResourceLink item={it} /> <ItemPerson profileId={it.profile_id} />
                </td>
                {cols.map((c, ci) => (
                  <td key={c.label} className={c.num ? 'num' : undefined}>
                    {c.value(it)}
                    {ci === 0 && it.type === 'Observation' && (
                      <>
                        {' '}
                        <ResultFlag item={it} />
                      </>
                    )}
                  </td>
                ))}
                <td className="nowrap">{formatDate(it.date)}</td>
                {(sources?.length ?? 0) > 1 && <td>{sourceName(sources, it.source_id)}</td>}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {page.loading && <Loading />}
      {!page.loading && page.data && items.length === 0 && <p className="muted">No records of this type.</p>}
      <div className="pager">
        <button type="button" className="btn" disabled={pageNo === 1} onClick={() => go({ cursors: cursors.slice(0, -1) })}>
          ← Previous
        </button>
        <span aria-live="polite">
          {items.length > 0 ? `${formatCount(first)}–${formatCount(first + items.length - 1)}` : ''}
          {total !== undefined && !source ? ` of ${formatCount(total)}` : ''}
        </span>
        <button type="button" className="btn" disabled={!page.data?.next_cursor} onClick={() => go({ cursors: [...cursors, page.data!.next_cursor!] })}>
          Next →
        </button>
      </div>
    </div>
  );
}
