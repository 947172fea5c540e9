// Package sandbox is a SMART on FHIR R4 test provider, "the demo hospital": an OAuth 2
// authorization server (SMART App Launch 2.x standalone patient launch) and a read-only FHIR
// server over the synthetic Synthea patients in ../shared/data/synthea-r4. Every Synthea patient
// is a login. End-to-end tests of the app (connect, sync), benchmarks and the
// `fasten-desktop sandbox` command use it.
//
// # Use
//
//	srv, err := sandbox.New(sandbox.Config{})          // loads the data (about 0.2 s)
//	ts := httptest.NewServer(srv.Handler())
//	srv.SetBaseURL(ts.URL)                              // FHIR base: ts.URL + "/fhir"
//
// Tests that build many servers load the data once with LoadData and pass it as Config.Data.
// With no Config.Clients, one public client DefaultClientID ("fasten-desktop") is registered
// that accepts any loopback redirect URI (http://127.0.0.1:<port>/..., http://[::1]:<port>/...).
//
// # Endpoints (below the base URL)
//
//	GET  /fhir/.well-known/smart-configuration  SMART discovery (404 with Config.SMARTv1Only)
//	GET  /fhir/.well-known/openid-configuration OpenID Connect discovery (id_token issuer = FHIR base)
//	GET  /fhir/metadata                         CapabilityStatement; oauth-uris extension only in SMARTv1Only mode
//	GET  /auth/authorize                        login + consent page (HTML)
//	POST /auth/authorize                        the page's form: the user's decision
//	POST /auth/token                            authorization_code and refresh_token grants
//	GET  /auth/jwks                             RS256 key for id_tokens
//	GET  /fhir/{Type}/{id}                      read
//	GET  /fhir/{Type}?patient={id}              search (also subject=Patient/{id}; Patient?_id={id})
//	GET  /fhir/Patient/{id}/$everything         the patient's compartment plus referenced Organizations/Practitioners
//	GET  /                                      a short page naming the FHIR base
//
// # Authorize
//
// GET /auth/authorize takes response_type=code, client_id, redirect_uri (exactly registered,
// or loopback when the client allows it), scope, state (required), aud (must equal the FHIR
// base), code_challenge and code_challenge_method=S256 (required; plain is refused), optional
// nonce and login_hint=<Patient id> (preselects that patient). An unknown client or redirect
// URI gets an HTML error page (400), never a redirect; other errors redirect to redirect_uri
// with error, error_description, state and iss (RFC 6749 section 4.1.2.1).
//
// The page lists every patient (name and birth date) as a radio button and the scopes to be
// granted, with Allow and Deny buttons. The form POSTs to /auth/authorize with the fields
//
//	request_id  hidden handle of the pending request (also sent in the X-Sandbox-Request-Id header)
//	patient     the Patient id to sign in as
//	decision    "allow" or "deny"
//
// Allow redirects (303) to redirect_uri?code=...&state=...&iss=<FHIR base>; Deny redirects with
// error=access_denied. A handle is single use and expires after 10 minutes. SignIn drives all
// this (and any redirects before it, e.g. a Lighthouse connect URL) for tests.
//
// Codes are 256-bit random, single use (a replayed code also revokes the tokens it produced),
// expire after Config.CodeTTL (60 s) and are bound to the client, redirect_uri, code_challenge,
// patient and granted scopes.
//
// # Token
//
// POST /auth/token (application/x-www-form-urlencoded). grant_type=authorization_code needs
// code, redirect_uri (same as at authorize) and code_verifier (S256-checked);
// grant_type=refresh_token needs refresh_token and may narrow scope. Confidential clients
// (Client.Secret set) authenticate with HTTP Basic or client_id+client_secret in the body;
// public clients send client_id and must not send a secret. The response has access_token,
// token_type "Bearer", expires_in (Config.AccessTokenTTL), scope (what was granted),
// patient (when launch/patient or a patient/ scope was granted), need_patient_banner,
// id_token (openid with fhirUser or profile; RS256, see /auth/jwks) and refresh_token (when
// offline_access was granted). Refresh tokens rotate: each use returns a new one and the old
// one then answers invalid_grant. Errors are RFC 6749 JSON ({"error", "error_description"}),
// 401 for invalid_client. Tokens and codes are stored only as SHA-256 hashes and never logged.
//
// # Scopes
//
// Understood: launch/patient, openid, fhirUser, profile, offline_access, and clinical scopes in
// v1 (patient/Observation.read, patient/*.read) and, unless SMARTv1Only, v2 syntax
// (patient/Observation.rs, patient/*.rs, with an optional ?query that is kept but not
// enforced). Write permissions are dropped from the grant (the server is read-only); other
// scopes are not granted. Config.WithholdTypes and Config.GrantScopes narrow grants further.
// The FHIR API enforces the grant: read needs r (v1 read), search needs s (v1 read);
// Organization, Practitioner, PractitionerRole, Location and Medication are shared and
// readable by any valid token.
//
// # FHIR API
//
// Every call needs "Authorization: Bearer <access token>"; without one the answer is 401 with
// WWW-Authenticate: Bearer (error="invalid_token" for an unknown, expired or revoked token).
// A token sees only its patient's compartment: another patient's resources read as 404, a
// search or $everything for another patient is 403, a type outside the grant is 403. An
// unknown type is 400. Errors carry an OperationOutcome.
//
// Searches take patient (or subject), _count (default 50, max 1000, 0 for the total only),
// _lastUpdated with prefixes eq, gt, ge, lt, le (repeatable; the value's precision counts:
// gt2024-01-01T00:00:00Z means from 00:00:01), and _offset (used by the paging links).
// $everything takes _since (inclusive), _type (comma list) and _count. Results come in a
// stable order (bundle order, changed resources keep their place; added ones go last), as a
// searchset Bundle with total and absolute self/next/previous links that repeat the query.
// Bundle.meta.lastUpdated is Config.Now() at the time of the search. Reads carry ETag
// W/"<versionId>" and Last-Modified.
//
// Every loaded resource has meta.versionId "1" and meta.lastUpdated = the base time
// (DefaultBaseTime, 2024-01-01T00:00:00Z); `urn:uuid:` references are rewritten to Type/id.
//
// # Test controls
//
//   - Touch, Modify, Remove, AddResources change data; changed resources get a new versionId
//     and meta.lastUpdated = Config.Now() (millisecond precision; kept strictly after any
//     Bundle.meta.lastUpdated already served, so a frozen test clock works too), so
//     `_lastUpdated=gt<previous Bundle.meta.lastUpdated>` returns exactly them.
//   - ReplicatePatient builds big patients (e.g. 50,000 resources) cheaply.
//   - SetFaults injects 401s, 429s with Retry-After, 5xx, latency (optionally by path prefix)
//     and refresh failures; ExpireAccessTokens and RevokeRefreshTokens invalidate tokens.
//   - Requests is the request log (secrets redacted) and TokenCalls counts token-endpoint
//     calls by grant type; ResetRequests clears both.
//   - Patients, Patient and Resource expose what the sandbox holds.
//
// Switches in Config: SMARTv1Only, NoS256, NoEverything, OmitPatient, OmitExpiresIn,
// WithholdTypes, GrantScopes, AccessTokenTTL, CodeTTL, Now.
package sandbox
