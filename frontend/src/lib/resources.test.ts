import { describe, expect, it } from 'vitest';
import { countLabel, orderedTypes, typeInfo } from './resources';

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

  it('orders clinical types before administrative ones and drops empty ones', () => {
    expect(orderedTypes({ Organization: 1, Condition: 3, Zeta: 2, Alpha: 1, Observation: 0, Patient: 1 })).toEqual([
      'Condition',
      'Patient',
      'Organization',
      'Alpha',
      'Zeta',
    ]);
  });
});
