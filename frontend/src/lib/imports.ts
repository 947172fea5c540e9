// The import queue lives outside the views, so an upload keeps going (and stays visible in the
// header) while the user looks at other pages. One import per file, one file at a time: each file
// becomes its own source (renamable and deletable on its own), a refused file does not take the
// others down, and the database's single writer is not contended.
import { ApiError, cancelImport, getImport, newImportId, uploadImport, type UploadHandle } from '../api/client';
import type { ImportResult, ImportStatus } from '../api/types';
import type { EventHub } from './events';

export type JobState = 'queued' | 'uploading' | 'processing' | 'done' | 'failed' | 'cancelled';

export interface ImportJob {
  key: string;
  name: string;
  size: number;
  importId: string;
  skipInvalid: boolean;
  state: JobState;
  /** Bytes sent so far (XHR upload progress). */
  uploaded: number;
  /** Latest server-side status from GET /imports/{id}. */
  server?: ImportStatus;
  result?: ImportResult;
  error?: ApiError | Error;
  note?: string;
}

interface Internal {
  file: File;
  handle?: UploadHandle;
  pollTimer?: ReturnType<typeof setInterval>;
}

export interface QueueOptions {
  hub?: EventHub;
  pollMs?: number;
  upload?: typeof uploadImport;
  status?: typeof getImport;
  cancel?: typeof cancelImport;
}

let seq = 0;

export class ImportQueue {
  private jobs: ImportJob[] = [];
  private internal = new Map<string, Internal>();
  private listeners = new Set<() => void>();
  private running = false;
  private opts: QueueOptions;

  constructor(opts: QueueOptions = {}) {
    this.opts = opts;
  }

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  };

  getSnapshot = (): ImportJob[] => this.jobs;

  get active(): number {
    return this.jobs.filter((j) => j.state === 'queued' || j.state === 'uploading' || j.state === 'processing').length;
  }

  add(files: File[], skipInvalid: boolean): void {
    const added = files.map((file) => {
      const key = `job-${++seq}`;
      this.internal.set(key, { file });
      return { key, name: file.name, size: file.size, importId: newImportId(), skipInvalid, state: 'queued' as const, uploaded: 0 };
    });
    this.jobs = [...this.jobs, ...added];
    this.changed();
    void this.pump();
  }

  cancel(key: string): void {
    const job = this.jobs.find((j) => j.key === key);
    const inner = this.internal.get(key);
    if (!job || !inner) return;
    if (job.state === 'queued') {
      this.update(key, { state: 'cancelled', note: 'Cancelled before it started. Nothing was imported.' });
      return;
    }
    if (job.state !== 'uploading' && job.state !== 'processing') return;
    this.update(key, { note: 'Cancelling…' });
    inner.handle?.abort();
    void (this.opts.cancel ?? cancelImport)(job.importId).catch(() => undefined);
  }

  /** Removes finished rows from the list. */
  clearFinished(): void {
    this.jobs = this.jobs.filter((j) => j.state === 'queued' || j.state === 'uploading' || j.state === 'processing');
    for (const k of [...this.internal.keys()]) if (!this.jobs.some((j) => j.key === k)) this.internal.delete(k);
    this.changed();
  }

  private changed() {
    this.listeners.forEach((fn) => fn());
  }

  private update(key: string, patch: Partial<ImportJob>) {
    this.jobs = this.jobs.map((j) => (j.key === key ? { ...j, ...patch } : j));
    this.changed();
  }

  private async pump() {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const next = this.jobs.find((j) => j.state === 'queued');
        if (!next) break;
        await this.run(next);
      }
    } finally {
      this.running = false;
    }
  }

  private async run(job: ImportJob) {
    const inner = this.internal.get(job.key)!;
    const upload = this.opts.upload ?? uploadImport;
    const status = this.opts.status ?? getImport;
    this.update(job.key, { state: 'uploading', uploaded: 0 });
    const handle = upload([inner.file], {
      importId: job.importId,
      skipInvalid: job.skipInvalid,
      onUploadProgress: (loaded) => this.update(job.key, { uploaded: loaded }),
      onUploaded: () => this.update(job.key, { state: 'processing', uploaded: job.size }),
    });
    inner.handle = handle;
    let polling = false;
    inner.pollTimer = setInterval(async () => {
      if (polling) return;
      polling = true;
      try {
        const s = await status(job.importId);
        const cur = this.jobs.find((j) => j.key === job.key);
        if (cur && (cur.state === 'uploading' || cur.state === 'processing')) this.update(job.key, { server: s });
      } catch {
        /* 404 until the server has registered the import; errors show when the upload ends */
      } finally {
        polling = false;
      }
    }, this.opts.pollMs ?? 600);
    try {
      const result = await handle.done;
      this.update(job.key, { state: 'done', result, note: undefined });
      this.opts.hub?.emit({ type: 'import.done', data: result });
    } catch (e) {
      if (e instanceof ApiError && e.code === 'cancelled') {
        // The import may have committed just before the cancel reached it: ask.
        let s: ImportStatus | undefined;
        try {
          s = await status(job.importId);
        } catch {
          s = undefined;
        }
        if (s?.state === 'done' && s.result) {
          this.update(job.key, { state: 'done', result: s.result, note: 'It had already finished before it could be cancelled.' });
          this.opts.hub?.emit({ type: 'import.done', data: s.result });
        } else {
          this.update(job.key, { state: 'cancelled', note: 'Cancelled. Nothing from this file was imported.' });
        }
      } else {
        this.update(job.key, { state: 'failed', error: e as Error, note: undefined });
      }
    } finally {
      clearInterval(inner.pollTimer);
      inner.handle = undefined;
    }
  }
}
