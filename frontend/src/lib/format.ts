// Plain-text display helpers for FHIR R4 values: dates (partial dates never shift a day),
// names, codes, quantities. No React here, so all of it is unit-testable.
import type {
  Address,
  CodeableConcept,
  Coding,
  ContactPoint,
  HumanName,
  Money,
  Period,
  Quantity,
  Range,
  Ratio,
  Reference,
} from 'fhir/r4';

// ---------------------------------------------------------------------------------------------
// Dates

export type DatePrecision = 'year' | 'month' | 'day' | 'time';

export interface ParsedDate {
  /** Milliseconds since the epoch (UTC midnight for a date without time). */
  t: number;
  precision: DatePrecision;
}

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$/;

/** Parses a FHIR date, dateTime or instant. Returns null when it is not one. */

let systemLocale: string | undefined;

/**
 * The locale to format with: the caller's, else the system's. A system set to the C/POSIX locale
 * (LANG=C, common on Linux) resolves to en-US-u-va-posix, which prints 83195 without grouping;
 * plain English reads better there.
 */
export function pickLocale(locale: string | undefined, system: string): string | undefined {
  if (locale) return locale;
  return /posix/i.test(system) ? 'en-US' : undefined;
}

function loc(locale?: string): string | undefined {
  if (locale) return locale;
  if (systemLocale === undefined) {
    try {
      systemLocale = new Intl.NumberFormat().resolvedOptions().locale;
    } catch {
      systemLocale = '';
    }
  }
  return pickLocale(undefined, systemLocale);
}

export function parseFhirDate(s: string | null | undefined): ParsedDate | null {
  if (!s) return null;
  const str = s.trim();
  const m = DATE_RE.exec(str);
  if (m) {
    const y = Number(m[1]);
    const mo = m[2] ? Number(m[2]) - 1 : 0;
    const d = m[3] ? Number(m[3]) : 1;
    const t = Date.UTC(y, mo, d);
    if (Number.isNaN(t)) return null;
    return { t, precision: m[3] ? 'day' : m[2] ? 'month' : 'year' };
  }
  const t = Date.parse(str);
  if (Number.isNaN(t)) return null;
  return { t, precision: 'time' };
}

/** Formats a FHIR date/dateTime for reading: "12 Mar 2020", "Mar 2020", "2020". */
export function formatDate(s: string | null | undefined, locale?: string): string {
  const p = parseFhirDate(s);
  if (!p) return s ?? '';
  const d = new Date(p.t);
  switch (p.precision) {
    case 'year':
      return String(d.getUTCFullYear());
    case 'month':
      return new Intl.DateTimeFormat(loc(locale), { year: 'numeric', month: 'short', timeZone: 'UTC' }).format(d);
    case 'day':
      return new Intl.DateTimeFormat(loc(locale), { dateStyle: 'medium', timeZone: 'UTC' }).format(d);
    default:
      return new Intl.DateTimeFormat(loc(locale), { dateStyle: 'medium' }).format(d);
  }
}

/** Like formatDate, with the time of day when the value has one. */
export function formatDateTime(s: string | null | undefined, locale?: string): string {
  const p = parseFhirDate(s);
  if (!p) return s ?? '';
  if (p.precision !== 'time') return formatDate(s, locale);
  return new Intl.DateTimeFormat(loc(locale), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(p.t));
}

export function formatPeriod(p: Period | undefined, locale?: string): string {
  if (!p) return '';
  const a = p.start ? formatDate(p.start, locale) : '';
  const b = p.end ? formatDate(p.end, locale) : '';
  if (a && b) return a === b ? a : `${a} – ${b}`;
  if (a) return `from ${a}`;
  if (b) return `until ${b}`;
  return '';
}

/** Whole years between a birth date and `at` (default now). */
export function ageInYears(birthDate: string | undefined, at: Date = new Date()): number | null {
  const p = parseFhirDate(birthDate);
  if (!p) return null;
  const b = new Date(p.t);
  let age = at.getUTCFullYear() - b.getUTCFullYear();
  const m = at.getUTCMonth() - b.getUTCMonth();
  if (m < 0 || (m === 0 && at.getUTCDate() < b.getUTCDate())) age--;
  return age >= 0 ? age : null;
}

/** "March 2021" style heading for a timeline group. */
export function monthHeading(s: string | null | undefined, locale?: string): string {
  const p = parseFhirDate(s);
  if (!p) return 'No date';
  if (p.precision === 'year') return String(new Date(p.t).getUTCFullYear());
  const tz = p.precision === 'time' ? undefined : 'UTC';
  return new Intl.DateTimeFormat(loc(locale), { year: 'numeric', month: 'long', timeZone: tz }).format(new Date(p.t));
}

// ---------------------------------------------------------------------------------------------
// Numbers and quantities

export function formatNumber(n: number, locale?: string): string {
  const a = Math.abs(n);
  const opts: Intl.NumberFormatOptions =
    a === 0 || Number.isInteger(n)
      ? { maximumFractionDigits: 0 }
      : a >= 100
        ? { maximumFractionDigits: 1 }
        : a >= 1
          ? { maximumFractionDigits: 2 }
          : { maximumSignificantDigits: 3 };
  return new Intl.NumberFormat(loc(locale), opts).format(n);
}

export function formatCount(n: number, locale?: string): string {
  return new Intl.NumberFormat(loc(locale)).format(n);
}

export function formatBytes(n: number, locale?: string): string {
  if (!Number.isFinite(n) || n < 0) return '';
  const units = ['bytes', 'KB', 'MB', 'GB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  const digits = i === 0 ? 0 : v >= 100 ? 0 : 1;
  return `${new Intl.NumberFormat(loc(locale), { maximumFractionDigits: digits }).format(v)} ${units[i]}`;
}

const UNIT_NAMES: Record<string, string> = {
  Cel: '°C',
  '[degF]': '°F',
  'kg/m2': 'kg/m²',
  '10*3/uL': '10³/µL',
  '10*6/uL': '10⁶/µL',
  '10*9/L': '10⁹/L',
  '10*12/L': '10¹²/L',
  uL: 'µL',
  ug: 'µg',
  'ug/dL': 'µg/dL',
  'ug/L': 'µg/L',
  'umol/L': 'µmol/L',
  '/min': 'per minute',
  '{score}': 'score',
  'mL/min/{1.73_m2}': 'mL/min/1.73 m²',
};

/** UCUM units made readable: "mm[Hg]" → "mmHg", "Cel" → "°C", "{score}" → "score". */
export function prettyUnit(u: string | undefined): string {
  if (!u) return '';
  const known = UNIT_NAMES[u.trim()];
  if (known) return known;
  return u.replace(/\[([^\]]+)\]/g, '$1').replace(/\{([^}]+)\}/g, '$1');
}

export function quantityUnit(q: Quantity | undefined): string {
  if (!q) return '';
  return prettyUnit(q.unit || q.code || '');
}

export function formatQuantity(q: Quantity | undefined, locale?: string): string {
  if (!q || q.value === undefined || q.value === null) return '';
  const unit = quantityUnit(q);
  return `${q.comparator ?? ''}${formatNumber(q.value, locale)}${unit ? ' ' + unit : ''}`;
}

export function formatRange(r: Range | undefined, locale?: string): string {
  if (!r) return '';
  const lo = r.low?.value !== undefined ? formatNumber(r.low.value, locale) : '';
  const hi = r.high?.value !== undefined ? formatNumber(r.high.value, locale) : '';
  const unit = quantityUnit(r.low) || quantityUnit(r.high);
  const u = unit ? ' ' + unit : '';
  if (lo && hi) return `${lo}–${hi}${u}`;
  if (lo) return `≥ ${lo}${u}`;
  if (hi) return `≤ ${hi}${u}`;
  return '';
}

export function formatRatio(r: Ratio | undefined, locale?: string): string {
  if (!r) return '';
  return `${formatQuantity(r.numerator, locale)} / ${formatQuantity(r.denominator, locale)}`;
}

export function formatMoney(m: Money | undefined, locale?: string): string {
  if (!m || m.value === undefined) return '';
  try {
    if (m.currency) return new Intl.NumberFormat(loc(locale), { style: 'currency', currency: m.currency }).format(m.value);
  } catch {
    /* unknown currency code: plain number below */
  }
  return formatNumber(m.value, locale) + (m.currency ? ' ' + m.currency : '');
}

// ---------------------------------------------------------------------------------------------
// Codes, names, references

export function codingText(c: Coding | undefined): string {
  if (!c) return '';
  return c.display || c.code || '';
}

export function conceptText(cc: CodeableConcept | undefined): string {
  if (!cc) return '';
  if (cc.text) return cc.text;
  for (const c of cc.coding ?? []) {
    const t = codingText(c);
    if (t) return t;
  }
  return '';
}

export function conceptsText(ccs: CodeableConcept[] | undefined): string {
  return (ccs ?? []).map(conceptText).filter(Boolean).join(', ');
}

/** `system|code` of the first coding, or the code alone; used for `GET /resources?code=`. */
export function codeKey(cc: CodeableConcept | undefined): string {
  const c = cc?.coding?.find((x) => x.code);
  if (!c?.code) return '';
  return c.system ? `${c.system}|${c.code}` : c.code;
}

function pickName(names: HumanName[] | undefined): HumanName | undefined {
  if (!names || names.length === 0) return undefined;
  return names.find((n) => n.use === 'official') ?? names.find((n) => n.use === 'usual') ?? names[0];
}

/** "José María Casares" (given names and family, no prefixes). */
export function humanName(names: HumanName[] | undefined): string {
  const n = pickName(names);
  if (!n) return '';
  const parts = [...(n.given ?? []), n.family ?? ''].map((s) => s.trim()).filter(Boolean);
  if (parts.length) return parts.join(' ');
  return n.text?.trim() ?? '';
}

export function formatAddress(a: Address | undefined): string {
  if (!a) return '';
  if (a.text) return a.text;
  return [...(a.line ?? []), a.city, [a.state, a.postalCode].filter(Boolean).join(' '), a.country]
    .filter((s) => s && String(s).trim())
    .join(', ');
}

export function formatTelecom(t: ContactPoint[] | undefined): string {
  return (t ?? [])
    .filter((c) => c.value)
    .map((c) => (c.system && c.system !== 'phone' ? `${c.value} (${c.system})` : c.value ?? ''))
    .join(', ');
}

/** A reference as "Type/id" when it points inside the store, else null. */
export function referenceTarget(r: Reference | undefined): { type: string; id: string } | null {
  const ref = r?.reference;
  if (!ref) return null;
  const m = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})$/.exec(ref.trim());
  return m ? { type: m[1], id: m[2] } : null;
}

export function referenceText(r: Reference | undefined): string {
  if (!r) return '';
  return r.display || r.reference || r.identifier?.value || '';
}

export function capitalise(s: string | undefined): string {
  if (!s) return '';
  return s.charAt(0).toUpperCase() + s.slice(1).replace(/-/g, ' ');
}
