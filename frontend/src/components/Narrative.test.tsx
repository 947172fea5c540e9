import { describe, expect, it, vi } from 'vitest';
import { fireEvent, render } from '@testing-library/react';
import { Narrative } from './Narrative';

describe('Narrative', () => {
  it('opens http(s) links outside the app and ignores inert links', () => {
    const BrowserOpenURL = vi.fn();
    vi.stubGlobal('runtime', { BrowserOpenURL });
    const { container } = render(<Narrative div={'<div><a href="https://example.org/x">ok</a> <a href="javascript:alert(1)">bad</a></div>'} />);
    const [ok, bad] = container.querySelectorAll('a');
    const e1 = new MouseEvent('click', { bubbles: true, cancelable: true });
    ok.dispatchEvent(e1);
    expect(e1.defaultPrevented).toBe(true);
    expect(BrowserOpenURL).toHaveBeenCalledWith('https://example.org/x');
    fireEvent.click(bad);
    expect(BrowserOpenURL).toHaveBeenCalledTimes(1);
    expect(bad.hasAttribute('href')).toBe(false);
  });

  it('renders nothing for an empty narrative', () => {
    const { container } = render(<Narrative div={'<div><script>x</script></div>'} />);
    expect(container.querySelector('[data-testid="narrative"]')).toBeNull();
  });
});
