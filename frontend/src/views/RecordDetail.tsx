import type { FhirResource, Observation } from 'fhir/r4';
import { getResource } from '../api/client';
import { sourceName, useApp } from '../AppContext';
import { ErrorMessage, Loading, TypeBadge } from '../components/common';
import { Narrative } from '../components/Narrative';
import { isBlankHtml, sanitizeNarrative } from '../lib/sanitize';
import { codeKey, formatDate, formatDateTime, referenceTarget, referenceText } from '../lib/format';
import { useAsync, useTitle } from '../lib/hooks';
import { keyFields, resourceTitle, typeInfo } from '../lib/resources';
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
              <span className="muted">From {sourceName(sources, item.source_id)}</span>
            </p>
          </div>
          <OwnRecordActions item={item} onChanged={st.reload} />
          <Fields resource={item.resource as FhirResource} />
          {item.type === 'Composition' && <CompositionSections item={item} />}
          {item.type === 'Observation' && codeKey((item.resource as Observation).code) && (item.resource as Observation).valueQuantity && (
            <p>
              <a href={href('/labs', { code: codeKey((item.resource as Observation).code) })}>See this test over time</a>
            </p>
          )}
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

function Fields({ resource }: { resource: FhirResource }) {
  const fields = keyFields(resource);
  if (fields.length === 0) return null;
  return (
    <dl className="fields">
      {fields.map((f, i) => (
        <div key={f.label + i} className="field-row">
          <dt>{f.label}</dt>
          <dd>
            {f.value}
            {f.refs?.map((r, j) => {
              const t = referenceTarget(r);
              const text = r.display || (t ? typeInfo(t.type).singular : referenceText(r));
              return (
                <span key={j} className="ref">
                  {j > 0 ? ', ' : ''}
                  {t ? <a href={href(`/records/${t.type}/${t.id}`)}>{text}</a> : text}
                </span>
              );
            })}
          </dd>
        </div>
      ))}
    </dl>
  );
}
