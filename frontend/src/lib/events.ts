// Live events, so views refresh when data changes. Three feeds, the first that works wins:
//  1. the desktop window: Wails events through window.runtime.EventsOn (issue 8);
//  2. serve mode: Server-Sent Events at /api/v1/events, read with fetch() so the token goes in
//     the Authorization header (EventSource cannot send headers, and the token never goes in a URL);
//  3. otherwise polling: GET /resources/counts every `pollMs` while the page is visible, and a
//     `resources.changed` event when the counts differ.
// The page also emits events itself (an import finished in this tab) through hub.emit().
import { API_BASE, getCounts, getToken } from '../api/client';

export const EVENT_NAMES = [
  'import.progress',
  'import.done',
  'sync.started',
  'sync.progress',
  'sync.done',
  'sync.failed',
  'resources.changed',
  'source.status',
] as const;

export type EventName = (typeof EVENT_NAMES)[number];

export interface AppEvent {
  type: EventName | string;
  data?: unknown;
  /** The backend's event id ("<prefix>-<n>"), when it came from the backend. */
  id?: string;
}

/**
 * The backend sends every event as the envelope {id, event, timestamp, data}, both as the Wails
 * event's argument and in the SSE data line; listeners get its `data` (and `id`).
 */
export function unwrapEvent(type: string, payload: unknown): AppEvent {
  const o = payload as { id?: unknown; event?: unknown; data?: unknown } | null | undefined;
  if (o && typeof o === 'object' && !Array.isArray(o) && o.event === type && 'data' in o) {
    return typeof o.id === 'string' ? { type, data: o.data, id: o.id } : { type, data: o.data };
  }
  return { type, data: payload };
}

/** Events after which stored records may have changed. */
export const DATA_EVENTS: string[] = ['import.done', 'sync.done', 'resources.changed', 'source.status'];

export type Listener = (e: AppEvent) => void;

export interface WailsRuntime {
  EventsOn?: (name: string, cb: (...data: unknown[]) => void) => (() => void) | void;
  EventsOff?: (name: string, ...more: string[]) => void;
  EventsEmit?: (name: string, ...data: unknown[]) => void;
  BrowserOpenURL?: (url: string) => void;
}

declare global {
  interface Window {
    runtime?: WailsRuntime;
  }
}

export interface HubOptions {
  runtime?: WailsRuntime;
  fetchImpl?: typeof fetch;
  pollMs?: number;
  poll?: () => Promise<unknown>;
  isVisible?: () => boolean;
}

export type Feed = 'none' | 'wails' | 'sse' | 'poll';

export class EventHub {
  private listeners = new Set<Listener>();
  private stops: (() => void)[] = [];
  private opts: HubOptions;
  feed: Feed = 'none';

  constructor(opts: HubOptions = {}) {
    this.opts = opts;
  }

  on(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  emit(e: AppEvent): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(e);
      } catch (err) {
        console.error('event listener failed', err);
      }
    }
  }

  start(): void {
    if (this.feed !== 'none') return;
    const rt = this.opts.runtime;
    if (rt?.EventsOn) {
      this.feed = 'wails';
      for (const name of EVENT_NAMES) {
        const off = rt.EventsOn(name, (...data) => this.emit(unwrapEvent(name, data.length <= 1 ? data[0] : data)));
        this.stops.push(typeof off === 'function' ? off : () => rt.EventsOff?.(name));
      }
      return;
    }
    this.feed = 'sse';
    void this.runSse();
  }

  stop(): void {
    this.stops.forEach((s) => s());
    this.stops = [];
    this.feed = 'none';
  }

  private async runSse(): Promise<void> {
    const f = this.opts.fetchImpl ?? fetch.bind(globalThis);
    const ctrl = new AbortController();
    this.stops.push(() => ctrl.abort());
    let failures = 0;
    let connected = false;
    while (!ctrl.signal.aborted) {
      let res: Response;
      try {
        const t = getToken();
        res = await f(API_BASE + '/events', {
          headers: { Accept: 'text/event-stream', ...(t ? { Authorization: `Bearer ${t}` } : {}) },
          signal: ctrl.signal,
          cache: 'no-store',
        });
      } catch {
        if (ctrl.signal.aborted) return;
        if (++failures >= 3) return this.startPolling();
        await delay(2000 * failures, ctrl.signal);
        continue;
      }
      const type = res.headers.get('Content-Type') ?? '';
      if (!res.ok || !res.body || !type.includes('text/event-stream')) {
        // No live events on this backend yet (404), or refused: fall back to polling.
        try {
          await res.body?.cancel();
        } catch {
          /* ignore */
        }
        return this.startPolling();
      }
      failures = 0;
      // Events sent while the stream was down are lost: views reload once after a reconnect.
      if (connected) this.emit({ type: 'resources.changed', data: { via: 'reconnect' } });
      connected = true;
      try {
        await readSse(res.body, (ev) => this.emit(ev));
      } catch {
        /* stream broke: reconnect below */
      }
      if (ctrl.signal.aborted) return;
      await delay(1000, ctrl.signal);
    }
  }

  private startPolling(): void {
    if (this.feed === 'none') return; // stopped meanwhile
    this.feed = 'poll';
    const ms = this.opts.pollMs ?? 15_000;
    const poll = this.opts.poll ?? (() => getCounts());
    const visible = this.opts.isVisible ?? (() => typeof document === 'undefined' || document.visibilityState !== 'hidden');
    let last: string | null = null;
    let busy = false;
    const tick = async () => {
      if (busy || !visible()) return;
      busy = true;
      try {
        const now = JSON.stringify(await poll());
        if (last !== null && now !== last) this.emit({ type: 'resources.changed', data: { via: 'poll' } });
        last = now;
      } catch {
        /* the views show errors; polling keeps quiet */
      } finally {
        busy = false;
      }
    };
    void tick();
    const id = setInterval(tick, ms);
    this.stops.push(() => clearInterval(id));
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const id = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(id);
      resolve();
    });
  });
}

/** Parses a text/event-stream body, calling `on` for each event with a name or data. */
export async function readSse(body: ReadableStream<Uint8Array>, on: (e: AppEvent) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let event = '';
  let data: string[] = [];
  const dispatch = () => {
    if (data.length || event) {
      const raw = data.join('\n');
      let parsed: unknown = raw;
      try {
        parsed = raw ? JSON.parse(raw) : undefined;
      } catch {
        /* keep text */
      }
      // An event name may come as `event:` or inside the JSON payload ({"event": "import.done", "data": ...}).
      const obj = parsed as { event?: string; type?: string; data?: unknown } | undefined;
      const type = event || obj?.event || obj?.type || 'message';
      if (!event && obj && typeof obj === 'object' && 'data' in obj) on(unwrapEvent(type, { ...obj, event: type }));
      else on(unwrapEvent(type, parsed));
    }
    event = '';
    data = [];
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') dispatch();
      else if (line.startsWith(':')) continue;
      else {
        const i = line.indexOf(':');
        const field = i >= 0 ? line.slice(0, i) : line;
        const val = i >= 0 ? line.slice(i + 1).replace(/^ /, '') : '';
        if (field === 'event') event = val;
        else if (field === 'data') data.push(val);
      }
    }
  }
  dispatch();
}

/** Tells the desktop smoke test (and anyone watching the console) that a view shows real data. */
export function signalReady(view: string, rt: WailsRuntime | undefined = typeof window !== 'undefined' ? window.runtime : undefined): void {
  try {
    rt?.EventsEmit?.('ui.ready', { view });
  } catch {
    /* not in the desktop window */
  }
  console.info(`fasten:ui-ready ${view}`);
}

/** Opens an http(s) link outside the app: the system browser in the window, a new tab otherwise. */
export function openExternal(url: string): void {
  if (!/^https?:\/\//i.test(url)) return;
  const rt = typeof window !== 'undefined' ? window.runtime : undefined;
  if (rt?.BrowserOpenURL) rt.BrowserOpenURL(url);
  else window.open(url, '_blank', 'noopener,noreferrer');
}
