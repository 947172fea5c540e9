// Types of the backend API (docs/openapi.yaml). Keep in step with the contract.
import type { FhirResource, OperationOutcome, Patient } from 'fhir/r4';

export type Counts = Record<string, number>;

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export type SourceKind = 'manual' | 'provider';
export type SourceStatus = 'ok' | 'connected' | 'reconnect_needed' | 'error';

export interface Source {
  id: number;
  kind: SourceKind;
  name: string;
  status: SourceStatus;
  syncing: boolean;
  last_sync?: string | null;
  last_error?: string | null;
  created_at: string;
  updated_at?: string;
  resource_count: number;
  patient_id?: string | null;
  profile_id?: number | null;
  provider_id?: string | null;
  fhir_base?: string | null;
  scopes?: string | null;
  /** The person's own entries ("Entered by me"). */
  self?: boolean;
}

export interface SourceDetail extends Source {
  counts?: Counts;
}

export interface DeleteSourceResult {
  deleted?: number;
  counts?: Counts;
}

/** A stored resource. `resource` is the FHIR resource as stored (references resolved to Type/id). */
export interface ResourceItem<R = FhirResource> {
  source_id: number;
  type: string;
  id: string;
  version?: string | null;
  date?: string | null;
  last_updated?: string | null;
  title?: string;
  patient?: string | null;
  profile_id?: number | null;
  resource: R;
}

/** A record a reference resolves to (`GET /resources/{type}/{id}` → `references`). */
export interface RefTarget {
  type: string;
  id: string;
  title: string;
  date?: string | null;
  source_id?: number;
  /** Test results only: the Observation itself (values for a report's results table). */
  resource?: FhirResource;
}

/** A record that references another one (`related`). */
export interface RelatedRecord {
  type: string;
  id: string;
  title: string;
  date: string | null;
  source_id?: number;
  /** Results, costs, documents and medications carry the record itself. */
  resource?: FhirResource;
}

/** A reference the store cannot resolve, in words ("a doctor not in your records"). */
export interface Unresolvable {
  reference: string;
  type?: string;
  text: string;
}

/** One record with what it points at and what points at it. */
export interface ResourceDetail<R = FhirResource> extends ResourceItem<R> {
  references?: Record<string, RefTarget>;
  unresolved?: Unresolvable[];
  related?: RelatedRecord[];
  /** The search for related records reached its bound (a very long history): some may be missing. */
  related_partial?: boolean;
}

export interface ResourcePage<R = FhirResource> {
  items: ResourceItem<R>[];
  next_cursor?: string;
}

export interface SkippedEntry {
  file?: string;
  position?: string;
  code?: string;
  message?: string;
}

/** Per-file part of an import result (sent by the backend; not yet in docs/openapi.yaml). */
export interface FileResult {
  file: string;
  source_id: number;
  counts: Counts;
  added?: number;
  updated?: number;
  unchanged?: number;
  reused_source?: boolean;
}

export interface ImportResult {
  source_id: number;
  counts: Counts;
  skipped: SkippedEntry[] | null;
  /** All skipped resources; `skipped` may list only the first ones. */
  skipped_total?: number;
  warnings?: string[] | null;
  resources?: number;
  added?: number;
  updated?: number;
  unchanged?: number;
  sources?: FileResult[];
  bytes?: number;
  duration_ms?: number;
  reused_source?: boolean;
}

export type ImportState = 'running' | 'done' | 'failed' | 'cancelled';
export type ImportPhase = 'receiving' | 'checking' | 'writing' | 'finishing' | 'done';

export interface ImportStatus {
  id?: string;
  state?: ImportState;
  phase?: ImportPhase;
  file?: string;
  bytes_done?: number;
  bytes_total?: number;
  resources?: number;
  /** Overall progress 0..1 (the backend sends it; not yet in docs/openapi.yaml). */
  fraction?: number;
  result?: ImportResult;
  error?: string;
}

export interface Summary {
  patient?: Patient | null;
  counts?: Counts;
  conditions?: ResourceItem[];
  medications?: ResourceItem[];
  allergies?: ResourceItem[];
  immunizations?: ResourceItem[];
  vitals?: ResourceItem[];
  labs?: ResourceItem[];
  encounters?: ResourceItem[];
}

export interface Health {
  status: string;
  version?: string;
}

/** A person of the household (`GET /profiles`; see api/people.ts for the rest). */
export interface Profile {
  id: number;
  name: string;
  birth_date?: string | null;
  gender?: string | null;
  /** The person's colour (#rrggbb) and initials in the UI. */
  color?: string;
  initials?: string;
  resource_count?: number;
  source_count?: number;
  last_activity?: string | null;
  /** null, the date of death, or true when only that is known. */
  deceased?: string | boolean | null;
}

/** `GET /installation` (issue 4); 404 before registering. */
export interface Installation {
  installation_id: string;
  lighthouse_url?: string;
  name?: string;
  email?: string;
  registered_at?: string | null;
}

/** GET /settings: onboarding, the Lighthouse in use and the registration with it. */
export interface Settings {
  onboarding_done: boolean;
  lighthouse_url: string;
  /** flag: --lighthouse-url / FASTEN_LIGHTHOUSE_URL; settings: the settings file; default: the public one. */
  lighthouse_url_source: 'flag' | 'settings' | 'default';
  default_lighthouse_url: string;
  installation: Installation | null;
  /** Set when this installation registered with another Lighthouse than the one in use. */
  registered_elsewhere?: string;
  admin_name?: string;
  admin_email?: string;
}

export interface SettingsPatch {
  lighthouse_url?: string;
  onboarding_done?: boolean;
}

/** A provider in the Lighthouse catalog (GET /providers). */
export interface Provider {
  id: string;
  name: string;
  fhir_base: string;
  confidential: boolean;
  user_limit: number;
}

/** POST /connect: open authorize_url in the system browser. */
export interface ConnectStarted {
  connect_id: string;
  authorize_url: string;
  expires_at: string;
  provider: string;
  provider_name: string;
  warning?: string;
}

export type ConnectState = 'pending' | 'connected' | 'failed' | 'cancelled';

export interface ConnectStatus {
  connect_id: string;
  provider: string;
  provider_name: string;
  status: ConnectState;
  source_id: number | null;
  /** What went wrong, in plain words. */
  error: string | null;
  error_code?: string;
  patient_name?: string;
  sync_started: boolean;
  reconnect?: boolean;
  expires_at: string;
  warning?: string;
}

export interface Disconnected {
  source_id: number;
  source_deleted: boolean;
  deleted: number;
  counts?: Counts;
  status?: string;
}

export type { OperationOutcome };

export type ResourceSort = '-date' | 'date' | 'title' | '-title' | '-last_updated';

// --- Background sync, preferences and webhooks (issues 6 and 8) -------------------------------

export type SyncRunStatus = 'running' | 'ok' | 'failed' | 'cancelled' | 'interrupted';

/** GET /sources/{id}/sync-runs: one sync of a provider source. */
export interface SyncRun {
  id: number;
  source_id: number;
  trigger: 'schedule' | 'startup' | 'manual' | 'connect' | string;
  started_at: string;
  finished_at: string | null;
  status: SyncRunStatus;
  added: number;
  updated: number;
  unchanged: number;
  requests: number;
  /** Why the run failed or stopped. */
  error: string | null;
  /** What was skipped in a run that still ended ok. */
  warnings: string | null;
}

/** GET /preferences: start at login and the background sync schedule. */
export interface Preferences {
  autostart: boolean;
  autostart_supported: boolean;
  /** Why starting at login is not available. */
  autostart_note?: string;
  sync_interval: string;
  sync_interval_default: string;
  /** What the running app uses; differs from sync_interval until the next start when it cannot change live. */
  sync_interval_active: string;
  sync_interval_choices: string[];
  sync_interval_min?: string;
  sync_interval_max?: string;
}

export interface PreferencesPatch {
  autostart?: boolean;
  sync_interval?: string;
}

export type HubState = 'pending' | 'active' | 'failed' | 'dead' | 'expired';

export interface DeadLetter {
  event_id: string;
  event: string;
  timestamp: string;
  attempts: number;
  error: string;
  failed_at: string;
}

/** GET /hub/subscriptions: a webhook subscription (never its secret). */
export interface HubSubscription {
  id: string;
  callback: string;
  events: string[];
  state: HubState;
  lease_seconds: number;
  lease_expires: string | null;
  include_resources: boolean;
  allowed_resources: boolean;
  failures: number;
  delivered: number;
  dropped: number;
  last_error?: string;
  last_delivery?: string;
  created_at: string;
  dead_letters?: DeadLetter[];
}

/** What a backup holds (POST /restore), before anything is replaced. */
export interface RestoreSummary {
  name: string;
  size: number;
  schema: number;
  total: number;
  counts: Record<string, number>;
  people: { name: string; birth_date?: string; records: number }[];
  sources: { name: string; kind: 'manual' | 'provider'; records: number }[];
  /** When a source in it last changed. */
  newest?: string;
}

/** A checked backup waiting for confirmation (POST /restore → 201). */
export interface RestorePending {
  id: string;
  summary: RestoreSummary;
}

/** A restore done (POST /restore/{id}). */
export interface RestoreResult {
  /** Where the records from before the restore are kept. */
  previous: string;
  summary: RestoreSummary;
}
