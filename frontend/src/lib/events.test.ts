import { describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../api/client';
import { EventHub, readSse, signalReady, type AppEvent } from './events';

function stream(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}

async function until(cond: () => boolean, ms = 2000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('readSse', () => {
  it('parses named events, JSON data, multi-line data, comments and split chunks', async () => {
    const got: AppEvent[] = [];
    await readSse(
      stream([': keep-alive\n\n', 'event: import.done\ndata: {"source_id":', '4,"counts":{"Patient":1}}\n\n', 'data: {"event":"sync.done","data":{"n":2}}\r\n\r\n', 'event: note\ndata: a\ndata: b\n\n']),
      (e) => got.push(e),
    );
    expect(got).toEqual([
      { type: 'import.done', data: { source_id: 4, counts: { Patient: 1 } } },
      { type: 'sync.done', data: { n: 2 } },
      { type: 'note', data: 'a\nb' },
    ]);
  });
});

describe('EventHub', () => {
  it('uses Wails events in the desktop window', () => {
    const handlers = new Map<string, (...d: unknown[]) => void>();
    const offs: string[] = [];
    const runtime = {
      EventsOn: (name: string, cb: (...d: unknown[]) => void) => {
        handlers.set(name, cb);
        return () => offs.push(name);
      },
    };
    const hub = new EventHub({ runtime });
    const seen: AppEvent[] = [];
    hub.on((e) => seen.push(e));
    hub.start();
    expect(hub.feed).toBe('wails');
    handlers.get('import.done')!({ source_id: 1 });
    expect(seen).toEqual([{ type: 'import.done', data: { source_id: 1 } }]);
    hub.stop();
    expect(offs).toContain('import.done');
  });

  it('reads SSE with the token in the header, never in the URL', async () => {
    sessionStorage.setItem(TOKEN_KEY, 'tok');
    const fetchImpl = vi.fn<typeof fetch>().mockResolvedValueOnce(
      new Response(stream(['event: resources.changed\ndata: {"types":["Observation"]}\n\n']), { headers: { 'Content-Type': 'text/event-stream' } }),
    );
    fetchImpl.mockImplementation(() => new Promise(() => {})); // reconnects hang
    const hub = new EventHub({ fetchImpl });
    const seen: AppEvent[] = [];
    hub.on((e) => seen.push(e));
    hub.start();
    await until(() => seen.length > 0);
    expect(seen[0]).toEqual({ type: 'resources.changed', data: { types: ['Observation'] } });
    const [url, init] = fetchImpl.mock.calls[0];
    expect(url).toBe('/api/v1/events');
    expect((init!.headers as Record<string, string>).Authorization).toBe('Bearer tok');
    hub.stop();
  });

  it('unwraps the backend envelope {id, event, timestamp, data} from Wails events and SSE', async () => {
    const handlers = new Map<string, (...d: unknown[]) => void>();
    const wails = new EventHub({ runtime: { EventsOn: (name: string, cb: (...d: unknown[]) => void) => void handlers.set(name, cb) } });
    const seenW: AppEvent[] = [];
    wails.on((e) => seenW.push(e));
    wails.start();
    handlers.get('sync.done')!({ id: 'ab12-7', event: 'sync.done', timestamp: '2026-03-01T12:00:00Z', data: { source_id: 2, added: 5 } });
    expect(seenW).toEqual([{ type: 'sync.done', id: 'ab12-7', data: { source_id: 2, added: 5 } }]);
    wails.stop();

    const got: AppEvent[] = [];
    await readSse(
      stream([
        'id: ab12-8\nevent: sync.progress\ndata: {"id":"ab12-8","event":"sync.progress","timestamp":"2026-03-01T12:00:00Z","data":{"source_id":2,"resources":40}}\n\n',
        // A payload that merely has a data field (another topic's envelope) is left alone.
        'event: note\ndata: {"event":"other","data":1}\n\n',
      ]),
      (e) => got.push(e),
    );
    expect(got).toEqual([
      { type: 'sync.progress', id: 'ab12-8', data: { source_id: 2, resources: 40 } },
      { type: 'note', data: { event: 'other', data: 1 } },
    ]);
  });

  it('asks views to reload after the SSE stream reconnects (events may have been missed)', async () => {
    const fetchImpl = vi
      .fn<typeof fetch>()
      .mockResolvedValueOnce(new Response(stream(['event: import.done\ndata: {}\n\n']), { headers: { 'Content-Type': 'text/event-stream' } }))
      .mockResolvedValueOnce(new Response(stream([': connected\n\n']), { headers: { 'Content-Type': 'text/event-stream' } }));
    fetchImpl.mockImplementation(() => new Promise(() => {}));
    const hub = new EventHub({ fetchImpl });
    const seen: AppEvent[] = [];
    hub.on((e) => seen.push(e));
    hub.start();
    await until(() => seen.length >= 2, 4000);
    expect(seen[0].type).toBe('import.done');
    expect(seen[1]).toEqual({ type: 'resources.changed', data: { via: 'reconnect' } });
    expect(hub.feed).toBe('sse');
    hub.stop();
  });

  it('falls back to polling when /events is missing, and reports changed counts', async () => {
    const fetchImpl = vi.fn<typeof fetch>().mockResolvedValue(new Response('{"error":{"code":"not_found","message":"x"}}', { status: 404 }));
    const answers = [{ Patient: 1 }, { Patient: 1 }, { Patient: 1, Observation: 5 }];
    let i = 0;
    const poll = vi.fn(async () => answers[Math.min(i++, answers.length - 1)]);
    const hub = new EventHub({ fetchImpl, poll, pollMs: 10 });
    const seen: AppEvent[] = [];
    hub.on((e) => seen.push(e));
    hub.start();
    await until(() => seen.length > 0);
    expect(hub.feed).toBe('poll');
    expect(seen[0].type).toBe('resources.changed');
    expect(poll.mock.calls.length).toBeGreaterThanOrEqual(3);
    hub.stop();
    const n = poll.mock.calls.length;
    await new Promise((r) => setTimeout(r, 40));
    expect(poll.mock.calls.length).toBe(n);
  });

  it('delivers local events to every listener, and unsubscribes', () => {
    const hub = new EventHub();
    const a = vi.fn();
    const b = vi.fn();
    const off = hub.on(a);
    hub.on(b);
    hub.emit({ type: 'import.done' });
    off();
    hub.emit({ type: 'import.done' });
    expect(a).toHaveBeenCalledTimes(1);
    expect(b).toHaveBeenCalledTimes(2);
  });
});

describe('signalReady', () => {
  it('emits ui.ready through the Wails runtime and logs a line', () => {
    const EventsEmit = vi.fn();
    const info = vi.spyOn(console, 'info').mockImplementation(() => {});
    signalReady('dashboard', { EventsEmit });
    expect(EventsEmit).toHaveBeenCalledWith('ui.ready', { view: 'dashboard' });
    expect(info).toHaveBeenCalledWith('fasten:ui-ready dashboard');
  });

  it('works without the runtime', () => {
    const info = vi.spyOn(console, 'info').mockImplementation(() => {});
    signalReady('dashboard', undefined);
    expect(info).toHaveBeenCalledWith('fasten:ui-ready dashboard');
  });
});
