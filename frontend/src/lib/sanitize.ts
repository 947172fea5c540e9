// Narrative XHTML (Resource.text.div) comes from files and providers: hostile input. It is shown
// only through sanitizeNarrative(): DOMPurify with a strict allowlist, in its own instance so the
// hooks below apply to narratives only.
//
// Rules: basic formatting, lists and tables only; no script/style/iframe/object/embed/form/svg/
// math/media; no event handlers, no style attributes (no CSS url()), no class/id (no look-alike
// app UI, no DOM clobbering); links keep their href only for http(s) and are opened outside the
// app by the Narrative component, anything else (javascript:, data:, relative, #fragment) is made
// inert; images survive only as inline data: images of raster types, never a remote load.
import createDOMPurify, { type Config, type DOMPurify } from 'dompurify';

const ALLOWED_TAGS = [
  'a', 'abbr', 'acronym', 'b', 'big', 'blockquote', 'br', 'caption', 'cite', 'code', 'col',
  'colgroup', 'dd', 'del', 'dfn', 'div', 'dl', 'dt', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6',
  'hr', 'i', 'img', 'ins', 'kbd', 'li', 'ol', 'p', 'pre', 'q', 's', 'samp', 'small', 'span',
  'strike', 'strong', 'sub', 'sup', 'table', 'tbody', 'td', 'tfoot', 'th', 'thead', 'tr', 'tt',
  'u', 'ul', 'var',
];

// Plain-value attributes. DOMPurify checks every other attribute value against
// ALLOWED_URI_REGEXP below, so these must be declared URI-safe to keep values like "col" or "2".
const PLAIN_ATTR = [
  'colspan', 'rowspan', 'scope', 'headers', 'abbr', 'lang', 'dir', 'width', 'height', 'start',
  'reversed', 'datetime', 'span',
];

const ALLOWED_ATTR = ['href', 'title', 'alt', 'src', ...PLAIN_ATTR];

const FORBID_TAGS = [
  'script', 'style', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'form',
  'input', 'button', 'textarea', 'select', 'option', 'link', 'meta', 'base', 'svg', 'math',
  'video', 'audio', 'source', 'track', 'picture', 'template', 'noscript', 'portal', 'marquee',
];

const FORBID_ATTR = [
  'style', 'class', 'id', 'name', 'srcset', 'sizes', 'background', 'poster', 'action',
  'formaction', 'xlink:href', 'ping', 'target', 'usemap', 'longdesc', 'lowsrc', 'dynsrc',
  'cite',
];

const HTTP_URL = /^https?:\/\/[^\s]+$/i;
const DATA_IMAGE = /^data:image\/(?:png|gif|jpeg|jpg|webp);base64,[a-z0-9+/=\s]+$/i;

const CONFIG: Config = {
  ALLOWED_TAGS,
  ALLOWED_ATTR,
  FORBID_TAGS,
  FORBID_ATTR,
  ADD_URI_SAFE_ATTR: PLAIN_ATTR,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOW_UNKNOWN_PROTOCOLS: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|data:image\/(?:png|gif|jpe?g|webp);base64,)/i,
  WHOLE_DOCUMENT: false,
  RETURN_DOM: false,
  RETURN_DOM_FRAGMENT: false,
  SANITIZE_DOM: true,
  KEEP_CONTENT: true,
};

let instance: DOMPurify | null = null;

function purifier(): DOMPurify {
  if (instance) return instance;
  const p = createDOMPurify(window);
  p.addHook('afterSanitizeAttributes', (node) => {
    const el = node as Element;
    if (el.nodeType !== 1) return;
    const tag = el.tagName.toLowerCase();
    if (tag === 'a') {
      const h = (el.getAttribute('href') ?? '').trim();
      if (HTTP_URL.test(h)) {
        el.setAttribute('href', h);
        el.setAttribute('rel', 'noopener noreferrer nofollow');
      } else {
        el.removeAttribute('href');
      }
    } else if (el.hasAttribute('href')) {
      el.removeAttribute('href');
    }
    if (tag === 'img') {
      const src = (el.getAttribute('src') ?? '').trim();
      if (!DATA_IMAGE.test(src)) {
        el.remove();
      }
    } else if (el.hasAttribute('src')) {
      el.removeAttribute('src');
    }
  });
  instance = p;
  return p;
}

/** Returns narrative XHTML made safe to insert with innerHTML. */
export function sanitizeNarrative(html: string): string {
  if (!html) return '';
  const p = purifier();
  if (!p.isSupported) return '';
  return String(p.sanitize(html, CONFIG));
}

/** True when sanitised HTML shows nothing (no text, no image). */
export function isBlankHtml(html: string): boolean {
  return !/<img\b/i.test(html) && html.replace(/<[^>]*>/g, '').replace(/&nbsp;|&#160;/g, ' ').trim() === '';
}
