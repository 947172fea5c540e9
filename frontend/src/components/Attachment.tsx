// Attachments of a record (DocumentReference content, DiagnosticReport presentedForm, Media, a
// Binary): opened in the app through GET /resources/{type}/{id}/attachments/{n}. Text and HTML
// (sanitised like narratives) inline, images inline (as data: URLs, which the page's CSP allows),
// PDF with pdf.js, anything else offered as a download with its own file name. Nothing an
// attachment holds is ever executed: HTML goes through DOMPurify and the API serves every
// attachment with `Content-Security-Policy: sandbox` and `nosniff`.
import type { Attachment as FhirAttachment, FhirResource } from 'fhir/r4';
import { lazy, Suspense, useEffect, useState } from 'react';
import { getAttachment, saveAttachment, type AttachmentFile } from '../api/client';
import { formatBytes } from '../lib/format';
import { ErrorMessage, Loading } from './common';
import { Narrative } from './Narrative';

const PdfView = lazy(() => import('./PdfView').then((m) => ({ default: m.PdfView })));

/** The attachments of a resource, in the order the API numbers them. */
export function attachmentsOf(r: FhirResource): FhirAttachment[] {
  switch (r.resourceType) {
    case 'DocumentReference':
      return (r.content ?? []).map((c) => c.attachment);
    case 'DiagnosticReport':
      return r.presentedForm ?? [];
    case 'Media':
      return r.content ? [r.content] : [];
    case 'Binary':
      return [{ contentType: r.contentType }];
    case 'Communication':
      return (r.payload ?? []).flatMap((p) => (p.contentAttachment ? [p.contentAttachment] : []));
    case 'Observation': {
      const v = (r as { valueAttachment?: FhirAttachment }).valueAttachment; // R5 (and R4 extensions)
      return v ? [v] : [];
    }
    default:
      return [];
  }
}

export type AttachmentKind = 'text' | 'html' | 'image' | 'pdf' | 'download';

/** How an attachment is shown, by its content type. SVG is never shown inline (it can script). */
export function attachmentKind(contentType: string | undefined): AttachmentKind {
  const t = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (t === 'text/html' || t === 'application/xhtml+xml') return 'html';
  if (t === 'application/pdf') return 'pdf';
  if (/^image\/(png|jpeg|gif|webp|bmp|avif)$/.test(t)) return 'image';
  if (t.startsWith('text/') || t === 'application/json' || t === 'application/fhir+json' || t === 'application/xml') return 'text';
  return 'download';
}

function kindWords(a: FhirAttachment): string {
  const k = attachmentKind(a.contentType);
  return { text: 'Text', html: 'Web page', image: 'Image', pdf: 'PDF', download: 'File' }[k];
}

export function Attachments({ type, id, source, resource }: { type: string; id: string; source?: number; resource: FhirResource }) {
  const list = attachmentsOf(resource);
  // The first one that can be shown opens by itself.
  const first = list.findIndex((a) => attachmentKind(a.contentType) !== 'download' && (a.data || a.url || type === 'Binary'));
  const [open, setOpen] = useState<Set<number>>(() => new Set(first >= 0 ? [first] : []));
  if (list.length === 0) return null;
  const toggle = (i: number) =>
    setOpen((s) => {
      const n = new Set(s);
      if (n.has(i)) n.delete(i);
      else n.add(i);
      return n;
    });
  return (
    <section className="card attachments" aria-labelledby="att-h">
      <h2 id="att-h">{list.length === 1 ? 'Attachment' : `Attachments (${list.length})`}</h2>
      <ul className="attachment-list">
        {list.map((a, i) => {
          const stored = !!(a.data || type === 'Binary' || /(^|\/)Binary\/[^/]+$/.test(a.url ?? ''));
          const name = a.title || (list.length > 1 ? `Attachment ${i + 1}` : 'Attachment');
          return (
            <li key={i} className="attachment">
              <div className="attachment-head">
                <strong>{name}</strong>
                <span className="muted small">
                  {[kindWords(a), a.size ? formatBytes(a.size) : ''].filter(Boolean).join(' · ')}
                </span>
                {stored ? (
                  <button type="button" className="btn btn-small" aria-expanded={open.has(i)} onClick={() => toggle(i)}>
                    {open.has(i) ? 'Close' : 'Open'}
                  </button>
                ) : (
                  <span className="muted small">{a.url ? 'Kept by the provider, not in your records' : 'No content'}</span>
                )}
              </div>
              {stored && open.has(i) && <AttachmentView type={type} id={id} n={i} source={source} name={name} />}
            </li>
          );
        })}
      </ul>
    </section>
  );
}

function readDataUrl(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

interface Loaded {
  file: AttachmentFile;
  kind: AttachmentKind;
  text?: string;
  dataUrl?: string;
  bytes?: ArrayBuffer;
}

export function AttachmentView({ type, id, n, source, name }: { type: string; id: string; n: number; source?: number; name: string }) {
  const [st, setSt] = useState<{ data?: Loaded; error?: unknown }>({});
  const [saved, setSaved] = useState<{ path?: string; error?: unknown }>({});
  useEffect(() => {
    const ac = new AbortController();
    setSt({});
    (async () => {
      const file = await getAttachment(type, id, n, source, ac.signal);
      const kind = attachmentKind(file.contentType);
      const out: Loaded = { file, kind };
      if (kind === 'text' || kind === 'html') out.text = await file.blob.text();
      else if (kind === 'image') out.dataUrl = await readDataUrl(new Blob([file.blob], { type: file.contentType.split(';')[0] }));
      else if (kind === 'pdf') out.bytes = await file.blob.arrayBuffer();
      if (!ac.signal.aborted) setSt({ data: out });
    })().catch((e) => {
      if (!ac.signal.aborted) setSt({ error: e });
    });
    return () => ac.abort();
  }, [type, id, n, source]);

  if (st.error) return <ErrorMessage error={st.error} />;
  const d = st.data;
  if (!d) return <Loading label="Opening…" />;
  const save = () => {
    setSaved({});
    saveAttachment(type, id, n, source, { blob: d.file.blob, filename: d.file.filename || name }).then(
      (path) => setSaved({ path: path ?? undefined }),
      (e) => setSaved({ error: e }),
    );
  };
  return (
    <div className="attachment-view" data-testid="attachment-view">
      {d.file.check !== 'ok' && (
        <div className="notice notice-warn" role="alert" data-testid="attachment-mismatch">
          This file does not match what the record says about it
          {d.file.check.includes('size') ? ' (its size differs)' : ''}
          {d.file.check.includes('hash') ? ' (its fingerprint differs)' : ''}. It may be damaged or changed since it was recorded.
        </div>
      )}
      {d.kind === 'text' && <pre className="attachment-text">{d.text}</pre>}
      {d.kind === 'html' && <Narrative div={d.text ?? ''} />}
      {d.kind === 'image' && <img className="attachment-image" src={d.dataUrl} alt={name} />}
      {d.kind === 'pdf' && d.bytes && (
        <Suspense fallback={<Loading label="Opening the PDF…" />}>
          <PdfView data={d.bytes} title={name} />
        </Suspense>
      )}
      {d.kind === 'download' && <p>This kind of file ({d.file.contentType.split(';')[0]}) cannot be shown here.</p>}
      <p>
        <button type="button" className="btn btn-small" onClick={save}>
          Save a copy ({d.file.filename})
        </button>
        {saved.path && <span className="muted small"> Saved to {saved.path}</span>}
      </p>
      {saved.error !== undefined && <ErrorMessage error={saved.error} />}
    </div>
  );
}
