import { describe, expect, it, vi, beforeEach } from 'vitest';
import {
  saveAttachment,
  ApiError,
  TOKEN_KEY,
  buildUrl,
  captureToken,
  cancelImport,
  exportBundle,
  fetchAllPages,
  getCounts,
  getProfiles,
  getToken,
  listResources,
  onUnauthorized,
  parseError,
  renameSource,
  saveExport,
  uploadImport,
  UNAUTHORIZED_MESSAGE,
} from './client';

function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

function mockFetch(...responses: Response[]) {
  const fn = vi.fn<typeof fetch>();
  for (const r of responses) fn.mockResolvedValueOnce(r);
  vi.stubGlobal('fetch', fn);
  return fn;
}

beforeEach(() => {
  vi.unstubAllGlobals();
  history.replaceState(null, '', '/');
});

describe('captureToken', () => {
  const cases: { name: string; hash: string; token: string | null; after: string }[] = [
    { name: 'plain fragment', hash: '#token=abc123', token: 'abc123', after: '#/' },
    { name: 'route with token param', hash: '#/timeline?token=t0k&q=flu', token: 't0k', after: '#/timeline?q=flu' },
    { name: 'no token', hash: '#/labs', token: null, after: '#/labs' },
    { name: 'token among other params', hash: '#x=1&token=zz', token: 'zz', after: '#/' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      history.replaceState(null, '', '/index.html' + c.hash);
      const replace = vi.spyOn(history, 'replaceState');
      expect(captureToken()).toBe(c.token);
      expect(location.hash).toBe(c.after);
      expect(location.href).not.toContain('token=');
      expect(getToken()).toBe(c.token);
      if (c.token) {
        expect(sessionStorage.getItem(TOKEN_KEY)).toBe(c.token);
        expect(replace).toHaveBeenCalled();
        expect(location.pathname).toBe('/index.html');
      }
    });
  }
});

describe('requests', () => {
  it('sends the bearer token on every call and never in the URL', async () => {
    sessionStorage.setItem(TOKEN_KEY, 'secret-token-value');
    const f = mockFetch(jsonResponse({ Observation: 3 }), jsonResponse({ items: [], next_cursor: 'c2' }));
    await getCounts({ source: 2 });
    await listResources({ type: 'Observation', code: 'http://loinc.org|2339-0', sort: 'date', cursor: 'c1', limit: 10 });
    expect(f).toHaveBeenCalledTimes(2);
    for (const [url, init] of f.mock.calls) {
      expect(String(url)).not.toContain('secret-token-value');
      expect(String(url)).not.toMatch(/token/i);
      expect((init?.headers as Record<string, string>).Authorization).toBe('Bearer secret-token-value');
    }
    expect(f.mock.calls[0][0]).toBe('/api/v1/resources/counts?source=2');
    const u = new URL(String(f.mock.calls[1][0]), 'http://x');
    expect(u.pathname).toBe('/api/v1/resources');
    expect(u.searchParams.get('code')).toBe('http://loinc.org|2339-0');
    expect(u.searchParams.get('cursor')).toBe('c1');
    expect(u.searchParams.get('sort')).toBe('date');
    expect(u.searchParams.get('limit')).toBe('10');
  });

  it('sends no Authorization header without a token (desktop window)', async () => {
    const f = mockFetch(jsonResponse({}));
    await getCounts();
    const h = f.mock.calls[0][1]?.headers as Record<string, string>;
    expect(h.Authorization).toBeUndefined();
  });

  it('sends JSON bodies with a JSON content type', async () => {
    const f = mockFetch(jsonResponse({ id: 1, name: 'Mine' }));
    await renameSource(1, 'Mine');
    const init = f.mock.calls[0][1]!;
    expect(init.method).toBe('PATCH');
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
    expect(init.body).toBe('{"name":"Mine"}');
  });

  it('skips empty query values', () => {
    expect(buildUrl('/timeline', { q: '', types: undefined, source: null, limit: 5 })).toBe('/api/v1/timeline?limit=5');
  });

  it('turns a 401 into the "open the link" message and tells listeners', async () => {
    mockFetch(jsonResponse({ error: { code: 'unauthorized', message: 'missing or wrong token' } }, 401));
    const seen = vi.fn();
    const off = onUnauthorized(seen);
    const err = await getCounts().catch((e) => e);
    off();
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(401);
    expect(err.unauthorized).toBe(true);
    expect(seen).toHaveBeenCalledTimes(1);
  });

  it('treats a 404 on optional routes as absent', async () => {
    mockFetch(jsonResponse({ error: { code: 'not_found', message: 'no such route' } }, 404));
    expect(await getProfiles()).toBeNull();
  });

  it('reports a network failure in plain words', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('Failed to fetch')));
    const err = await getCounts().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('network');
    expect(err.message).toMatch(/Could not reach Fasten/);
  });

  it('cancelImport ignores an import the server no longer knows', async () => {
    const f = mockFetch(jsonResponse({ error: { code: 'not_found', message: 'unknown import' } }, 404));
    await expect(cancelImport('ui-abc12345')).resolves.toBeUndefined();
    expect(f.mock.calls[0][0]).toBe('/api/v1/imports/ui-abc12345');
    expect(f.mock.calls[0][1]?.method).toBe('DELETE');
  });

  it('exportBundle takes the file name from Content-Disposition', async () => {
    sessionStorage.setItem(TOKEN_KEY, 'tok');
    const f = mockFetch(
      new Response('{"resourceType":"Bundle"}', {
        status: 200,
        headers: { 'Content-Type': 'application/fhir+json', 'Content-Disposition': 'attachment; filename="fasten-export.json"' },
      }),
    );
    const file = await exportBundle({ source: 3 });
    expect(file.filename).toBe('fasten-export.json');
    expect(await file.blob.text()).toContain('Bundle');
    expect(f.mock.calls[0][0]).toBe('/api/v1/export?source=3');
    expect((f.mock.calls[0][1]?.headers as Record<string, string>).Authorization).toBe('Bearer tok');
  });

  it('saveExport uses the desktop save dialog when the window binds it, without fetching', async () => {
    const f = mockFetch();
    const SaveExport = vi.fn().mockResolvedValue('/home/me/records.json');
    vi.stubGlobal('go', { app: { Shell: { SaveExport } } });
    try {
      expect(await saveExport({ source: 4, profile: 2 })).toBe('/home/me/records.json');
      expect(SaveExport).toHaveBeenCalledWith(4, 2);
      expect(f).not.toHaveBeenCalled();
      SaveExport.mockResolvedValueOnce('');
      expect(await saveExport()).toBe(''); // cancelled
      expect(SaveExport).toHaveBeenLastCalledWith(0, 0);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('saveAttachment writes through the desktop save dialog in the window, and downloads the loaded bytes in a browser', async () => {
    const file = { blob: new Blob(['%PDF-1.4']), filename: 'note.pdf' };
    const SaveAttachment = vi.fn().mockResolvedValue('/home/me/note.pdf');
    vi.stubGlobal('go', { app: { Shell: { SaveAttachment } } });
    try {
      expect(await saveAttachment('DocumentReference', 'd1', 0, 7, file)).toBe('/home/me/note.pdf');
      expect(SaveAttachment).toHaveBeenCalledWith('DocumentReference', 'd1', 7, 0, 'note.pdf');
    } finally {
      vi.unstubAllGlobals();
    }
    const create = vi.fn().mockReturnValue('blob:x');
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL: create, revokeObjectURL: vi.fn() }));
    try {
      expect(await saveAttachment('DocumentReference', 'd1', 0, undefined, file)).toBeNull();
      expect(create).toHaveBeenCalledWith(file.blob);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});

describe('parseError', () => {
  it('reads the JSON error shape', () => {
    const e = parseError(404, JSON.stringify({ error: { code: 'not_found', message: 'No source with id 7.' } }));
    expect(e.status).toBe(404);
    expect(e.code).toBe('not_found');
    expect(e.message).toBe('No source with id 7.');
  });

  it('reads an OperationOutcome: code from details, every diagnostics kept', () => {
    const oo = {
      resourceType: 'OperationOutcome',
      issue: [
        {
          severity: 'error',
          code: 'structure',
          details: { coding: [{ system: 'x', code: 'invalid_json' }] },
          diagnostics: 'bad.json: line 15, column 3 (byte 402), entry 4: unexpected end of JSON input',
        },
        { severity: 'error', code: 'invalid', diagnostics: 'entry 9: resourceType is missing' },
      ],
    };
    const e = parseError(400, JSON.stringify(oo));
    expect(e.code).toBe('invalid_json');
    expect(e.message).toBe('bad.json: line 15, column 3 (byte 402), entry 4: unexpected end of JSON input');
    expect(e.details).toHaveLength(2);
    expect(e.details[1]).toBe('entry 9: resourceType is missing');
  });

  it('falls back to details.text and the issue code', () => {
    const e = parseError(400, JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ code: 'too-long', details: { text: 'Too deep' } }] }));
    expect(e.code).toBe('too-long');
    expect(e.message).toBe('Too deep');
  });

  it('explains a 401 without a body', () => {
    expect(parseError(401, '').message).toBe(UNAUTHORIZED_MESSAGE);
  });

  it('explains a 413 without a body', () => {
    expect(parseError(413, '').code).toBe('too_large');
  });

  it('keeps short plain text and hides HTML', () => {
    expect(parseError(502, 'upstream down', 'Bad Gateway').message).toBe('Fasten answered with an error (HTTP 502 Bad Gateway): upstream down');
    expect(parseError(500, '<html><body>boom</body></html>').message).toBe('Fasten answered with an error (HTTP 500).');
  });
});

describe('fetchAllPages', () => {
  it('follows next_cursor to the last page', async () => {
    const pages: Record<string, { items: number[]; next_cursor?: string }> = {
      start: { items: [1, 2], next_cursor: 'b' },
      b: { items: [3, 4], next_cursor: 'c' },
      c: { items: [5] },
    };
    const seen: (string | undefined)[] = [];
    const res = await fetchAllPages(async (cursor) => {
      seen.push(cursor);
      return pages[cursor ?? 'start'];
    });
    expect(res.items).toEqual([1, 2, 3, 4, 5]);
    expect(res.truncated).toBe(false);
    expect(seen).toEqual([undefined, 'b', 'c']);
  });

  it('stops at the cap and says so', async () => {
    let n = 0;
    const res = await fetchAllPages(async () => ({ items: [n++, n++], next_cursor: 'more' + n }), 5);
    expect(res.items.length).toBe(6);
    expect(res.truncated).toBe(true);
  });

  it('does not loop on a repeated cursor', async () => {
    const res = await fetchAllPages(async () => ({ items: [1], next_cursor: 'same' }), 100);
    expect(res.items.length).toBe(2);
  });
});

// A minimal XMLHttpRequest double: records what was sent, lets the test drive the events.
class FakeXhr {
  static last: FakeXhr;
  method = '';
  url = '';
  headers: Record<string, string> = {};
  body: FormData | null = null;
  status = 0;
  statusText = '';
  responseText = '';
  upload: { onprogress?: (e: ProgressEvent) => void; onload?: () => void } = {};
  onload?: () => void;
  onerror?: () => void;
  onabort?: () => void;
  aborted = false;
  constructor() {
    FakeXhr.last = this;
  }
  open(m: string, u: string) {
    this.method = m;
    this.url = u;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(b: FormData) {
    this.body = b;
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
}

describe('uploadImport', () => {
  it('posts the files with X-Import-Id and the token header, reports progress and the result', async () => {
    vi.stubGlobal('XMLHttpRequest', FakeXhr);
    sessionStorage.setItem(TOKEN_KEY, 'tok');
    const progress = vi.fn();
    const file = new File(['{"resourceType":"Patient"}'], 'p.json', { type: 'application/json' });
    const h = uploadImport([file], { skipInvalid: true, onUploadProgress: progress });
    const x = FakeXhr.last;
    expect(x.method).toBe('POST');
    expect(x.url).toBe('/api/v1/imports');
    expect(x.url).not.toContain('tok');
    expect(x.headers.Authorization).toBe('Bearer tok');
    expect(x.headers['X-Import-Id']).toBe(h.importId);
    expect(h.importId).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    expect((x.body!.get('file') as File).name).toBe('p.json');
    expect(x.body!.get('skip_invalid')).toBe('true');
    x.upload.onprogress!({ lengthComputable: true, loaded: 10, total: 26 } as ProgressEvent);
    expect(progress).toHaveBeenCalledWith(10, 26);
    x.status = 200;
    x.responseText = JSON.stringify({ source_id: 1, counts: { Patient: 1 }, skipped: [] });
    x.onload!();
    await expect(h.done).resolves.toMatchObject({ source_id: 1, counts: { Patient: 1 } });
  });

  it('rejects with the OperationOutcome diagnostics on a refused file', async () => {
    vi.stubGlobal('XMLHttpRequest', FakeXhr);
    const h = uploadImport([new File(['{'], 'bad.json')]);
    const x = FakeXhr.last;
    x.status = 400;
    x.responseText = JSON.stringify({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'structure', details: { coding: [{ code: 'invalid_json' }] }, diagnostics: 'bad.json: line 1, column 2: unexpected end' }],
    });
    x.onload!();
    const err = await h.done.catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe('invalid_json');
    expect(err.message).toBe('bad.json: line 1, column 2: unexpected end');
  });

  it('rejects with code cancelled on abort', async () => {
    vi.stubGlobal('XMLHttpRequest', FakeXhr);
    const h = uploadImport([new File(['x'], 'a.json')]);
    h.abort();
    const err = await h.done.catch((e) => e);
    expect(err.code).toBe('cancelled');
    expect(FakeXhr.last.aborted).toBe(true);
  });
});
