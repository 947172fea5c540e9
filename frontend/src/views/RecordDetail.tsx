import type { Claim, DiagnosticReport, ExplanationOfBenefit, FhirResource, Observation, Reference } from 'fhir/r4';
import { getResource } from '../api/client';
import type { RelatedRecord, ResourceDetail } from '../api/types';
import { sourceProvenance, useApp } from '../AppContext';
import { Attachments } from '../components/Attachment';
import { ErrorMessage, Loading, TypeBadge } from '../components/common';
import { Narrative } from '../components/Narrative';
import { isBlankHtml, sanitizeNarrative } from '../lib/sanitize';
import { codeKey, formatDate, formatDateTime, formatMoney, formatRange } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { conceptName, flagText, isAbnormal, refKey, refLabel, resultFlag, valueAndUnit, VISIT_GROUP_ORDER, visitGroup } from '../lib/names';
import { keyFields, observationValue, resourceTitle, typeInfo } from '../lib/resources';
import { href } from '../lib/router';
import { OwnRecordActions } from '../own/OwnRecordActions';
import { CompositionSections } from '../own/CompositionSections';

export function RecordDetail({ type, id, source }: { type: string; id: string; source: string | null }) {
  const { sources } = useApp();
  const st = useAsync((signal) => getResource(type, id, source ? Number(source) : undefined, signal), [type, id, source]);
  const item = st.data;
  const title = item ? resourceTitle(item) : typeInfo(type).singular;
  useTitle(title);

  return (
    <div className="page detail">
      <p className="crumbs">
        <a href={href('/records')}>Records</a> › <a href={href(`/records/${type}`)}>{typeInfo(type).label}</a>
      </p>
      {st.error ? (
        <>
          <h1>{typeInfo(type).singular}</h1>
          <ErrorMessage error={st.error} onRetry={st.reload} />
        </>
      ) : !item ? (
        <Loading />
      ) : (
        <>
          <div className="detail-head">
            <h1>{title}</h1>
            <p className="detail-sub">
              <TypeBadge type={item.type} />
              {item.date && <span>{formatDate(item.date)}</span>}
              <span className="muted">{sourceProvenance(sources, item.source_id)}</span>
            </p>
          </div>
          <OwnRecordActions item={item} onChanged={st.reload} />
          <Fields detail={item} />
          {item.type === 'Composition' && <CompositionSections item={item} />}
          {item.type === 'Observation' && codeKey((item.resource as Observation).code) && (item.resource as Observation).valueQuantity && (
            <p>
              <a href={href('/labs', { code: codeKey((item.resource as Observation).code) })}>See this test over time</a>
            </p>
          )}
          {item.type === 'DiagnosticReport' && <ReportResults detail={item} />}
          {item.type === 'Encounter' ? <VisitContents related={item.related ?? []} /> : <MentionedIn item={item} />}
          {item.related_partial && <p className="muted small">This history is long: records far from this one in time may be missing from the lists above.</p>}
          <Attachments type={item.type} id={item.id} source={item.source_id} resource={item.resource as FhirResource} />
          {hasNarrative(item.resource) && (
            <section className="card" aria-labelledby="narr-h">
              <h2 id="narr-h">Text from the record</h2>
              <Narrative div={(item.resource as { text: { div: string } }).text.div} />
            </section>
          )}
          <details className="raw">
            <summary>Raw FHIR JSON</summary>
            <pre tabIndex={0} aria-label="Raw FHIR JSON">
              {JSON.stringify(item.resource, null, 2)}
            </pre>
          </details>
          {item.last_updated && <p className="muted small">Last updated {formatDateTime(item.last_updated)}</p>}
        </>
      )}
    </div>
  );
}

function hasNarrative(r: unknown): boolean {
  const div = (r as { text?: { div?: unknown } }).text?.div;
  return typeof div === 'string' && !isBlankHtml(sanitizeNarrative(div));
}

/** A reference by the target's name: a link when the store holds it, words when it does not. */
export function RefName({ r, detail }: { r: Reference; detail: Pick<ResourceDetail, 'references' | 'unresolved'> }) {
  const l = refLabel(r, detail);
  if (l.target) {
    return <a href={href(`/records/${l.target.type}/${l.target.id}`, { source: l.target.source_id })}>{l.text}</a>;
  }
  return <span className={l.unresolved && !r.display ? 'muted' : undefined}>{l.text}</span>;
}

function Fields({ detail }: { detail: ResourceDetail }) {
  const fields = keyFields(detail.resource as FhirResource);
  if (fields.length === 0) return null;
  return (
    <dl className="fields">
      {fields.map((f, i) => (
        <div key={f.label + i} className="field-row">
          <dt>{f.label}</dt>
          <dd>
            {f.value}
            {f.refs?.map((r, j) => (
              <span key={j} className="ref">
                {j > 0 ? ', ' : ''}
                <RefName r={r} detail={detail} />
              </span>
            ))}
          </dd>
        </div>
      ))}
    </dl>
  );
}

/** A lab report's results: test, value, unit, normal range, flag, date, and a link to each chart. */
function ReportResults({ detail }: { detail: ResourceDetail }) {
  const report = detail.resource as DiagnosticReport;
  const rows = (report.result ?? []).map((r) => {
    const t = detail.references?.[refKey(r)];
    return { ref: r, target: t, obs: t?.resource as Observation | undefined };
  });
  if (rows.length === 0) return null;
  return (
    <section className="card" aria-labelledby="results-h">
      <h2 id="results-h">Results</h2>
      <div className="table-scroll">
        <table className="results-table" data-testid="report-results">
          <thead>
            <tr>
              <th scope="col">Test</th>
              <th scope="col">Value</th>
              <th scope="col">Unit</th>
              <th scope="col">Normal range</th>
              <th scope="col">Flag</th>
              <th scope="col">Date</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ ref, target, obs }, i) => {
              if (!obs || !target) {
                return (
                  <tr key={i}>
                    <td colSpan={6}>
                      <RefName r={ref} detail={detail} />
                    </td>
                  </tr>
                );
              }
              const vu = valueAndUnit(obs);
              const flag = resultFlag(obs);
              const code = codeKey(obs.code);
              const name = conceptName(obs.code) || target.title;
              return (
                <tr key={i} className={isAbnormal(flag) ? 'abnormal' : undefined}>
                  <th scope="row">
                    <a href={href(`/records/Observation/${target.id}`, { source: target.source_id })}>{name}</a>
                    {code && obs.valueQuantity && (
                      <>
                        {' '}
                        <a className="small" href={href('/labs', { code })} aria-label={`Chart of ${name}`}>
                          chart
                        </a>
                      </>
                    )}
                  </th>
                  <td className="num">{vu.value || observationValue(obs)}</td>
                  <td>{vu.unit}</td>
                  <td>{(obs.referenceRange ?? []).map((rr) => rr.text || formatRange({ low: rr.low, high: rr.high })).filter(Boolean).join('; ')}</td>
                  <td>{flag && <span className={`flag flag-${flag}`}>{flagText(flag)}</span>}</td>
                  <td>{formatDate(obs.effectiveDateTime ?? obs.issued ?? target.date)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function relatedHref(r: RelatedRecord): string {
  return href(`/records/${r.type}/${r.id}`, { source: r.source_id });
}

function costOf(r: RelatedRecord): string {
  if (r.type === 'Claim') return formatMoney((r.resource as Claim | undefined)?.total);
  if (r.type === 'ExplanationOfBenefit') {
    const e = r.resource as ExplanationOfBenefit | undefined;
    const paid = formatMoney(e?.payment?.amount);
    const total = formatMoney(e?.total?.[0]?.amount);
    return [total && `total ${total}`, paid && `paid ${paid}`].filter(Boolean).join(', ');
  }
  return '';
}

function relatedValue(r: RelatedRecord): string {
  if (r.type === 'Observation' && r.resource) {
    const o = r.resource as Observation;
    const f = resultFlag(o);
    return [observationValue(o), isAbnormal(f) ? flagText(f) : ''].filter(Boolean).join(' · ');
  }
  return costOf(r);
}

/** A visit's contents, grouped by kind. */
function VisitContents({ related }: { related: RelatedRecord[] }) {
  const groups = new Map<string, RelatedRecord[]>();
  for (const r of related) {
    const g = visitGroup(r.type);
    groups.set(g, [...(groups.get(g) ?? []), r]);
  }
  return (
    <section className="card visit-contents" aria-labelledby="visit-h">
      <h2 id="visit-h">During this visit</h2>
      {related.length === 0 && <p className="muted">Nothing else was recorded during this visit.</p>}
      {VISIT_GROUP_ORDER.filter((g) => groups.has(g)).map((g) => (
        <div key={g} className="visit-group" data-testid="visit-group">
          <h3>
            {g} <span className="muted small">({groups.get(g)!.length})</span>
          </h3>
          <ul className="plain-list">
            {groups.get(g)!.map((r) => (
              <li key={`${r.type}/${r.id}/${r.source_id}`}>
                {g === 'Costs' ? (
                  <>
                    <a href={relatedHref(r)}>{typeInfo(r.type).singular}</a>: {costOf(r) || r.title}
                  </>
                ) : (
                  <>
                    <a href={relatedHref(r)}>{r.title}</a>
                    {relatedValue(r) && <span className="muted"> {relatedValue(r)}</span>}
                  </>
                )}
              </li>
            ))}
          </ul>
        </div>
      ))}
    </section>
  );
}

/** The records that mention this one (a condition's visits and care plans, ...). */
function MentionedIn({ item }: { item: ResourceDetail }) {
  const rel = item.related ?? [];
  if (rel.length === 0) return null;
  const byType = new Map<string, RelatedRecord[]>();
  for (const r of rel) byType.set(r.type, [...(byType.get(r.type) ?? []), r]);
  const shown = [...byType.entries()].sort((a, b) => typeInfo(a[0]).order - typeInfo(b[0]).order);
  return (
    <section className="card" aria-labelledby="rel-h">
      <h2 id="rel-h">Mentioned in</h2>
      {shown.map(([t, list]) => (
        <div key={t} className="visit-group">
          <h3>
            {typeInfo(t).label} <span className="muted small">({list.length})</span>
          </h3>
          <ul className="plain-list">
            {list.slice(0, 50).map((r) => (
              <li key={`${r.type}/${r.id}/${r.source_id}`}>
                <a href={relatedHref(r)}>{r.title}</a>
                {r.date && <span className="muted small"> {formatDate(r.date)}</span>}
                {relatedValue(r) && <span className="muted"> {relatedValue(r)}</span>}
              </li>
            ))}
          </ul>
          {list.length > 50 && <p className="muted small">And {list.length - 50} more.</p>}
        </div>
      ))}
    </section>
  );
}
