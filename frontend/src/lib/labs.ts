// Lab chart data: Observations of one test (LOINC code) → series of numeric points over time,
// with units and reference ranges. Pure functions; the SVG is drawn by components/LabChart.tsx.
import type { Observation, ObservationReferenceRange, Quantity } from 'fhir/r4';
import type { ResourceItem } from '../api/types';
import { conceptText, parseFhirDate, quantityUnit } from './format';

export interface LabPoint {
  /** Time in ms (UTC midnight for date-only values). */
  t: number;
  date: string;
  value: number;
  comparator?: string;
  unit: string;
  low?: number;
  high?: number;
  /** Outside the reference range of this point. */
  outOfRange: boolean;
  id: string;
  sourceId: number;
}

export interface LabSeries {
  key: string;
  label: string;
  unit: string;
  points: LabPoint[];
  /** Values recorded in another unit than `unit`: listed, not drawn on the same axis. */
  otherUnits: { unit: string; count: number }[];
}

export interface LabData {
  title: string;
  series: LabSeries[];
  /** Observations without a date or a numeric value. */
  skipped: number;
}

function effectiveDate(o: Observation, fallback?: string | null): string | undefined {
  return o.effectiveDateTime || o.effectiveInstant || o.effectivePeriod?.start || o.issued || fallback || undefined;
}

/** Low/high of the first reference range in the value's unit (or with no unit given). */
export function rangeFor(ranges: ObservationReferenceRange[] | undefined, unit: string): { low?: number; high?: number } {
  for (const rr of ranges ?? []) {
    const lu = quantityUnit(rr.low);
    const hu = quantityUnit(rr.high);
    if ((lu && lu !== unit) || (hu && hu !== unit)) continue;
    const low = typeof rr.low?.value === 'number' ? rr.low.value : undefined;
    const high = typeof rr.high?.value === 'number' ? rr.high.value : undefined;
    if (low !== undefined || high !== undefined) return { low, high };
  }
  return {};
}

interface RawPoint extends LabPoint {
  seriesKey: string;
  seriesLabel: string;
}

function toPoint(q: Quantity | undefined, ranges: ObservationReferenceRange[] | undefined, base: { t: number; date: string; id: string; sourceId: number }): Omit<RawPoint, 'seriesKey' | 'seriesLabel'> | null {
  if (!q || typeof q.value !== 'number' || !Number.isFinite(q.value)) return null;
  const unit = quantityUnit(q);
  const { low, high } = rangeFor(ranges, unit);
  const outOfRange = (low !== undefined && q.value < low) || (high !== undefined && q.value > high);
  return { ...base, value: q.value, comparator: q.comparator, unit, low, high, outOfRange };
}

export function prepareLabData(items: ResourceItem[]): LabData {
  const raw: RawPoint[] = [];
  let skipped = 0;
  let title = '';
  for (const item of items) {
    const o = item.resource as Observation;
    if (!o || o.resourceType !== 'Observation') {
      skipped++;
      continue;
    }
    if (!title) title = conceptText(o.code) || item.title || '';
    const date = effectiveDate(o, item.date);
    const pd = parseFhirDate(date);
    if (!pd || !date) {
      skipped++;
      continue;
    }
    const base = { t: pd.t, date, id: item.id, sourceId: item.source_id };
    let found = false;
    const main = toPoint(o.valueQuantity, o.referenceRange, base);
    if (main) {
      raw.push({ ...main, seriesKey: 'value', seriesLabel: conceptText(o.code) || 'Value' });
      found = true;
    }
    for (const c of o.component ?? []) {
      const p = toPoint(c.valueQuantity, c.referenceRange, base);
      if (!p) continue;
      const label = conceptText(c.code) || 'Component';
      const key = c.code?.coding?.[0]?.code || label;
      raw.push({ ...p, seriesKey: 'c:' + key, seriesLabel: label });
      found = true;
    }
    if (!found) skipped++;
  }

  const bySeries = new Map<string, RawPoint[]>();
  for (const p of raw) {
    const list = bySeries.get(p.seriesKey) ?? [];
    list.push(p);
    bySeries.set(p.seriesKey, list);
  }

  const series: LabSeries[] = [];
  for (const [key, pts] of bySeries) {
    const unitCounts = new Map<string, number>();
    for (const p of pts) unitCounts.set(p.unit, (unitCounts.get(p.unit) ?? 0) + 1);
    // The most frequent unit is drawn; ties go to the unit of the newest value.
    const newest = pts.reduce((a, b) => (b.t > a.t ? b : a));
    let unit = newest.unit;
    for (const [u, n] of unitCounts) if (n > (unitCounts.get(unit) ?? 0)) unit = u;
    const points = pts
      .filter((p) => p.unit === unit)
      .map(({ seriesKey: _k, seriesLabel: _l, ...p }) => p)
      .sort((a, b) => a.t - b.t);
    const otherUnits = [...unitCounts].filter(([u]) => u !== unit).map(([u, count]) => ({ unit: u, count }));
    series.push({ key, label: pts[0].seriesLabel, unit, points, otherUnits });
  }
  series.sort((a, b) => (a.key === 'value' ? -1 : b.key === 'value' ? 1 : a.label.localeCompare(b.label)));
  return { title, series, skipped };
}

// ---------------------------------------------------------------------------------------------
// Scales

/** Round tick values covering [min, max], about `count` of them. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    min -= pad;
    max += pad;
  }
  if (min > max) [min, max] = [max, min];
  const span = max - min;
  const raw = span / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const start = Math.floor(min / step) * step;
  const end = Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let v = start; v <= end + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** The y domain: values and range bounds, with the ticks' round ends. */
export function valueDomain(series: LabSeries[]): { min: number; max: number; ticks: number[] } {
  const vals: number[] = [];
  for (const s of series)
    for (const p of s.points) {
      vals.push(p.value);
      if (p.low !== undefined) vals.push(p.low);
      if (p.high !== undefined) vals.push(p.high);
    }
  if (vals.length === 0) return { min: 0, max: 1, ticks: [0, 1] };
  let min = Math.min(...vals);
  const max = Math.max(...vals);
  // Keep zero in view for positive values that sit close to it (counts, small concentrations).
  if (min > 0 && min < (max - min) * 0.5) min = 0;
  const ticks = niceTicks(min, max, 5);
  return { min: ticks[0], max: ticks[ticks.length - 1], ticks };
}

const DAY = 86_400_000;

export function timeDomain(series: LabSeries[]): { min: number; max: number } {
  const ts = series.flatMap((s) => s.points.map((p) => p.t));
  if (ts.length === 0) return { min: 0, max: 1 };
  let min = Math.min(...ts);
  let max = Math.max(...ts);
  if (max - min < DAY) {
    min -= 30 * DAY;
    max += 30 * DAY;
  } else {
    const pad = (max - min) * 0.04;
    min -= pad;
    max += pad;
  }
  return { min, max };
}

/** Time ticks on year boundaries (or months for short spans). */
export function timeTicks(min: number, max: number, maxTicks = 7): number[] {
  const start = new Date(min);
  const spanDays = (max - min) / DAY;
  const ticks: number[] = [];
  if (spanDays > 2 * 365) {
    const y0 = start.getUTCFullYear() + 1;
    const y1 = new Date(max).getUTCFullYear();
    const step = Math.max(1, Math.ceil((y1 - y0 + 1) / maxTicks));
    for (let y = y0; y <= y1; y += step) ticks.push(Date.UTC(y, 0, 1));
  } else {
    const months = Math.max(1, Math.ceil(spanDays / 30 / maxTicks));
    const d = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
    while (d.getTime() <= max) {
      ticks.push(d.getTime());
      d.setUTCMonth(d.getUTCMonth() + months);
    }
  }
  return ticks.filter((t) => t >= min && t <= max);
}
