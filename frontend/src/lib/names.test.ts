import { describe, expect, it } from 'vitest';
import type { MedicationRequest, Observation } from 'fhir/r4';
import { friendlyName, medicationName, refLabel, resultFlag, typeWord, unresolvedText, visitGroup } from './names';

describe('naming rules', () => {
  const detail = {
    references: {
      'Practitioner/1': { type: 'Practitioner', id: '1', title: 'Dr. Liane Kunze' },
      'Medication/m1': { type: 'Medication', id: 'm1', title: 'Amoxicillin 250 MG' },
    },
    unresolved: [{ reference: 'Organization/x', type: 'Organization', text: 'a clinic or organisation not in your records' }],
  };

  it('names a resolved reference by its target, never by its type', () => {
    expect(refLabel({ reference: 'Practitioner/1' }, detail)).toMatchObject({ text: 'Dr. Liane Kunze', unresolved: false });
    expect(refLabel({ reference: 'Practitioner/1', display: 'Other' }, detail).text).toBe('Dr. Liane Kunze');
  });

  it('falls back to the display, then to words for what is not in the records', () => {
    expect(refLabel({ reference: 'Practitioner/zz', display: 'Dr. Who' }, detail)).toMatchObject({ text: 'Dr. Who', unresolved: true });
    expect(refLabel({ reference: 'Organization/x' }, detail).text).toBe('a clinic or organisation not in your records');
    expect(refLabel({ reference: 'Practitioner/zz' }, undefined).text).toBe('a doctor not in your records');
    expect(refLabel({ reference: 'Encounter/zz' }, detail).text).toBe('a visit not in your records');
    expect(refLabel({ reference: 'Immunization/zz' }, detail).text).toBe('an immunization not in your records');
    expect(refLabel({ reference: 'Practitioner?identifier=x|1' }, detail).text).toBe('a doctor not in your records');
    expect(unresolvedText(undefined)).toBe('a record not in your records');
    expect(typeWord('NutritionOrder')).toBe('nutrition order');
  });

  it('names a medication by its code, else by the Medication it references', () => {
    const byCode = { resourceType: 'MedicationRequest', medicationCodeableConcept: { coding: [{ display: 'NDA020800 Ibuprofen 200 MG' }] } } as MedicationRequest;
    expect(medicationName(byCode)).toBe('Ibuprofen 200 MG');
    const byRef = { resourceType: 'MedicationRequest', medicationReference: { reference: 'Medication/m1' } } as MedicationRequest;
    expect(medicationName(byRef, detail)).toBe('Amoxicillin 250 MG');
    expect(medicationName({ ...byRef, medicationReference: { reference: 'Medication/gone' } } as MedicationRequest, detail)).toBe('a medication not in your records');
  });

  it('drops vendor prefixes only when something is left', () => {
    expect(friendlyName('NDA020800 Amoxicillin')).toBe('Amoxicillin');
    expect(friendlyName('ANDA078999 Metformin 500 MG')).toBe('Metformin 500 MG');
    expect(friendlyName('NDA020800')).toBe('NDA020800');
    expect(friendlyName('Acetaminophen')).toBe('Acetaminophen');
  });

  it('flags results from interpretation, else from the range', () => {
    const o = (x: Partial<Observation>) => ({ resourceType: 'Observation', status: 'final', code: {}, ...x }) as Observation;
    expect(resultFlag(o({ interpretation: [{ coding: [{ code: 'H' }] }] }))).toBe('high');
    expect(resultFlag(o({ interpretation: [{ coding: [{ code: 'N' }] }] }))).toBe('normal');
    expect(resultFlag(o({ valueQuantity: { value: 130, unit: 'mg/dL' }, referenceRange: [{ low: { value: 70, unit: 'mg/dL' }, high: { value: 99, unit: 'mg/dL' } }] }))).toBe('high');
    expect(resultFlag(o({ valueQuantity: { value: 60, unit: 'mg/dL' }, referenceRange: [{ low: { value: 70, unit: 'mg/dL' } }] }))).toBe('low');
    expect(resultFlag(o({ valueQuantity: { value: 80, unit: 'mg/dL' }, referenceRange: [{ low: { value: 70, unit: 'mg/dL' }, high: { value: 99, unit: 'mg/dL' } }] }))).toBe('normal');
    expect(resultFlag(o({ valueQuantity: { value: 80 } }))).toBe('');
  });

  it('groups a visit by kind', () => {
    expect(visitGroup('Condition')).toBe('Diagnoses');
    expect(visitGroup('Claim')).toBe('Costs');
    expect(visitGroup('ExplanationOfBenefit')).toBe('Costs');
    expect(visitGroup('Observation')).toBe('Tests and results');
  });
});
