import { describe, expect, it } from 'vitest';
import { render } from '@testing-library/react';
import type { ResourceItem } from '../api/types';
import { prepareLabData } from '../lib/labs';
import { LabChart } from './LabChart';

const item = (id: string, date: string, value: number, range = true): ResourceItem => ({
  source_id: 1,
  type: 'Observation',
  id,
  date,
  resource: {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { text: 'Glucose' },
    effectiveDateTime: date,
    valueQuantity: { value, unit: 'mg/dL' },
    ...(range ? { referenceRange: [{ low: { value: 70, unit: 'mg/dL' }, high: { value: 100, unit: 'mg/dL' } }] } : {}),
  },
});

describe('LabChart', () => {
  it('draws one mark per value, the range band, and an accessible summary', () => {
    const data = prepareLabData([item('a', '2015-01-01', 80), item('b', '2017-01-01', 120), item('c', '2020-06-01', 90)]);
    const { container, getByRole } = render(<LabChart data={data} />);
    const svg = getByRole('img');
    expect(svg.getAttribute('aria-label')).toMatch(/Glucose: 3 values from .* latest 90 mg\/dL, normal range shown as a band/);
    expect(container.querySelectorAll('circle.point')).toHaveLength(2);
    expect(container.querySelectorAll('rect.point.out')).toHaveLength(1);
    expect(container.querySelectorAll('path.band')).toHaveLength(1);
    expect(container.querySelector('path.line')).not.toBeNull();
    expect(container.textContent).toContain('Normal range');
    expect(container.textContent).toContain('Outside the normal range');
    // Year ticks.
    expect([...container.querySelectorAll('text.tick')].map((t) => t.textContent)).toContain('2018');
  });

  it('draws no band when there is no reference range', () => {
    const data = prepareLabData([item('a', '2015-01-01', 80, false)]);
    const { container } = render(<LabChart data={data} />);
    expect(container.querySelector('path.band')).toBeNull();
    expect(container.querySelectorAll('circle.point')).toHaveLength(1);
  });
});
