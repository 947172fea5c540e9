import { describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { BackupContents, countWords } from './BackupSettings';

describe('backup contents in words', () => {
  it('counts kinds of records in plain plurals', () => {
    expect(countWords(1, 'AllergyIntolerance')).toBe('1 allergy');
    expect(countWords(3, 'AllergyIntolerance')).toBe('3 allergies');
    expect(countWords(123, 'Observation')).toBe('123 test results');
    expect(countWords(14, 'ExplanationOfBenefit')).toBe('14 explanations of benefit');
    expect(countWords(2, 'Encounter')).toBe('2 visits');
  });

  it('shows people, sources and kinds, never FHIR type names', () => {
    render(
      <BackupContents
        summary={{
          name: 'family.db',
          size: 1_300_000,
          schema: 6,
          total: 215,
          counts: { Observation: 123, Encounter: 14 },
          people: [{ name: 'Raúl Fernández', birth_date: '1971-12-23', records: 213 }],
          sources: [{ name: 'General Hospital', kind: 'provider', records: 215 }],
          newest: '2026-12-07T06:15:08Z',
        }}
      />,
    );
    const box = screen.getByTestId('backup-contents');
    expect(box.textContent).toContain('family.db is a good backup');
    expect(box.textContent).toContain('Raúl Fernández');
    expect(box.textContent).toContain('General Hospital (a provider): 215 records');
    expect(box.textContent).toContain('123 test results');
    expect(box.textContent).not.toContain('Observation');
  });
});
