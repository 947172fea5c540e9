import { describe, expect, it } from 'vitest';
import type { Observation } from 'fhir/r4';
import type { ResourceItem } from '../api/types';
import { niceTicks, prepareLabData, rangeFor, timeDomain, timeTicks, valueDomain } from './labs';

function obs(id: string, o: Partial<Observation>, source = 1): ResourceItem {
  return {
    source_id: source,
    type: 'Observation',
    id,
    date: o.effectiveDateTime ?? null,
    resource: {
      resourceType: 'Observation',
      id,
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '2339-0', display: 'Glucose' }], text: 'Glucose' },
      ...o,
    } as Observation,
  };
}

const mg = (value: number) => ({ value, unit: 'mg/dL', system: 'http://unitsofmeasure.org', code: 'mg/dL' });

describe('prepareLabData', () => {
  it('sorts points by date whatever the input order, and keeps the unit', () => {
    const d = prepareLabData([
      obs('c', { effectiveDateTime: '2019-03-01T10:00:00+00:00', valueQuantity: mg(95) }),
      obs('a', { effectiveDateTime: '2012-01-05', valueQuantity: mg(80) }),
      obs('b', { effectiveDateTime: '2015-07-20T08:30:00-04:00', valueQuantity: mg(110) }),
    ]);
    expect(d.title).toBe('Glucose');
    expect(d.series).toHaveLength(1);
    const s = d.series[0];
    expect(s.unit).toBe('mg/dL');
    expect(s.points.map((p) => p.id)).toEqual(['a', 'b', 'c']);
    expect(s.points.map((p) => p.value)).toEqual([80, 110, 95]);
    expect(s.points[0].t).toBe(Date.UTC(2012, 0, 5));
    expect(s.points[1].t).toBe(Date.UTC(2015, 6, 20, 12, 30));
  });

  it('reads reference ranges and flags values outside them', () => {
    const range = [{ low: mg(70), high: mg(100) }];
    const d = prepareLabData([
      obs('a', { effectiveDateTime: '2020-01-01', valueQuantity: mg(65), referenceRange: range }),
      obs('b', { effectiveDateTime: '2020-02-01', valueQuantity: mg(85), referenceRange: range }),
      obs('c', { effectiveDateTime: '2020-03-01', valueQuantity: mg(130), referenceRange: range }),
      obs('d', { effectiveDateTime: '2020-04-01', valueQuantity: mg(90) }),
    ]);
    const p = d.series[0].points;
    expect(p.map((x) => [x.low, x.high])).toEqual([[70, 100], [70, 100], [70, 100], [undefined, undefined]]);
    expect(p.map((x) => x.outOfRange)).toEqual([true, false, true, false]);
  });

  it('ignores a reference range in another unit and accepts one-sided ranges', () => {
    expect(rangeFor([{ low: { value: 3.9, unit: 'mmol/L' }, high: { value: 5.5, unit: 'mmol/L' } }], 'mg/dL')).toEqual({});
    expect(rangeFor([{ high: { value: 200, unit: 'mg/dL' } }], 'mg/dL')).toEqual({ low: undefined, high: 200 });
    expect(rangeFor([{ low: { value: 3.9, unit: 'mmol/L' } }, { low: mg(70) }], 'mg/dL')).toEqual({ low: 70, high: undefined });
  });

  it('draws the most frequent unit and lists values in other units', () => {
    const d = prepareLabData([
      obs('a', { effectiveDateTime: '2020-01-01', valueQuantity: mg(90) }),
      obs('b', { effectiveDateTime: '2020-02-01', valueQuantity: mg(95) }),
      obs('c', { effectiveDateTime: '2020-03-01', valueQuantity: { value: 5.1, unit: 'mmol/L' } }),
    ]);
    expect(d.series[0].unit).toBe('mg/dL');
    expect(d.series[0].points).toHaveLength(2);
    expect(d.series[0].otherUnits).toEqual([{ unit: 'mmol/L', count: 1 }]);
  });

  it('makes UCUM units readable', () => {
    const d = prepareLabData([obs('a', { effectiveDateTime: '2020-01-01', valueQuantity: { value: 120, unit: 'mm[Hg]' } })]);
    expect(d.series[0].unit).toBe('mmHg');
  });

  it('splits component observations (blood pressure) into one series per component', () => {
    const bp = (id: string, date: string, sys: number, dia: number) =>
      obs(id, {
        effectiveDateTime: date,
        code: { coding: [{ system: 'http://loinc.org', code: '55284-4', display: 'Blood Pressure' }], text: 'Blood Pressure' },
        component: [
          { code: { coding: [{ code: '8480-6', display: 'Systolic Blood Pressure' }] }, valueQuantity: { value: sys, unit: 'mm[Hg]' } },
          { code: { coding: [{ code: '8462-4', display: 'Diastolic Blood Pressure' }] }, valueQuantity: { value: dia, unit: 'mm[Hg]' } },
        ],
      });
    const d = prepareLabData([bp('b', '2020-02-01', 130, 85), bp('a', '2020-01-01', 120, 80)]);
    expect(d.title).toBe('Blood Pressure');
    expect(d.series.map((s) => s.label)).toEqual(['Diastolic Blood Pressure', 'Systolic Blood Pressure']);
    expect(d.series[1].points.map((p) => p.value)).toEqual([120, 130]);
  });

  it('skips results without a number or a date', () => {
    const d = prepareLabData([
      obs('a', { effectiveDateTime: '2020-01-01', valueString: 'positive' }),
      obs('b', { valueQuantity: mg(90) }),
      obs('c', { effectiveDateTime: '2020-01-01', valueQuantity: mg(91) }),
    ]);
    expect(d.skipped).toBe(2);
    expect(d.series[0].points).toHaveLength(1);
  });

  it('falls back to issued and effectivePeriod for the date', () => {
    const d = prepareLabData([
      obs('a', { issued: '2021-05-01T00:00:00Z', valueQuantity: mg(1) }),
      obs('b', { effectivePeriod: { start: '2020-05-01' }, valueQuantity: mg(2) }),
    ]);
    expect(d.series[0].points.map((p) => p.id)).toEqual(['b', 'a']);
  });
});

describe('scales', () => {
  it('niceTicks covers the range with round steps', () => {
    expect(niceTicks(0, 100, 5)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(3.2, 7.9, 5)).toEqual([3, 4, 5, 6, 7, 8]);
    const t = niceTicks(70, 70);
    expect(t[0]).toBeLessThan(70);
    expect(t[t.length - 1]).toBeGreaterThan(70);
  });

  it('valueDomain includes the reference band', () => {
    const d = prepareLabData([obs('a', { effectiveDateTime: '2020-01-01', valueQuantity: mg(150), referenceRange: [{ low: mg(70), high: mg(100) }] })]);
    const v = valueDomain(d.series);
    expect(v.min).toBeLessThanOrEqual(70);
    expect(v.max).toBeGreaterThanOrEqual(150);
  });

  it('timeDomain pads a single point so it is drawn in the middle', () => {
    const d = prepareLabData([obs('a', { effectiveDateTime: '2020-01-01', valueQuantity: mg(1) })]);
    const td = timeDomain(d.series);
    expect(td.min).toBeLessThan(Date.UTC(2020, 0, 1));
    expect(td.max).toBeGreaterThan(Date.UTC(2020, 0, 1));
    expect(Date.UTC(2020, 0, 1) - td.min).toBe(td.max - Date.UTC(2020, 0, 1));
  });

  it('timeTicks uses years for long spans and months for short ones', () => {
    const years = timeTicks(Date.UTC(2010, 5, 1), Date.UTC(2020, 5, 1));
    expect(years.every((t) => new Date(t).getUTCMonth() === 0 && new Date(t).getUTCDate() === 1)).toBe(true);
    expect(years.length).toBeLessThanOrEqual(7);
    const months = timeTicks(Date.UTC(2020, 0, 15), Date.UTC(2020, 6, 15));
    expect(months.length).toBeGreaterThan(3);
    expect(months.every((t) => new Date(t).getUTCDate() === 1)).toBe(true);
  });
});
