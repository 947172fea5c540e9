import { describe, expect, it, vi } from 'vitest';
import { ApiError, type UploadHandle, type UploadOptions } from '../api/client';
import type { ImportResult, ImportStatus } from '../api/types';
import { EventHub } from './events';
import { ImportQueue } from './imports';

interface FakeUpload {
  files: File[];
  opts: UploadOptions;
  resolve: (r: ImportResult) => void;
  reject: (e: Error) => void;
  aborted: boolean;
}

function harness(status: (id: string) => Promise<ImportStatus> = async () => ({ state: 'running', phase: 'writing', resources: 10 })) {
  const uploads: FakeUpload[] = [];
  const upload = vi.fn((files: File[], opts: UploadOptions = {}): UploadHandle => {
    let resolve!: (r: ImportResult) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<ImportResult>((a, b) => {
      resolve = a;
      reject = b;
    });
    const u: FakeUpload = { files, opts, resolve, reject, aborted: false };
    uploads.push(u);
    return {
      importId: opts.importId!,
      done,
      abort: () => {
        u.aborted = true;
        reject(new ApiError(0, 'cancelled', 'Import cancelled.'));
      },
    };
  });
  const cancel = vi.fn(async () => {});
  const hub = new EventHub();
  const events = vi.fn();
  hub.on(events);
  const q = new ImportQueue({ hub, upload, status: vi.fn(status), cancel, pollMs: 5 });
  return { q, uploads, upload, cancel, events };
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const file = (name: string, size = 10) => new File(['x'.repeat(size)], name);

describe('ImportQueue', () => {
  it('imports files one at a time, one import per file, with progress', async () => {
    const { q, uploads, events } = harness();
    q.add([file('a.json', 100), file('b.json')], true);
    await tick();
    expect(uploads).toHaveLength(1);
    expect(uploads[0].files.map((f) => f.name)).toEqual(['a.json']);
    expect(uploads[0].opts.skipInvalid).toBe(true);
    expect(q.getSnapshot().map((j) => j.state)).toEqual(['uploading', 'queued']);
    uploads[0].opts.onUploadProgress!(40, 100);
    expect(q.getSnapshot()[0].uploaded).toBe(40);
    uploads[0].opts.onUploaded!();
    expect(q.getSnapshot()[0].state).toBe('processing');
    await new Promise((r) => setTimeout(r, 20));
    expect(q.getSnapshot()[0].server?.resources).toBe(10);
    uploads[0].resolve({ source_id: 1, counts: { Patient: 1 }, skipped: [] });
    await tick();
    await tick();
    expect(q.getSnapshot()[0].state).toBe('done');
    expect(events).toHaveBeenCalledWith({ type: 'import.done', data: { source_id: 1, counts: { Patient: 1 }, skipped: [] } });
    expect(uploads).toHaveLength(2);
    expect(uploads[1].files[0].name).toBe('b.json');
    expect(uploads[0].opts.importId).not.toBe(uploads[1].opts.importId);
  });

  it('keeps a refused file as failed with the server error, and goes on', async () => {
    const { q, uploads } = harness();
    q.add([file('bad.json'), file('good.json')], false);
    await tick();
    uploads[0].reject(new ApiError(400, 'invalid_json', 'bad.json: line 1, column 2: unexpected end'));
    await tick();
    await tick();
    const [bad] = q.getSnapshot();
    expect(bad.state).toBe('failed');
    expect(bad.error?.message).toBe('bad.json: line 1, column 2: unexpected end');
    expect(uploads).toHaveLength(2);
  });

  it('cancel aborts the upload and sends DELETE /imports/{id}', async () => {
    const { q, uploads, cancel } = harness(async () => ({ state: 'cancelled' }));
    q.add([file('big.json')], false);
    await tick();
    const id = q.getSnapshot()[0].importId;
    q.cancel(q.getSnapshot()[0].key);
    expect(uploads[0].aborted).toBe(true);
    expect(cancel).toHaveBeenCalledWith(id);
    await tick();
    await tick();
    expect(q.getSnapshot()[0].state).toBe('cancelled');
    expect(q.getSnapshot()[0].note).toMatch(/Nothing from this file was imported/);
  });

  it('reports an import that finished before the cancel arrived', async () => {
    const result = { source_id: 3, counts: { Patient: 1 }, skipped: [] };
    const { q, events } = harness(async () => ({ state: 'done', result }));
    q.add([file('fast.json')], false);
    await tick();
    q.cancel(q.getSnapshot()[0].key);
    await tick();
    await tick();
    expect(q.getSnapshot()[0].state).toBe('done');
    expect(q.getSnapshot()[0].result).toEqual(result);
    expect(events).toHaveBeenCalled();
  });

  it('cancels a queued file without uploading it', async () => {
    const { q, uploads } = harness();
    q.add([file('a.json'), file('b.json')], false);
    await tick();
    q.cancel(q.getSnapshot()[1].key);
    expect(q.getSnapshot()[1].state).toBe('cancelled');
    uploads[0].resolve({ source_id: 1, counts: {}, skipped: [] });
    await tick();
    await tick();
    expect(uploads).toHaveLength(1);
    q.clearFinished();
    expect(q.getSnapshot()).toHaveLength(0);
  });
});
