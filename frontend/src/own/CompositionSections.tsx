// A document (a Composition, such as an imported International Patient Summary) shown as one
// item with its sections: each section's title, its text, and its entries resolved to the
// records they point at (links), from the same source as the document.
import { getResource } from '../api/client';
import type { ResourceItem } from '../api/types';
import { ResourceLink } from '../components/common';
import { Narrative } from '../components/Narrative';
import { formatDate } from '../lib/format';
import { useAsync } from '../lib/hooks';
import { resourceTitle } from '../lib/resources';

interface Section {
  title?: string;
  code?: { coding?: { code?: string; display?: string }[]; text?: string };
  text?: { div?: string };
  entry?: { reference?: string; display?: string }[];
  emptyReason?: { text?: string; coding?: { display?: string }[] };
  section?: Section[];
}

function refParts(ref: string | undefined): [string, string] | null {
  if (!ref) return null;
  const parts = ref.split('/');
  if (parts.length < 2) return null;
  return [parts[parts.length - 2], parts[parts.length - 1]];
}

export function CompositionSections({ item }: { item: ResourceItem }) {
  const sections = ((item.resource as { section?: Section[] }).section ?? []) as Section[];
  const refs = sections.flatMap((s) => (s.entry ?? []).map((e) => e.reference ?? '')).filter(Boolean);
  const st = useAsync(
    async (signal) => {
      const out = new Map<string, ResourceItem>();
      // A few at a time: a document may list hundreds of entries.
      const todo = [...new Set(refs)];
      while (todo.length) {
        const batch = todo.splice(0, 8);
        const got = await Promise.allSettled(
          batch.map((r) => {
            const p = refParts(r);
            return p ? getResource(p[0], p[1], item.source_id, signal) : Promise.reject(new Error('not a reference'));
          }),
        );
        got.forEach((g, i) => g.status === 'fulfilled' && out.set(batch[i], g.value));
      }
      return out;
    },
    [item.type, item.id, item.source_id],
  );
  if (sections.length === 0) return null;
  return (
    <section className="card composition-sections" aria-labelledby="comp-sections-h" data-testid="composition-sections">
      <h2 id="comp-sections-h">Sections of this document</h2>
      {sections.map((s, i) => (
        <section key={i} className="comp-section" data-testid="composition-section">
          <h3>{s.title ?? s.code?.text ?? s.code?.coding?.[0]?.display ?? 'Section'}</h3>
          {(s.entry ?? []).length > 0 ? (
            <ul className="item-list">
              {(s.entry ?? []).map((e, j) => {
                const it = e.reference ? st.data?.get(e.reference) : undefined;
                return (
                  <li key={j}>
                    {it ? (
                      <>
                        <ResourceLink item={it}>{resourceTitle(it)}</ResourceLink>
                        {it.date && <span className="item-meta">{formatDate(it.date)}</span>}
                      </>
                    ) : (
                      <span>{e.display ?? e.reference ?? 'An entry'}{st.data && e.reference ? ' (not in your records)' : ''}</span>
                    )}
                  </li>
                );
              })}
            </ul>
          ) : s.emptyReason ? (
            <p className="muted">{s.emptyReason.text ?? s.emptyReason.coding?.[0]?.display ?? 'Nothing recorded.'}</p>
          ) : s.text?.div ? (
            <Narrative div={s.text.div} />
          ) : null}
        </section>
      ))}
    </section>
  );
}
