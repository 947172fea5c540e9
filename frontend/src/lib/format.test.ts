import { describe, expect, it } from 'vitest';
import { ageInYears, codeKey, formatBytes, formatCount, formatDate, pickLocale, formatQuantity, formatRange, humanName, monthHeading, parseFhirDate, prettyUnit, referenceTarget } from './format';

describe('dates', () => {
  it('parses partial dates with their precision', () => {
    expect(parseFhirDate('2020')).toEqual({ t: Date.UTC(2020, 0, 1), precision: 'year' });
    expect(parseFhirDate('2020-03')).toEqual({ t: Date.UTC(2020, 2, 1), precision: 'month' });
    expect(parseFhirDate('2020-03-12')).toEqual({ t: Date.UTC(2020, 2, 12), precision: 'day' });
    expect(parseFhirDate('2020-03-12T10:00:00+02:00')).toEqual({ t: Date.UTC(2020, 2, 12, 8), precision: 'time' });
    expect(parseFhirDate('not a date')).toBeNull();
    expect(parseFhirDate(undefined)).toBeNull();
  });

  it('never shifts a date-only value by the time zone', () => {
    expect(formatDate('1974-07-05', 'en-GB')).toBe('5 Jul 1974');
    expect(formatDate('2020-03', 'en-GB')).toBe('Mar 2020');
    expect(formatDate('2020', 'en-GB')).toBe('2020');
    expect(formatDate('garbage', 'en-GB')).toBe('garbage');
  });

  it('computes ages', () => {
    expect(ageInYears('1974-07-05', new Date(Date.UTC(2024, 6, 4)))).toBe(49);
    expect(ageInYears('1974-07-05', new Date(Date.UTC(2024, 6, 5)))).toBe(50);
    expect(ageInYears(undefined)).toBeNull();
  });

  it('groups by month', () => {
    expect(monthHeading('2021-03-09', 'en-GB')).toBe('March 2021');
    expect(monthHeading(null)).toBe('No date');
  });
});

describe('names and codes', () => {
  it('keeps accented names intact and prefers the official name', () => {
    expect(humanName([{ use: 'official', given: ['José', 'María'], family: 'Casares', prefix: ['Mr.'] }])).toBe('José María Casares');
    expect(humanName([{ use: 'nickname', given: ['Pepe'] }, { use: 'official', given: ['Raúl'], family: 'Fernández' }])).toBe('Raúl Fernández');
    expect(humanName([{ text: 'Miguel Ángel Garica' }])).toBe('Miguel Ángel Garica');
    expect(humanName(undefined)).toBe('');
  });

  it('builds code keys for /resources?code=', () => {
    expect(codeKey({ coding: [{ system: 'http://loinc.org', code: '2339-0' }] })).toBe('http://loinc.org|2339-0');
    expect(codeKey({ coding: [{ code: '2339-0' }] })).toBe('2339-0');
    expect(codeKey({ text: 'x' })).toBe('');
  });

  it('recognises internal references only', () => {
    expect(referenceTarget({ reference: 'Encounter/abc-1' })).toEqual({ type: 'Encounter', id: 'abc-1' });
    expect(referenceTarget({ reference: 'urn:uuid:1234' })).toBeNull();
    expect(referenceTarget({ reference: 'http://evil.example/Patient/1' })).toBeNull();
  });
});

describe('quantities', () => {
  it('formats values with units', () => {
    expect(formatQuantity({ value: 5.474829, unit: 'mmol/L' }, 'en')).toBe('5.47 mmol/L');
    expect(formatQuantity({ value: 120, unit: 'mm[Hg]' }, 'en')).toBe('120 mmHg');
    expect(formatQuantity({ value: 0.00421, code: 'g/L' }, 'en')).toBe('0.00421 g/L');
    expect(formatQuantity({ value: 5, comparator: '<', unit: 'ng/mL' }, 'en')).toBe('<5 ng/mL');
    expect(formatQuantity({ unit: 'kg' })).toBe('');
    expect(prettyUnit('{score}')).toBe('score');
  });

  it('formats ranges, including one-sided ones', () => {
    expect(formatRange({ low: { value: 70, unit: 'mg/dL' }, high: { value: 100, unit: 'mg/dL' } }, 'en')).toBe('70–100 mg/dL');
    expect(formatRange({ high: { value: 200 } }, 'en')).toBe('≤ 200');
  });

  it('formats byte sizes', () => {
    expect(formatBytes(512, 'en')).toBe('512 bytes');
    expect(formatBytes(104_857_600, 'en')).toBe('105 MB');
    expect(formatBytes(1_500_000, 'en')).toBe('1.5 MB');
  });
});

describe('locale', () => {
  it('keeps the locale the caller gives', () => {
    expect(pickLocale('de-DE', 'en-US-u-va-posix')).toBe('de-DE');
    expect(formatCount(83195, 'de-DE')).toBe('83.195');
    expect(formatCount(83195, 'en-GB')).toBe('83,195');
  });
  it('replaces the ungrouped POSIX locale of LANG=C systems with English', () => {
    expect(new Intl.NumberFormat('en-US-u-va-posix').format(83195)).toBe('83195');
    expect(pickLocale(undefined, 'en-US-u-va-posix')).toBe('en-US');
    expect(formatCount(83195, pickLocale(undefined, 'en-US-u-va-posix'))).toBe('83,195');
    expect(pickLocale(undefined, 'fr-FR')).toBeUndefined();
  });
});
