import { useEffect, useId, useRef, useState } from 'react';
import { formatDate, formatNumber } from '../lib/format';
import { timeDomain, timeTicks, valueDomain, type LabData, type LabPoint, type LabSeries } from '../lib/labs';

const WIDE = 720;
const M = { top: 16, right: 20, bottom: 36, left: 64 };

/**
 * The drawing follows the width it is given (text keeps its size instead of shrinking with the
 * picture): on a narrow window fewer ticks, a shorter plot.
 */
function useWidth(): [React.RefObject<HTMLElement | null>, number] {
  const ref = useRef<HTMLElement>(null);
  const [w, setW] = useState(WIDE);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === 'undefined') return;
    const ro = new ResizeObserver((entries) => {
      const cw = Math.round(entries[0].contentRect.width);
      if (cw > 0) setW(Math.max(260, Math.min(cw, 1000)));
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, w];
}

function bandPath(points: LabPoint[], x: (t: number) => number, y: (v: number) => number, yMin: number, yMax: number, W: number): string | null {
  const pts = points.filter((p) => p.low !== undefined || p.high !== undefined);
  if (pts.length === 0) return null;
  const hi = (p: LabPoint) => y(p.high ?? yMax);
  const lo = (p: LabPoint) => y(p.low ?? yMin);
  const same = pts.every((p) => p.low === pts[0].low && p.high === pts[0].high);
  if (same) {
    const x0 = M.left;
    const x1 = W - M.right;
    return `M${x0},${hi(pts[0])}H${x1}V${lo(pts[0])}H${x0}Z`;
  }
  const top = pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.t)},${hi(p)}`).join('');
  const bottom = [...pts].reverse().map((p) => `L${x(p.t)},${lo(p)}`).join('');
  return top + bottom + 'Z';
}

function tickLabel(t: number, spanDays: number): string {
  const d = new Date(t);
  if (spanDays > 2 * 365) return String(d.getUTCFullYear());
  return new Intl.DateTimeFormat(undefined, { month: 'short', year: '2-digit', timeZone: 'UTC' }).format(d);
}

export function LabChart({ data }: { data: LabData }) {
  const clip = useId();
  const [ref, W] = useWidth();
  const narrow = W < 520;
  const H = narrow ? 240 : 300;
  const series = data.series.filter((s) => s.points.length > 0);
  if (series.length === 0) return <p>No numeric values to draw for this test.</p>;
  const td = timeDomain(series);
  const vd = valueDomain(series);
  const x = (t: number) => M.left + ((t - td.min) / (td.max - td.min)) * (W - M.left - M.right);
  const y = (v: number) => H - M.bottom - ((v - vd.min) / (vd.max - vd.min)) * (H - M.top - M.bottom);
  const spanDays = (td.max - td.min) / 86_400_000;
  const xt = timeTicks(td.min, td.max, narrow ? 4 : 7);
  const units = [...new Set(series.map((s) => s.unit))].filter(Boolean).join(', ');
  const all = series.flatMap((s) => s.points);
  const first = all.reduce((a, b) => (b.t < a.t ? b : a));
  const last = all.reduce((a, b) => (b.t > a.t ? b : a));
  const hasRange = series.some((s) => s.points.some((p) => p.low !== undefined || p.high !== undefined));
  const hasOut = all.some((p) => p.outOfRange);
  const label =
    `${data.title || 'Test'}: ${all.length} value${all.length === 1 ? '' : 's'} from ${formatDate(first.date)} to ${formatDate(last.date)}` +
    `, latest ${formatNumber(last.value)} ${last.unit}` +
    (hasRange ? `, normal range shown as a band` : '');

  return (
    <figure className="chart" ref={ref as React.RefObject<HTMLElement>}>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label} preserveAspectRatio="xMidYMid meet">
        <defs>
          <clipPath id={clip}>
            <rect x={M.left} y={M.top} width={W - M.left - M.right} height={H - M.top - M.bottom} />
          </clipPath>
        </defs>
        {series.map((s) => {
          const d = bandPath(s.points, x, y, vd.min, vd.max, W);
          return d ? <path key={'band-' + s.key} d={d} className={`band band-${series.indexOf(s) % 3}`} clipPath={`url(#${clip})`} /> : null;
        })}
        {vd.ticks.map((v) => (
          <g key={'y' + v}>
            <line x1={M.left} x2={W - M.right} y1={y(v)} y2={y(v)} className="gridline" />
            <text x={M.left - 8} y={y(v)} className="tick" textAnchor="end" dominantBaseline="middle">
              {formatNumber(v)}
            </text>
          </g>
        ))}
        {xt.map((t) => (
          <g key={'x' + t}>
            <line x1={x(t)} x2={x(t)} y1={H - M.bottom} y2={H - M.bottom + 5} className="axis" />
            <text x={x(t)} y={H - M.bottom + 20} className="tick" textAnchor="middle">
              {tickLabel(t, spanDays)}
            </text>
          </g>
        ))}
        <line x1={M.left} x2={W - M.right} y1={H - M.bottom} y2={H - M.bottom} className="axis" />
        <line x1={M.left} x2={M.left} y1={M.top} y2={H - M.bottom} className="axis" />
        {units && (
          <text x={14} y={(M.top + H - M.bottom) / 2} className="unit-label" textAnchor="middle" transform={`rotate(-90 14 ${(M.top + H - M.bottom) / 2})`}>
            {units}
          </text>
        )}
        {series.map((s, si) => (
          <SeriesMarks key={s.key} s={s} si={si} x={x} y={y} />
        ))}
      </svg>
      <figcaption className="legend">
        {series.map((s, si) => (
          <span key={s.key} className="legend-item">
            <span className={`swatch series-${si % 3}`} aria-hidden="true" /> {s.label}
            {s.unit ? ` (${s.unit})` : ''}
          </span>
        ))}
        {hasRange && (
          <span className="legend-item">
            <span className="swatch band-swatch" aria-hidden="true" /> Normal range
          </span>
        )}
        {hasOut && (
          <span className="legend-item">
            <span className="swatch out-swatch" aria-hidden="true" /> Outside the normal range
          </span>
        )}
      </figcaption>
      {series.some((s) => s.otherUnits.length > 0) && (
        <p className="muted">
          Not drawn (recorded in another unit):{' '}
          {series
            .flatMap((s) => s.otherUnits.map((o) => `${o.count} value${o.count === 1 ? '' : 's'} in ${o.unit || 'no unit'}`))
            .join(', ')}
          .
        </p>
      )}
    </figure>
  );
}

function SeriesMarks({ s, si, x, y }: { s: LabSeries; si: number; x: (t: number) => number; y: (v: number) => number }) {
  const line = s.points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t)},${y(p.value)}`).join('');
  return (
    <g className={`series series-${si % 3}`}>
      {s.points.length > 1 && <path d={line} className="line" />}
      {s.points.map((p) => (
        <g key={p.id + ':' + p.sourceId + ':' + p.t}>
          {p.outOfRange ? (
            <rect x={x(p.t) - 5.5} y={y(p.value) - 5.5} width={11} height={11} className="point out" transform={`rotate(45 ${x(p.t)} ${y(p.value)})`} />
          ) : (
            <circle cx={x(p.t)} cy={y(p.value)} r={4.5} className="point" />
          )}
          <title>
            {`${s.label}: ${p.comparator ?? ''}${formatNumber(p.value)} ${p.unit} on ${formatDate(p.date)}`}
            {p.outOfRange ? ' (outside the normal range)' : ''}
          </title>
        </g>
      ))}
    </g>
  );
}
