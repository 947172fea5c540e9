// The one module that talks to the backend API (docs/openapi.yaml). Every call goes to the same
// origin under /api/v1. In the desktop window the Wails asset server answers and no token is
// needed; in a browser against `fasten-desktop serve` the page is opened at `/#token=<token>`:
// captureToken() moves the token into sessionStorage, removes it from the address bar, and every
// request then carries `Authorization: Bearer <token>`. The token never goes into a URL.
import type {
  ConnectStarted,
  ConnectStatus,
  Counts,
  DeleteSourceResult,
  Disconnected,
  Health,
  HubSubscription,
  ImportResult,
  ImportStatus,
  Installation,
  OperationOutcome,
  Preferences,
  PreferencesPatch,
  Profile,
  Provider,
  ResourceDetail,
  ResourceItem,
  ResourcePage,
  ResourceSort,
  Settings,
  SettingsPatch,
  Source,
  SourceDetail,
  Summary,
  SyncRun,
  RestorePending,
  RestoreResult,
} from './types';

export const API_BASE = '/api/v1';
export const TOKEN_KEY = 'fasten.apiToken';

// ---------------------------------------------------------------------------------------------
// Token

function safeSessionStorage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/**
 * Reads `#token=...` (also `#/path?token=...` or `#a=b&token=...`) from the address, keeps it in
 * sessionStorage and rewrites the address without it. Returns the token found, or null.
 */
export function captureToken(
  loc: Location = window.location,
  hist: History = window.history,
  storage: Storage | null = safeSessionStorage(),
): string | null {
  const hash = loc.hash.startsWith('#') ? loc.hash.slice(1) : loc.hash;
  if (!hash.includes('token=')) return null;
  const q = hash.indexOf('?');
  const route = q >= 0 ? hash.slice(0, q) : hash.includes('=') ? '' : hash;
  const params = new URLSearchParams(q >= 0 ? hash.slice(q + 1) : hash);
  const token = params.get('token');
  params.delete('token');
  const rest = params.toString();
  const newHash = '#' + (route || '/') + (rest && q >= 0 ? '?' + rest : '');
  hist.replaceState(hist.state, '', loc.pathname + loc.search + newHash);
  if (!token) return null;
  storage?.setItem(TOKEN_KEY, token);
  return token;
}

export function getToken(storage: Storage | null = safeSessionStorage()): string | null {
  return storage?.getItem(TOKEN_KEY) ?? null;
}

function authHeaders(): Record<string, string> {
  const t = getToken();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

// ---------------------------------------------------------------------------------------------
// Errors

/** An error from the API, with the server's own words in `message`. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Every issue's diagnostics when the server answered with an OperationOutcome. */
  readonly details: string[];
  constructor(status: number, code: string, message: string, details: string[] = []) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
  }
  get unauthorized(): boolean {
    return this.status === 401;
  }
}

export const NETWORK_MESSAGE =
  'Could not reach Fasten. Check that the app (or `fasten-desktop serve`) is still running, then try again.';

export const UNAUTHORIZED_MESSAGE =
  'This page needs its access key. Open the link printed by `fasten-desktop serve` in your terminal (it ends with #token=…).';

function outcomeIssues(o: OperationOutcome): { code: string; messages: string[] } {
  const issues = o.issue ?? [];
  const messages = issues
    .map((i) => i.diagnostics || i.details?.text || i.details?.coding?.[0]?.display || '')
    .filter((m) => m !== '');
  const first = issues[0];
  const code = first?.details?.coding?.[0]?.code || first?.code || 'invalid';
  return { code, messages };
}

/** Turns an error response (either shape of the contract, or anything else) into an ApiError. */
export function parseError(status: number, body: string, statusText = ''): ApiError {
  let data: unknown = undefined;
  try {
    data = body ? JSON.parse(body) : undefined;
  } catch {
    data = undefined;
  }
  if (data && typeof data === 'object') {
    const d = data as Record<string, unknown>;
    const e = d.error as { code?: unknown; message?: unknown } | undefined;
    if (e && typeof e === 'object' && typeof e.message === 'string') {
      return new ApiError(status, typeof e.code === 'string' ? e.code : 'error', e.message);
    }
    if (d.resourceType === 'OperationOutcome') {
      const { code, messages } = outcomeIssues(d as unknown as OperationOutcome);
      const message = messages[0] ?? 'The file was refused.';
      return new ApiError(status, code, message, messages);
    }
  }
  if (status === 401) return new ApiError(401, 'unauthorized', UNAUTHORIZED_MESSAGE);
  if (status === 413)
    return new ApiError(413, 'too_large', 'The file is larger than this app accepts.');
  const text = body.trim();
  const short = text && text.length <= 200 && !text.startsWith('<') ? `: ${text}` : '.';
  const st = statusText ? ` ${statusText}` : '';
  return new ApiError(status, 'http_' + status, `Fasten answered with an error (HTTP ${status}${st})${short}`);
}

// Listeners told about 401 answers, so the app can show the "open the link" page.
type UnauthorizedListener = () => void;
const unauthorizedListeners = new Set<UnauthorizedListener>();
export function onUnauthorized(fn: UnauthorizedListener): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}
function notifyUnauthorized() {
  unauthorizedListeners.forEach((fn) => fn());
}

// ---------------------------------------------------------------------------------------------
// Requests

export type Query = Record<string, string | number | boolean | undefined | null>;

export function buildUrl(path: string, query?: Query): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null || v === '') continue;
    params.set(k, String(v));
  }
  const qs = params.toString();
  return API_BASE + path + (qs ? '?' + qs : '');
}

interface RequestOptions {
  method?: string;
  query?: Query;
  json?: unknown;
  /** A raw body (a file), sent with its own headers. */
  body?: BodyInit;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

async function send(path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders(), ...(opts.headers ?? {}) };
  let body: BodyInit | undefined = opts.body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  let res: Response;
  try {
    res = await fetch(buildUrl(path, opts.query), {
      method: opts.method ?? 'GET',
      headers,
      body,
      signal: opts.signal,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', NETWORK_MESSAGE);
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    const e = parseError(res.status, text, res.statusText);
    if (e.unauthorized) notifyUnauthorized();
    throw e;
  }
  return res;
}

export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(path, opts);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, 'bad_response', 'Fasten sent an answer this page cannot read.');
  }
}

/** Like request(), but a 404 resolves to null (for routes that arrive in later versions). */
async function optional<T>(path: string, opts: RequestOptions = {}): Promise<T | null> {
  try {
    return await request<T>(path, opts);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405 || e.status === 501)) return null;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Typed calls

export interface Scope {
  profile?: number;
  source?: number;
}

export const getHealth = (signal?: AbortSignal) => request<Health>('/health', { signal });

/** null when the backend has no profiles yet (404). */
export const getProfiles = (signal?: AbortSignal) => optional<Profile[]>('/profiles', { signal });

/** null before the installation is registered (404). */
export const getInstallation = (signal?: AbortSignal) =>
  optional<Installation>('/installation', { signal });

/** Onboarding state, the Lighthouse in use and the registration (null on a backend without it). */
export const getSettings = (signal?: AbortSignal) => optional<Settings>('/settings', { signal });

export const patchSettings = (patch: SettingsPatch) => request<Settings>('/settings', { method: 'PATCH', json: patch });

/** Registers this installation with the Lighthouse in use (or again, replacing the registration). */
export const registerInstallation = (name: string, email: string) =>
  request<Installation>('/installation', { method: 'POST', json: { name, email } });

/** The Lighthouse catalog; 409 not_registered before registering. */
export const listProviders = (q: string, signal?: AbortSignal) =>
  request<Provider[]>('/providers', { query: { q }, signal });

export const startConnect = (provider: string, profile?: number) =>
  request<ConnectStarted>('/connect', { method: 'POST', json: profile === undefined ? { provider } : { provider, profile } });

export const reconnectSource = (id: number) => request<ConnectStarted>(`/sources/${id}/reconnect`, { method: 'POST' });

export const getConnect = (id: string, signal?: AbortSignal) =>
  request<ConnectStatus>(`/connect/${encodeURIComponent(id)}`, { signal });

export const cancelConnect = (id: string) =>
  request<ConnectStatus>(`/connect/${encodeURIComponent(id)}`, { method: 'DELETE' });

export const disconnectSource = (id: number, deleteRecords: boolean) =>
  request<Disconnected>(`/sources/${id}/disconnect`, { method: 'POST', json: { delete_records: deleteRecords } });

// Background sync, preferences and webhooks (issues 6 and 8).

/** Queues a sync of one provider source; `queued: false` when one was already queued or running. */
export const syncSource = (id: number) =>
  request<{ source_id: number; queued: boolean }>(`/sources/${id}/sync`, { method: 'POST', json: {} });

/** Queues a sync of every connected provider source. */
export const syncAll = () => request<{ source_ids: number[] }>('/sync', { method: 'POST', json: {} });

export const getSyncRuns = (id: number, limit = 20, signal?: AbortSignal) =>
  request<SyncRun[]>(`/sources/${id}/sync-runs`, { query: { limit }, signal });

/** null on a backend without preferences (404). */
export const getPreferences = (signal?: AbortSignal) => optional<Preferences>('/preferences', { signal });

export const patchPreferences = (patch: PreferencesPatch) =>
  request<Preferences>('/preferences', { method: 'PATCH', json: patch });

/** null on a backend without the webhook hub (404). */
export const listSubscriptions = (signal?: AbortSignal) => optional<HubSubscription[]>('/hub/subscriptions', { signal });

export const deleteSubscription = (id: string) =>
  request<void>(`/hub/subscriptions/${encodeURIComponent(id)}`, { method: 'DELETE' });

export const allowSubscriptionResources = (id: string, allow: boolean) =>
  request<HubSubscription>(`/hub/subscriptions/${encodeURIComponent(id)}`, { method: 'PATCH', json: { allow_resources: allow } });

export const getSummary = (scope: Scope = {}, signal?: AbortSignal) =>
  request<Summary>('/summary', { query: { ...scope }, signal });

export const getCounts = (scope: Scope = {}, signal?: AbortSignal) =>
  request<Counts>('/resources/counts', { query: { ...scope }, signal });

export interface ListResourcesParams extends Scope {
  type: string;
  sort?: ResourceSort;
  code?: string;
  cursor?: string;
  limit?: number;
}

export const listResources = (p: ListResourcesParams, signal?: AbortSignal) =>
  request<ResourcePage>('/resources', { query: { ...p }, signal });

export const getResource = (type: string, id: string, source?: number, signal?: AbortSignal) =>
  request<ResourceDetail>(`/resources/${encodeURIComponent(type)}/${encodeURIComponent(id)}`, {
    query: { source },
    signal,
  });

export interface TimelineParams extends Scope {
  types?: string[];
  q?: string;
  cursor?: string;
  limit?: number;
}

export const getTimeline = (p: TimelineParams, signal?: AbortSignal) =>
  request<ResourcePage>('/timeline', {
    query: { ...p, types: p.types && p.types.length ? p.types.join(',') : undefined },
    signal,
  });

export interface SearchParams {
  q: string;
  profile?: number;
  cursor?: string;
  limit?: number;
}

export const search = (p: SearchParams, signal?: AbortSignal) =>
  request<ResourcePage>('/search', { query: { ...p }, signal });

export const listSources = (scope: { profile?: number } = {}, signal?: AbortSignal) =>
  request<Source[]>('/sources', { query: { ...scope }, signal });

export const getSource = (id: number, signal?: AbortSignal) =>
  request<SourceDetail>(`/sources/${id}`, { signal });

export const renameSource = (id: number, name: string) =>
  request<Source>(`/sources/${id}`, { method: 'PATCH', json: { name } });

export const deleteSource = (id: number) =>
  request<DeleteSourceResult>(`/sources/${id}`, { method: 'DELETE' });

export const getImport = (id: string, signal?: AbortSignal) =>
  request<ImportStatus>(`/imports/${encodeURIComponent(id)}`, { signal });

/** Cancels a running import; an import the server no longer knows (404) counts as cancelled. */
export async function cancelImport(id: string): Promise<void> {
  await optional<unknown>(`/imports/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

/**
 * Follows next_cursor until the last page or until `max` items; for small sets (a lab series).
 */
export async function fetchAllPages<T>(
  fetchPage: (cursor: string | undefined) => Promise<{ items: T[]; next_cursor?: string }>,
  max = 5000,
): Promise<{ items: T[]; truncated: boolean }> {
  const items: T[] = [];
  let cursor: string | undefined = undefined;
  for (;;) {
    const page: { items: T[]; next_cursor?: string } = await fetchPage(cursor);
    items.push(...(page.items ?? []));
    if (!page.next_cursor) return { items, truncated: false };
    if (items.length >= max) return { items, truncated: true };
    if (page.next_cursor === cursor) return { items, truncated: false }; // defensive: no loop
    cursor = page.next_cursor;
  }
}

// ---------------------------------------------------------------------------------------------
// Import upload (XHR, for upload progress)

/** A client-chosen import id: 8-64 chars of [A-Za-z0-9_-]. */
export function newImportId(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return 'ui-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export interface UploadHandle {
  importId: string;
  done: Promise<ImportResult>;
  abort(): void;
}

export interface UploadOptions {
  importId?: string;
  skipInvalid?: boolean;
  sourceId?: number;
  onUploadProgress?: (loaded: number, total: number) => void;
  onUploaded?: () => void;
}

/** POST /imports with one or more files as one import. Rejects with ApiError (code 'cancelled' on abort). */
export function uploadImport(files: File[], opts: UploadOptions = {}): UploadHandle {
  const importId = opts.importId ?? newImportId();
  const xhr = new XMLHttpRequest();
  const done = new Promise<ImportResult>((resolve, reject) => {
    const form = new FormData();
    for (const f of files) form.append('file', f, f.name);
    if (opts.skipInvalid) form.append('skip_invalid', 'true');
    if (opts.sourceId !== undefined) form.append('source_id', String(opts.sourceId));
    xhr.open('POST', buildUrl('/imports'));
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.setRequestHeader('X-Import-Id', importId);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) opts.onUploadProgress?.(e.loaded, e.total);
    };
    xhr.upload.onload = () => opts.onUploaded?.();
    xhr.onload = () => {
      const text = typeof xhr.responseText === 'string' ? xhr.responseText : '';
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(text) as ImportResult);
        } catch {
          reject(new ApiError(xhr.status, 'bad_response', 'Fasten sent an answer this page cannot read.'));
        }
        return;
      }
      const e = parseError(xhr.status, text, xhr.statusText);
      if (e.unauthorized) notifyUnauthorized();
      reject(e);
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', NETWORK_MESSAGE));
    xhr.onabort = () => reject(new ApiError(0, 'cancelled', 'Import cancelled. Nothing was imported.'));
    xhr.send(form);
  });
  return { importId, done, abort: () => xhr.abort() };
}

// ---------------------------------------------------------------------------------------------
// Export

export interface ExportFile {
  blob: Blob;
  filename: string;
}

function filenameFrom(disposition: string | null, fallback: string): string {
  if (!disposition) return fallback;
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(disposition);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      /* fall through */
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(disposition);
  return plain ? plain[1].trim() : fallback;
}

/** GET /export with the token, as a Blob the page can save. */
export async function exportBundle(scope: Scope = {}): Promise<ExportFile> {
  const res = await send('/export', { query: { ...scope } });
  const blob = await res.blob();
  const day = new Date().toISOString().slice(0, 10);
  const fallback = `fasten-export${scope.source ? '-source-' + scope.source : ''}-${day}.json`;
  return { blob, filename: filenameFrom(res.headers.get('Content-Disposition'), fallback) };
}

type DesktopShell = {
  SaveBackup?: () => Promise<string>;
  SaveExport?: (source: number, profile: number) => Promise<string>;
  SaveAttachment?: (type: string, id: string, source: number, n: number, name: string) => Promise<string>;
};

/** The desktop window's bound Go methods (window.go.app.Shell), when running in it. */
function desktopShell(): DesktopShell | undefined {
  return (globalThis as unknown as { go?: { app?: { Shell?: DesktopShell } } }).go?.app?.Shell;
}

/**
 * Saves an export. In the desktop window the system's save dialog writes it (a webview cannot
 * save a Blob download) and the chosen path is returned ("" when cancelled); in a browser the
 * Bundle is downloaded and null is returned.
 */
export async function saveExport(scope: Scope = {}): Promise<string | null> {
  const shell = desktopShell();
  if (shell?.SaveExport) {
    return await shell.SaveExport(Number(scope.source ?? 0), Number(scope.profile ?? 0));
  }
  saveBlob(await exportBundle(scope));
  return null;
}

/**
 * Saves a copy of an attachment. In the desktop window the system's save dialog writes it and the
 * chosen path is returned ("" when cancelled); in a browser the bytes already loaded are downloaded
 * and null is returned.
 */
export async function saveAttachment(type: string, id: string, n: number, source: number | undefined, file: ExportFile): Promise<string | null> {
  const shell = desktopShell();
  if (shell?.SaveAttachment) {
    return await shell.SaveAttachment(type, id, Number(source ?? 0), n, file.filename);
  }
  saveBlob(file);
  return null;
}

/**
 * Saves a backup (a checked copy of the database). In the desktop window the system's save
 * dialog chooses where and the path is returned ("" when cancelled); in a browser GET /backup is
 * downloaded and its file name returned.
 */
export async function saveBackup(): Promise<{ path?: string; filename?: string }> {
  const shell = desktopShell();
  if (shell?.SaveBackup) {
    return { path: await shell.SaveBackup() };
  }
  const res = await send('/backup', { headers: { Accept: 'application/vnd.sqlite3' } });
  const blob = await res.blob();
  const fallback = `fasten-backup-${new Date().toISOString().slice(0, 10)}.db`;
  const file = { blob, filename: filenameFrom(res.headers.get('Content-Disposition'), fallback) };
  saveBlob(file);
  return { filename: file.filename };
}

/** POST /restore: sends a backup file to be checked; nothing changes until it is confirmed. */
export async function prepareRestore(file: File, signal?: AbortSignal): Promise<RestorePending> {
  const form = new FormData();
  form.append('file', file, file.name);
  return await request<RestorePending>('/restore', { method: 'POST', body: form, signal });
}

/** POST /restore/{id}: replaces the records with the checked backup's. */
export const confirmRestore = (id: string) => request<RestoreResult>(`/restore/${encodeURIComponent(id)}`, { method: 'POST' });

/** DELETE /restore/{id}: drops the checked backup; nothing changes. */
export const cancelRestore = (id: string) => request<void>(`/restore/${encodeURIComponent(id)}`, { method: 'DELETE' });

/** Saves a Blob as a download through a temporary object URL. */
export function saveBlob(file: ExportFile, doc: Document = document): void {
  const url = URL.createObjectURL(file.blob);
  const a = doc.createElement('a');
  a.href = url;
  a.download = file.filename;
  a.rel = 'noopener';
  doc.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** One attachment's bytes, its type and file name, and whether they match its size and hash. */
export interface AttachmentFile {
  blob: Blob;
  contentType: string;
  filename: string;
  /** "ok", or "size-mismatch" and/or "hash-mismatch". */
  check: string;
}

const EXTENSIONS: Record<string, string> = {
  'text/plain': '.txt',
  'text/html': '.html',
  'application/pdf': '.pdf',
  'image/png': '.png',
  'image/jpeg': '.jpg',
  'image/gif': '.gif',
  'image/webp': '.webp',
  'application/json': '.json',
  'application/fhir+json': '.json',
  'application/xml': '.xml',
  'text/xml': '.xml',
  'application/dicom': '.dcm',
};

/** A file name extension for a content type ("" when unknown). */
export function extensionFor(contentType: string | null): string {
  return EXTENSIONS[(contentType ?? '').split(';')[0].trim().toLowerCase()] ?? '';
}

/** GET /resources/{type}/{id}/attachments/{n} with the token. */
export async function getAttachment(type: string, id: string, n: number, source?: number, signal?: AbortSignal): Promise<AttachmentFile> {
  const res = await send(`/resources/${encodeURIComponent(type)}/${encodeURIComponent(id)}/attachments/${n}`, { query: { source }, signal });
  const blob = await res.blob();
  return {
    blob,
    contentType: res.headers.get('Content-Type') ?? 'application/octet-stream',
    filename: filenameFrom(res.headers.get('Content-Disposition'), `${type.toLowerCase()}-${id}-${n + 1}${extensionFor(res.headers.get('Content-Type'))}`),
    check: res.headers.get('X-Attachment-Check') ?? 'ok',
  };
}

export type { Counts, ResourceItem, ResourcePage, Source, Summary };
