import { describe, expect, it } from 'vitest';
import { countLabel, isMinorType, orderedTypes, typeInfo } from './resources';

describe('type labels', () => {
  it('uses the singular for one and the plural otherwise', () => {
    expect(countLabel('Practitioner', 1)).toBe('Doctor');
    expect(countLabel('Practitioner', 2)).toBe('Doctors');
    expect(countLabel('Practitioner', 0)).toBe('Doctors');
    expect(countLabel('ExplanationOfBenefit', 1)).toBe('Explanation of benefit');
    expect(countLabel('DiagnosticReport', 1)).toBe('Report');
  });

  it('keeps unknown types readable', () => {
    expect(typeInfo('NutritionOrder').label).toBe('Nutrition Order');
    expect(countLabel('NutritionOrder', 1)).toBe('Nutrition Order');
  });

  it('orders health records before billing and directory kinds and drops empty ones', () => {
    expect(orderedTypes({ Organization: 1, Claim: 4, Condition: 3, Zeta: 2, Alpha: 1, Observation: 0, Patient: 1 })).toEqual([
      'Condition',
      'Alpha',
      'Zeta',
      'Claim',
      'Patient',
      'Organization',
    ]);
    expect(isMinorType('Claim')).toBe(true);
    expect(isMinorType('Condition')).toBe(false);
  });
});
