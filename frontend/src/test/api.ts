import { vi } from 'vitest';

export type Handler = (url: URL, init?: RequestInit) => unknown | Response | Promise<unknown | Response>;

/** Stubs fetch with handlers keyed by "METHOD /path" (or "/path" for GET). Unknown routes 404. */
export function mockApi(routes: Record<string, Handler | object>) {
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), 'http://127.0.0.1:9300');
    const method = (init?.method ?? 'GET').toUpperCase();
    const h = routes[`${method} ${url.pathname}`] ?? (method === 'GET' ? routes[url.pathname] : undefined);
    if (h === undefined) {
      return new Response(JSON.stringify({ error: { code: 'not_found', message: `No route ${method} ${url.pathname}` } }), { status: 404 });
    }
    const out = typeof h === 'function' ? await (h as Handler)(url, init) : h;
    if (out instanceof Response) return out;
    return new Response(JSON.stringify(out), { status: 200, headers: { 'Content-Type': 'application/json' } });
  });
  vi.stubGlobal('fetch', fn);
  return fn;
}
