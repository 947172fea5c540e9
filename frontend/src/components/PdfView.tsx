// A PDF shown with pdf.js (the Linux webview has no PDF viewer): each page drawn on a canvas with
// its text laid over it (selectable, readable by screen readers and searchable with Ctrl+F).
// pdf.js and its worker are bundled with the app (no CDN); the worker is a file of the build.
import { useEffect, useRef, useState } from 'react';
import { ErrorMessage, Loading } from './common';

const MAX_PAGES = 50;

export function PdfView({ data, title }: { data: ArrayBuffer; title: string }) {
  const ref = useRef<HTMLDivElement>(null);
  const [error, setError] = useState<unknown>();
  const [pages, setPages] = useState<number | null>(null);

  useEffect(() => {
    let cancelled = false;
    let destroy: (() => void) | undefined;
    (async () => {
      const pdfjs = await import('pdfjs-dist');
      const worker = (await import('pdfjs-dist/build/pdf.worker.min.mjs?url')).default;
      pdfjs.GlobalWorkerOptions.workerSrc = worker;
      // A copy: pdf.js transfers the buffer to its worker.
      const task = pdfjs.getDocument({ data: new Uint8Array(data.slice(0)), isEvalSupported: false, enableXfa: false });
      destroy = () => void task.destroy();
      const doc = await task.promise;
      if (cancelled) return;
      setPages(doc.numPages);
      const host = ref.current;
      if (!host) return;
      host.replaceChildren();
      const width = Math.max(280, Math.min(host.clientWidth || 800, 900));
      for (let i = 1; i <= Math.min(doc.numPages, MAX_PAGES); i++) {
        const page = await doc.getPage(i);
        if (cancelled) return;
        const base = page.getViewport({ scale: 1 });
        const scale = width / base.width;
        const viewport = page.getViewport({ scale });
        const wrap = document.createElement('div');
        wrap.className = 'pdf-page';
        wrap.setAttribute('role', 'group');
        wrap.setAttribute('aria-label', `Page ${i} of ${doc.numPages}`);
        wrap.style.setProperty('--scale-factor', String(scale));
        wrap.style.setProperty('--total-scale-factor', String(scale));
        wrap.style.width = `${Math.floor(viewport.width)}px`;
        wrap.style.height = `${Math.floor(viewport.height)}px`;
        const canvas = document.createElement('canvas');
        const ratio = window.devicePixelRatio || 1;
        canvas.width = Math.floor(viewport.width * ratio);
        canvas.height = Math.floor(viewport.height * ratio);
        canvas.style.width = `${Math.floor(viewport.width)}px`;
        canvas.style.height = `${Math.floor(viewport.height)}px`;
        canvas.setAttribute('aria-hidden', 'true');
        wrap.appendChild(canvas);
        const textDiv = document.createElement('div');
        textDiv.className = 'textLayer';
        wrap.appendChild(textDiv);
        host.appendChild(wrap);
        await page.render({ canvas, viewport, transform: ratio !== 1 ? [ratio, 0, 0, ratio, 0, 0] : undefined }).promise;
        const text = new pdfjs.TextLayer({ textContentSource: page.streamTextContent(), container: textDiv, viewport });
        await text.render();
      }
    })().catch((e) => {
      if (!cancelled) setError(e instanceof Error ? new Error(`This PDF cannot be shown: ${e.message}`) : e);
    });
    return () => {
      cancelled = true;
      destroy?.();
    };
  }, [data]);

  return (
    <div className="pdf-view" aria-label={title}>
      {error ? <ErrorMessage error={error} /> : pages === null ? <Loading label="Opening the PDF…" /> : null}
      {pages !== null && pages > MAX_PAGES && <p className="muted small">Showing the first {MAX_PAGES} of {pages} pages; save a copy to read the rest.</p>}
      <div ref={ref} className="pdf-pages" data-testid="pdf-pages" />
    </div>
  );
}
