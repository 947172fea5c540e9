import { describe, expect, it } from 'vitest';
import type { Source } from './api/types';
import { sourceProvenance } from './AppContext';

const base = { status: 'ok', syncing: false, created_at: '2026-01-01T00:00:00Z', resource_count: 1 } as const;
const sources: Source[] = [
  { ...base, id: 1, kind: 'manual', name: 'patient-Ana.json' },
  { ...base, id: 2, kind: 'provider', name: 'Demo Hospital' },
  { ...base, id: 3, kind: 'manual', name: 'Entered by me', self: true },
];

describe('sourceProvenance', () => {
  it('says where a record came from in words', () => {
    expect(sourceProvenance(sources, 1)).toBe('Imported from the file patient-Ana.json');
    expect(sourceProvenance(sources, 2)).toBe('From Demo Hospital');
    expect(sourceProvenance(sources, 3)).toBe('Entered by me');
    expect(sourceProvenance(sources, 9)).toBe('From source 9');
    expect(sourceProvenance(null, null)).toBe('');
  });
});
