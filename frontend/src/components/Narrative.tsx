import { useMemo, type MouseEvent } from 'react';
import { isBlankHtml, sanitizeNarrative } from '../lib/sanitize';
import { openExternal } from '../lib/events';

/**
 * Renders Resource.text.div after sanitising (lib/sanitize.ts). Links never navigate this page:
 * http(s) links open outside the app, everything else was made inert by the sanitiser.
 */
export function Narrative({ div }: { div: string }) {
  const html = useMemo(() => sanitizeNarrative(div), [div]);
  if (isBlankHtml(html)) return null;
  const onClick = (e: MouseEvent<HTMLDivElement>) => {
    const a = (e.target as Element).closest?.('a');
    if (!a) return;
    e.preventDefault();
    const h = a.getAttribute('href');
    if (h) openExternal(h);
  };
  return (
    // eslint-disable-next-line jsx-a11y/click-events-have-key-events -- links inside are real <a> elements
    <div className="narrative" data-testid="narrative" onClick={onClick} dangerouslySetInnerHTML={{ __html: html }} />
  );
}
