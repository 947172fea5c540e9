import { describe, expect, it, vi } from 'vitest';
import { act, fireEvent, render, screen } from '@testing-library/react';
import { ApiError, type UploadHandle, type UploadOptions } from '../api/client';
import type { ImportResult, ImportStatus } from '../api/types';
import { ImportQueue } from '../lib/imports';
import { ImportView } from './Import';

function setup(status: ImportStatus = { state: 'running', phase: 'writing', resources: 1200, bytes_done: 50, bytes_total: 100, fraction: 0.65 }) {
  const uploads: { opts: UploadOptions; resolve: (r: ImportResult) => void; reject: (e: Error) => void }[] = [];
  const upload = vi.fn((_files: File[], opts: UploadOptions = {}): UploadHandle => {
    let resolve!: (r: ImportResult) => void;
    let reject!: (e: Error) => void;
    const done = new Promise<ImportResult>((a, b) => {
      resolve = a;
      reject = b;
    });
    uploads.push({ opts, resolve, reject });
    return { importId: opts.importId!, done, abort: () => reject(new ApiError(0, 'cancelled', 'x')) };
  });
  const q = new ImportQueue({ upload, status: async () => status, cancel: async () => {}, pollMs: 5 });
  render(<ImportView imports={q} />);
  return { q, uploads };
}

const flush = () => act(async () => {
  await new Promise((r) => setTimeout(r, 20));
});

describe('ImportView', () => {
  it('adds picked files, shows upload then server progress on one forward-moving bar', async () => {
    const { uploads } = setup();
    const input = screen.getByTestId('file-input') as HTMLInputElement;
    const f = new File(['x'.repeat(1000)], 'Raúl.json');
    fireEvent.change(input, { target: { files: [f] } });
    await flush();
    act(() => uploads[0].opts.onUploadProgress!(500, 1000));
    expect(screen.getByText(/Uploading: 500 bytes of 1 KB \(50%\)/)).toBeTruthy();
    const bar = () => screen.getByRole('progressbar', { name: 'Progress of Raúl.json' }) as HTMLProgressElement;
    expect(bar().value).toBeCloseTo(0.15);
    act(() => uploads[0].opts.onUploaded!());
    await flush();
    expect(screen.getByText(/Saving records: 1,200 records \(50% of the file read\)/)).toBeTruthy();
    expect(bar().value).toBeCloseTo(0.65);
    await act(async () => uploads[0].resolve({ source_id: 1, counts: { Observation: 1199, Patient: 1 }, skipped: [{ file: 'Raúl.json', position: 'line 15, column 3 (byte 402), entry 4', message: 'resourceType is missing' }], resources: 1200, duration_ms: 1500 }));
    await flush();
    expect(screen.getByText('Imported 1,200 records in 1.5 s')).toBeTruthy();
    expect(screen.getByText(/1,199/).parentElement?.textContent).toContain('Labs & observations');
    expect(screen.getByText(/1 record was skipped/)).toBeTruthy();
    expect(screen.getByText('Raúl.json, line 15, column 3 (byte 402), entry 4: resourceType is missing')).toBeTruthy();
  });

  it('says when a re-import brought nothing new, and counts skipped records beyond the list', async () => {
    const { uploads } = setup();
    fireEvent.change(screen.getByTestId('file-input'), { target: { files: [new File(['{}'], 'again.json')] } });
    await flush();
    await act(async () =>
      uploads[0].resolve({ source_id: 1, counts: { Patient: 1 }, skipped: null, skipped_total: 0, resources: 0, added: 0, updated: 0, unchanged: 215, sources: [{ file: 'again.json', source_id: 1, counts: {}, reused_source: true }] }),
    );
    await flush();
    expect(screen.getByText('Nothing new: all 215 records were already here')).toBeTruthy();
    expect(screen.getByText(/had been imported before/)).toBeTruthy();
  });

  it('shows a refused file with the server diagnostics, word for word', async () => {
    const { uploads } = setup();
    fireEvent.change(screen.getByTestId('file-input'), { target: { files: [new File(['{'], 'bad.json')] } });
    await flush();
    await act(async () => uploads[0].reject(new ApiError(400, 'invalid_json', 'bad.json: line 1, column 2 (byte 1): unexpected end of JSON input', ['bad.json: line 1, column 2 (byte 1): unexpected end of JSON input', 'second issue'])));
    await flush();
    const alert = screen.getByRole('alert');
    expect(alert.textContent).toContain('The file was refused. Nothing from it was saved.');
    expect(alert.textContent).toContain('bad.json: line 1, column 2 (byte 1): unexpected end of JSON input');
    expect(alert.textContent).toContain('second issue');
  });

  it('passes the skip-invalid choice and cancels from the button', async () => {
    const { uploads } = setup({ state: 'cancelled' });
    fireEvent.click(screen.getByRole('checkbox'));
    fireEvent.change(screen.getByTestId('file-input'), { target: { files: [new File(['{}'], 'a.json')] } });
    await flush();
    expect(uploads[0].opts.skipInvalid).toBe(true);
    await act(async () => fireEvent.click(screen.getByRole('button', { name: 'Cancel import of a.json' })));
    await flush();
    expect(screen.getByText('Cancelled. Nothing from this file was imported.')).toBeTruthy();
  });
});
