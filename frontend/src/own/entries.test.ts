import { describe, expect, it } from 'vitest';
import { checkValues, emptyValues, fromResource, isSelfEntered, toResource, type EntryValues } from './entries';

const v = (patch: Partial<EntryValues>): EntryValues => ({ ...emptyValues(patch.kind ?? 'weight', '2025-03-04T08:30'), ...patch });

describe('own entries as FHIR', () => {
  it('makes a LOINC weight with a UCUM unit', () => {
    const r = toResource(v({ kind: 'weight', value: '72.5', unit: 'kg' })) as any;
    expect(r.resourceType).toBe('Observation');
    expect(r.code.coding[0]).toMatchObject({ system: 'http://loinc.org', code: '29463-7' });
    expect(r.valueQuantity).toEqual({ value: 72.5, unit: 'kg', system: 'http://unitsofmeasure.org', code: 'kg' });
    expect(r.effectiveDateTime).toMatch(/^2025-03-04T08:30:00[+-]\d\d:\d\d$/);
  });
  it('makes a blood pressure panel with systolic and diastolic components', () => {
    const r = toResource(v({ kind: 'blood-pressure', value: '128', value2: '82' })) as any;
    expect(r.code.coding[0].code).toBe('85354-9');
    expect(r.component.map((c: any) => [c.code.coding[0].code, c.valueQuantity.value, c.valueQuantity.code])).toEqual([
      ['8480-6', 128, 'mm[Hg]'],
      ['8462-4', 82, 'mm[Hg]'],
    ]);
  });
  it('round-trips every kind through the form values', () => {
    const cases: Partial<EntryValues>[] = [
      { kind: 'weight', value: '70', unit: '[lb_av]' },
      { kind: 'blood-pressure', value: '120', value2: '80', unit: 'mm[Hg]' },
      { kind: 'glucose', value: '5.4', unit: 'mmol/L' },
      { kind: 'condition', text: 'Asthma', date: '2020-01-02' },
      { kind: 'medication', text: 'Salbutamol', detail: '2 puffs as needed', status: 'active', date: '' },
      { kind: 'allergy', text: 'Penicillin', criticality: 'high', detail: 'Hives', date: '' },
      { kind: 'immunization', text: 'Influenza', date: '2024-10-01' },
      { kind: 'note', text: 'Felt dizzy after the new tablets.\nBetter by noon.', date: '2025-03-04T08:30' },
    ];
    for (const c of cases) {
      const values = v(c);
      const back = fromResource(toResource(values));
      expect(back, c.kind).not.toBeNull();
      for (const k of Object.keys(c) as (keyof EntryValues)[]) {
        if (k === 'date' && values.date.length > 10) continue; // instants come back in local time
        expect(back![k], `${c.kind}.${k}`).toEqual(values[k]);
      }
    }
  });
  it('says what is missing before sending', () => {
    expect(checkValues(v({ kind: 'weight', value: '' }))).toMatch(/number/);
    expect(checkValues(v({ kind: 'blood-pressure', value: '120', value2: 'x' }))).toMatch(/diastolic/);
    expect(checkValues(v({ kind: 'condition', text: ' ' }))).toMatch(/name/);
    expect(checkValues(v({ kind: 'weight', value: '70' }))).toBeNull();
  });
  it('recognises the self-entered tag only', () => {
    expect(isSelfEntered({ meta: { tag: [{ system: 'https://fastenhealth.com/fasten-desktop/tags', code: 'self-entered' }] } })).toBe(true);
    expect(isSelfEntered({ meta: { tag: [{ system: 'other', code: 'self-entered' }] } })).toBe(false);
    expect(isSelfEntered({})).toBe(false);
  });
});
