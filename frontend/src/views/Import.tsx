import { useRef, useState, useSyncExternalStore, type DragEvent } from 'react';
import { ErrorMessage, ProgressBar } from '../components/common';
import { formatBytes, formatCount, formatNumber } from '../lib/format';
import { useTitle } from '../lib/hooks';
import type { ImportJob, ImportQueue } from '../lib/imports';
import { orderedTypes, countLabel } from '../lib/resources';
import { href } from '../lib/router';

const UPLOAD_SHARE = 0.3;

const PHASES: Record<string, string> = {
  receiving: 'Receiving',
  checking: 'Checking the file',
  writing: 'Saving records',
  finishing: 'Finishing',
  done: 'Finishing',
};

export function ImportView({ imports }: { imports: ImportQueue }) {
  useTitle('Import');
  const jobs = useSyncExternalStore(imports.subscribe, imports.getSnapshot);
  const [skipInvalid, setSkipInvalid] = useState(false);
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  const add = (list: FileList | null) => {
    const files = Array.from(list ?? []).filter((f) => f.size >= 0);
    if (files.length) imports.add(files, skipInvalid);
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    add(e.dataTransfer.files);
  };
  const finished = jobs.some((j) => j.state === 'done' || j.state === 'failed' || j.state === 'cancelled');

  return (
    <div className="page import">
      <h1>Import files</h1>
      <p>
        Add records you already have as files: a FHIR Bundle (<code>.json</code>), NDJSON (<code>.ndjson</code>), a single
        resource, or a <code>.zip</code> of those. Each file becomes its own source, which you can rename or delete later.
        Files are imported one after the other.
      </p>
      <div
        className={over ? 'dropzone over' : 'dropzone'}
        onDragOver={(e) => {
          e.preventDefault();
          e.dataTransfer.dropEffect = 'copy';
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        data-testid="dropzone"
      >
        <p className="dropzone-text">Drop files here</p>
        <p className="muted">or</p>
        <button type="button" className="btn btn-primary" onClick={() => input.current?.click()}>
          Choose files…
        </button>
        <input
          ref={input}
          type="file"
          multiple
          accept=".json,.ndjson,.jsonl,.zip,application/json,application/fhir+json,application/zip"
          className="visually-hidden"
          tabIndex={-1}
          aria-label="Choose files to import"
          data-testid="file-input"
          onChange={(e) => {
            add(e.target.files);
            e.target.value = '';
          }}
        />
      </div>
      <label className="check">
        <input type="checkbox" checked={skipInvalid} onChange={(e) => setSkipInvalid(e.target.checked)} />
        <span>
          Skip records that are not valid and import the rest (otherwise a file with a problem is refused whole, and nothing from
          it is saved)
        </span>
      </label>
      {jobs.length > 0 && (
        <section aria-labelledby="jobs-h" className="jobs">
          <div className="card-head">
            <h2 id="jobs-h">Files</h2>
            {finished && (
              <button type="button" className="btn btn-small" onClick={() => imports.clearFinished()}>
                Clear finished
              </button>
            )}
          </div>
          <ul className="job-list">
            {jobs.map((j) => (
              <JobRow key={j.key} job={j} onCancel={() => imports.cancel(j.key)} />
            ))}
          </ul>
        </section>
      )}
    </div>
  );
}

function JobRow({ job, onCancel }: { job: ImportJob; onCancel: () => void }) {
  const running = job.state === 'uploading' || job.state === 'processing';
  const s = job.server;
  let status = '';
  let bar: { value?: number; max?: number } | null = null;
  switch (job.state) {
    case 'queued':
      status = 'Waiting for the file before it';
      break;
    case 'uploading':
      status = `Uploading: ${formatBytes(job.uploaded)} of ${formatBytes(job.size)} (${job.size ? Math.floor((job.uploaded / job.size) * 100) : 100}%)`;
      // One bar for the whole import: the upload is its first 30%, as in the server's `fraction`.
      bar = { value: job.size ? (UPLOAD_SHARE * job.uploaded) / job.size : 0, max: 1 };
      break;
    case 'processing': {
      const phase = s?.phase && s.phase !== 'receiving' ? PHASES[s.phase] ?? s.phase : 'Received, checking';
      const res = s?.resources ? `: ${formatCount(s.resources)} records` : '';
      const reading = s?.phase && s.phase !== 'receiving' && s.bytes_total ? ` (${Math.floor(((s.bytes_done ?? 0) / s.bytes_total) * 100)}% of the file read)` : '';
      status = `${phase}${res}${reading}…`;
      bar =
        typeof s?.fraction === 'number'
          ? { value: Math.max(UPLOAD_SHARE, s.fraction), max: 1 }
          : s?.phase && s.phase !== 'receiving' && s.bytes_total
            ? { value: UPLOAD_SHARE + (1 - UPLOAD_SHARE) * ((s.bytes_done ?? 0) / s.bytes_total), max: 1 }
            : {};
      break;
    }
    case 'done':
      status = doneText(job);
      break;
    case 'failed':
      status = 'Not imported';
      break;
    case 'cancelled':
      status = job.note ? '' : 'Cancelled';
      break;
  }
  return (
    <li className={`job job-${job.state}`} data-testid="import-job" data-state={job.state}>
      <div className="job-head">
        <span className="job-name">{job.name}</span>
        <span className="muted small">{formatBytes(job.size)}</span>
        {(running || job.state === 'queued') && (
          <button type="button" className="btn btn-small" onClick={onCancel} aria-label={`Cancel import of ${job.name}`}>
            Cancel
          </button>
        )}
      </div>
      <p className="job-status" aria-live="polite">
        {[status, job.note].filter(Boolean).join(' — ')}
      </p>
      {bar && <ProgressBar value={bar.value} max={bar.max} label={`Progress of ${job.name}`} />}
      {job.state === 'failed' && <ErrorMessage error={job.error} title="The file was refused. Nothing from it was saved." />}
      {job.state === 'done' && job.result && <ImportResultView job={job} />}
    </li>
  );
}

function sum(c: Record<string, number> | undefined): number {
  return Object.values(c ?? {}).reduce((a, b) => a + b, 0);
}

/** "Imported 215 records in 1.2 s", with new/updated/unchanged when the backend says so. */
export function doneText(job: ImportJob): string {
  const r = job.result;
  if (!r) return 'Imported';
  const secs = r.duration_ms !== undefined ? ` in ${formatNumber(Math.max(r.duration_ms, 100) / 1000)} s` : '';
  const added = r.added ?? 0;
  const updated = r.updated ?? 0;
  const unchanged = r.unchanged ?? 0;
  if (r.added !== undefined && added + updated === 0 && unchanged > 0) {
    return `Nothing new: all ${formatCount(unchanged)} records were already here`;
  }
  const written = r.resources ?? sum(r.counts);
  const parts: string[] = [];
  if (r.added !== undefined && (updated > 0 || unchanged > 0)) {
    parts.push(`${formatCount(added)} new`);
    if (updated) parts.push(`${formatCount(updated)} updated`);
    if (unchanged) parts.push(`${formatCount(unchanged)} unchanged`);
  }
  return `Imported ${formatCount(written)} records${parts.length ? ` (${parts.join(', ')})` : ''}${secs}`;
}

function ImportResultView({ job }: { job: ImportJob }) {
  const r = job.result!;
  const types = orderedTypes(r.counts ?? {});
  const skipped = Math.max(r.skipped_total ?? 0, r.skipped?.length ?? 0);
  return (
    <div className="result" data-testid="import-result">
      {(r.reused_source || r.sources?.some((x) => x.reused_source)) && (
        <p className="muted">This file had been imported before: its source was updated, nothing is doubled.</p>
      )}
      {types.length > 0 && (
        <ul className="result-counts" aria-label={`Records imported from ${job.name}, by type`}>
          {types.map((t) => (
            <li key={t}>
              <span className="num">{formatCount(r.counts[t])}</span> {countLabel(t, r.counts[t])}
            </li>
          ))}
        </ul>
      )}
      {(r.warnings ?? []).length > 0 && (
        <div className="notice notice-warn">
          <p className="notice-title">Warnings</p>
          <ul>
            {r.warnings!.map((w, i) => (
              <li key={i}>{w}</li>
            ))}
          </ul>
        </div>
      )}
      {skipped > 0 && (
        <div className="notice notice-warn">
          <p className="notice-title">
            {formatCount(skipped)} record{skipped === 1 ? ' was' : 's were'} skipped:
          </p>
          <ul className="skipped">
            {(r.skipped ?? []).slice(0, 200).map((s, i) => (
              <li key={i}>
                {[s.file, s.position].filter(Boolean).join(', ')}
                {s.file || s.position ? ': ' : ''}
                {s.message}
              </li>
            ))}
          </ul>
          {skipped > Math.min(r.skipped?.length ?? 0, 200) && <p>…and {formatCount(skipped - Math.min(r.skipped?.length ?? 0, 200))} more.</p>}
        </div>
      )}
      <p>
        <a href={href('/')}>See the dashboard</a> · <a href={href('/timeline', { source: r.source_id })}>See these records in the timeline</a> ·{' '}
        <a href={href('/sources')}>Sources</a>
      </p>
    </div>
  );
}
