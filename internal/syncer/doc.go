// Package syncer keeps provider sources in step with their FHIR servers: a supervisor (Run) that
// syncs every connected provider source on a schedule, once at start-up, and on demand, and the
// sync job itself.
//
// # Supervisor
//
// A source is synced when it is a provider source whose status is connected or error (never
// reconnect_needed: that needs the user), and it is due: its last completed attempt (a run that
// ended ok or failed, or last_sync) is at least Config.Interval (default 12 h) old, or it never
// synced. Run syncs the due sources at start, then rechecks at the next due time (and at least every
// minute, so a laptop waking from sleep catches up). Enqueue / SyncSource / SyncAll ask for a sync
// now. There is at most one job per source: a request for a source that is queued or running is
// coalesced into that job. Jobs of different sources run in parallel, at most Config.Concurrency
// (default 3) at a time; every HTTP request has its own timeout, so a provider that hangs holds one
// slot and delays no other source. RunOnce is the blocking form for the command line and tests.
//
// # A sync job
//
// The job gets the source's TokenManager from Config.Tokens (it refreshes the access token near
// expiry and once on a 401, single-flight), reads {fhir_base}/metadata once, and then either pages
// through Patient/{id}/$everything (with _since on later runs) when the CapabilityStatement offers
// it, or searches each resource type the granted scopes allow ({Type}?patient={id}&_count=N, the
// Patient itself by Patient?_id={id}) with _lastUpdated=gt<cursor> on later runs. Bundle.link next
// is followed only when it stays on the FHIR base's origin. References to resources outside the
// patient compartment (Organization, Practitioner, PractitionerRole, Location, Medication) that
// were not returned are read one by one when the scopes allow it. Absolute references under the
// source's FHIR base are stored relative (Type/id).
//
// Each page is parsed (fhir.Scan; an invalid resource is skipped and counted as a warning;
// OperationOutcome entries and resources about another patient are skipped), indexed, and written
// in its own write transaction; the Writer makes this idempotent (an unchanged resource is not
// rewritten, a changed one replaces the stored copy). The next page is fetched while the current
// one is written.
//
// The cursor is the server's time of the first page of the previous sync (Bundle.meta.lastUpdated,
// else the Date header minus one second), never the local clock, per type for searches. It is
// saved in sources.sync_state only when the whole sync succeeded, in the same transaction that
// finishes the run. A sync interrupted by a quit, a network drop or a crash leaves only whole pages
// behind and the old cursor, so the next sync fetches the same range again and the Writer skips
// what is already stored. At start-up, runs still marked running become interrupted.
//
// # Errors
//
//   - 401 after the TokenManager's one refresh, invalid_grant, or no refresh token: the source
//     becomes reconnect_needed with "Sign in to <provider> again to resume syncing"; every record
//     is kept.
//   - 429 and 503: Retry-After is honoured (seconds or an HTTP date, capped at
//     Config.MaxRetryAfter, default 10 min), else capped exponential backoff with jitter.
//   - Other 5xx, timeouts and network errors: up to Config.MaxRetries retries (default 4) with
//     backoff, then the run fails, the source shows status error with the message, and the next
//     scheduled run tries again.
//   - 400/403/404 (and other 4xx), a page over Config.MaxBody (default 64 MiB), a next link to
//     another origin, or a page that is not valid JSON fail that one resource type: the run goes on
//     with the others and ends ok with warnings (stored as the run's error text and the source's
//     last_error, with status connected). That type keeps no cursor, so the next run fetches it in
//     full. With $everything such a failure fails the run (there is only one "type"), except a
//     4xx on its first page: a server that lists $everything but refuses it is searched type by
//     type instead, and again at later runs until the next full sync.
//
// Messages are plain sentences; they never hold tokens or request URLs.
//
// # Records the provider no longer returns
//
// An incremental sync cannot see deletions. So the first sync and then one sync in every
// Config.FullSyncEvery (default 7 days) is a full sync (no cursor). After a full sync that
// succeeded, every stored resource of the source that the provider did not return gets
// resources.missing_since set, but only for resource types that were fetched completely in that
// run (a type that failed with a warning marks nothing). Such records are kept, not deleted: the
// API shows them with "missing": true so the user still has what they once had. A resource that is
// returned again has the mark cleared (records.Writer does it).
//
// # Progress and history
//
// Every run is a sync_runs row (trigger schedule|startup|manual|connect; status ok, failed,
// cancelled or interrupted; counts; requests; error). Events go to Config.Events: sync.started,
// sync.progress (about ten a second), sync.done, sync.failed, source.status and resources.changed,
// with ids, types and counts only (no health data). Routes serves POST /sources/{id}/sync,
// POST /sync and GET /sources/{id}/sync-runs.
package syncer
