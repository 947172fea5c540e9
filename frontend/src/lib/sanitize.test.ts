import { describe, expect, it } from 'vitest';
import { sanitizeNarrative } from './sanitize';

const HOSTILE = `<div xmlns="http://www.w3.org/1999/xhtml">
  <h3>Summary</h3>
  <p>Before<script>window.__pwned = 1</script>after</p>
  <img src="x" onerror="window.__pwned = 2"/>
  <img src="http://evil.example/track.png" alt="tracker"/>
  <img srcset="http://evil.example/a.png 1x" src="data:image/png;base64,iVBORw0KGgo="/>
  <a href=" javascript:window.__pwned=3">click me</a>
  <a href="JaVaScRiPt&#58;alert(1)">encoded</a>
  <a href="https://example.org/info" target="_top" onclick="window.__pwned=4">more info</a>
  <a href="#section">fragment</a>
  <a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data link</a>
  <p style="background:url(http://evil.example/bg.png)">styled</p>
  <div style="background-image: url('https://evil.example/x')" class="btn btn-danger" id="root">c</div>
  <iframe src="http://evil.example/frame"></iframe>
  <object data="http://evil.example/o.swf"></object>
  <embed src="http://evil.example/e.swf"/>
  <form action="http://evil.example/f"><input name="q"/><button>go</button></form>
  <style>body { background: url(http://evil.example/css.png) }</style>
  <link rel="stylesheet" href="http://evil.example/x.css"/>
  <svg><image href="http://evil.example/svg.png"/><script>window.__pwned=5</script></svg>
  <math><mtext><img src=x onerror="window.__pwned=6"></mtext></math>
  <video src="http://evil.example/v.mp4" poster="http://evil.example/p.png"></video>
  <table><tr><th scope="col">Test</th><td colspan="2" onmouseover="window.__pwned=7">5.4 mmol/L</td></tr></table>
  <ul><li>one</li></ul>
  <base href="http://evil.example/"/>
  <meta http-equiv="refresh" content="0;url=http://evil.example/"/>
</div>`;

function parse(html: string): HTMLElement {
  const el = document.createElement('div');
  el.innerHTML = html; // jsdom: no script runs, no resource is fetched
  return el;
}

describe('sanitizeNarrative', () => {
  const out = sanitizeNarrative(HOSTILE);
  const dom = parse(out);

  it('removes scripts and every active or embedding element', () => {
    for (const tag of ['script', 'iframe', 'object', 'embed', 'form', 'input', 'button', 'style', 'link', 'svg', 'math', 'video', 'base', 'meta']) {
      expect(dom.querySelector(tag), tag).toBeNull();
    }
    expect(out).not.toMatch(/__pwned/);
  });

  it('removes every event handler attribute', () => {
    for (const el of dom.querySelectorAll('*')) {
      for (const a of el.attributes) expect(a.name.startsWith('on'), `${el.tagName} ${a.name}`).toBe(false);
    }
  });

  it('leaves no remote URL anywhere (no src, srcset, href to load, no CSS url())', () => {
    expect(out).not.toMatch(/evil\.example/);
    expect(out).not.toMatch(/url\(/i);
    expect(dom.querySelector('[style]')).toBeNull();
    expect(dom.querySelector('[srcset]')).toBeNull();
    expect(dom.querySelector('[class]')).toBeNull();
    expect(dom.querySelector('[id]')).toBeNull();
    for (const img of dom.querySelectorAll('img')) expect(img.getAttribute('src')).toMatch(/^data:image\/png;base64,/);
  });

  it('drops images with remote or broken sources, keeps inline raster data images', () => {
    const imgs = dom.querySelectorAll('img');
    expect(imgs.length).toBe(1);
    expect(dom.querySelector('img[alt="tracker"]')).toBeNull();
  });

  it('makes javascript:, data: and fragment links inert and keeps http(s) links', () => {
    const links = [...dom.querySelectorAll('a')];
    const byText = (t: string) => links.find((a) => a.textContent === t)!;
    expect(byText('click me').hasAttribute('href')).toBe(false);
    expect(byText('encoded').hasAttribute('href')).toBe(false);
    expect(byText('fragment').hasAttribute('href')).toBe(false);
    expect(byText('data link').hasAttribute('href')).toBe(false);
    const ok = byText('more info');
    expect(ok.getAttribute('href')).toBe('https://example.org/info');
    expect(ok.getAttribute('rel')).toBe('noopener noreferrer nofollow');
    expect(ok.hasAttribute('target')).toBe(false);
    expect(ok.hasAttribute('onclick')).toBe(false);
  });

  it('keeps the readable content: headings, text, tables, lists', () => {
    expect(dom.querySelector('h3')?.textContent).toBe('Summary');
    expect(dom.textContent).toContain('Beforeafter');
    expect(dom.querySelector('th')?.getAttribute('scope')).toBe('col');
    expect(dom.querySelector('td')?.getAttribute('colspan')).toBe('2');
    expect(dom.querySelector('td')?.textContent).toBe('5.4 mmol/L');
    expect(dom.querySelector('li')?.textContent).toBe('one');
    expect(dom.textContent).toContain('styled');
  });

  it('handles empty input', () => {
    expect(sanitizeNarrative('')).toBe('');
  });

  it('keeps UTF-8 text intact', () => {
    expect(parse(sanitizeNarrative('<div>José María Casares — Raúl Fernández ✓</div>')).textContent).toBe('José María Casares — Raúl Fernández ✓');
  });

  it('does not let mutation tricks through', () => {
    const tricky = [
      '<noscript><p title="</noscript><img src=x onerror=window.__pwned=8>">',
      '<a href="java\u0000script:alert(1)">x</a>',
      '<a href="&#x6A;avascript:alert(1)">y</a>',
      '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
      '<div><template><img src=x onerror=window.__pwned=9></template></div>',
    ].join('');
    const o = sanitizeNarrative(tricky);
    expect(o).not.toMatch(/onerror|__pwned|javascript|svg\+xml/i);
    const d = parse(o);
    expect(d.querySelectorAll('a[href]').length).toBe(0);
    expect(d.querySelectorAll('img').length).toBe(0);
  });
});
