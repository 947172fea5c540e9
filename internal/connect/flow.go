package connect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/callback"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// Connect statuses.
const (
	StatusPending   = "pending"
	StatusConnected = "connected"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Error codes of a failed connect (ConnectStatus.ErrorCode), for the UI to choose its words.
const (
	ErrCodeDenied        = "denied"           // the user declined at the provider
	ErrCodeProvider      = "provider_error"   // the provider reported an error on the callback
	ErrCodeRefused       = "provider_refused" // the token endpoint refused the code
	ErrCodeTimeout       = "timeout"
	ErrCodeCancelled     = "cancelled"
	ErrCodeKeyringLocked = "keyring_locked"
	ErrCodeKeyring       = "keyring_unavailable"
	ErrCodeNoPatient     = "no_patient"
	ErrCodeIssuer        = "issuer_mismatch"
	ErrCodeWrongPatient  = "wrong_patient"
	ErrCodeFailed        = "failed"
)

// maxPending bounds the sign-ins waiting at once (each holds a loopback listener).
const maxPending = 8

// keepFinished is how long a finished connect's status stays readable.
const keepFinished = time.Hour

// ConnectRequest starts a connect.
type ConnectRequest struct {
	Provider string `json:"provider"`
	// Profile is the local person the sign-in is for (issue 7); "" means DefaultProfile. A
	// numeric profile id also becomes the new source's profile.
	Profile string `json:"profile,omitempty"`
	// SourceID, when set, signs in again for an existing provider source (reconnect): its tokens
	// are replaced and its records kept.
	SourceID int64 `json:"-"`
}

// Started is what POST /connect answers: open AuthorizeURL in the system browser.
type Started struct {
	ConnectID    string    `json:"connect_id"`
	AuthorizeURL string    `json:"authorize_url"`
	ExpiresAt    time.Time `json:"expires_at"`
	Provider     string    `json:"provider"`
	ProviderName string    `json:"provider_name"`
	// Warning is the Lighthouse's notice that the installation nears its user limit.
	Warning string `json:"warning,omitempty"`
}

// ConnectStatus is what GET /connect/{id} answers.
type ConnectStatus struct {
	ConnectID    string  `json:"connect_id"`
	Provider     string  `json:"provider"`
	ProviderName string  `json:"provider_name"`
	Status       string  `json:"status"`
	SourceID     *int64  `json:"source_id"`
	Error        *string `json:"error"`
	ErrorCode    string  `json:"error_code,omitempty"`
	PatientName  string  `json:"patient_name,omitempty"`
	// SyncStarted is true when the first sync was handed to the syncer.
	SyncStarted bool      `json:"sync_started"`
	Reconnect   bool      `json:"reconnect,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	Warning     string    `json:"warning,omitempty"`
}

// attempt is one sign-in.
type attempt struct {
	id       string
	provider lighthouse.Provider
	profile  string
	key      string // provider + profile (+ source): a newer attempt cancels an older one
	listener *callback.Listener
	expires  time.Time
	done     chan struct{} // closed once the outcome is recorded

	// Fixed before the listener opens; read by handle.
	server      *smart.Server
	verifier    string
	tokenURL    string
	clientID    string
	redirectURI string
	lh          *lighthouse.Client
	reconnect   *records.Source
	profileID   *int64
	provisional int64 // the reserved person whose id the user key came from (no person chosen)

	// Written by handle and finish; read under Service.mu.
	sourceID    int64
	status      string
	errMsg      string
	errCode     string
	patientName string
	syncStarted bool
	warning     string
	finished    time.Time
}

// Connect starts a sign-in: it discovers the provider's SMART configuration (S256 required),
// opens the loopback listener and asks the Lighthouse for the authorize URL (the per-provider
// user limit is checked there).
func (s *Service) Connect(ctx context.Context, req ConnectRequest) (Started, error) {
	req.Provider = strings.TrimSpace(req.Provider)
	if req.Provider == "" {
		return Started{}, problem(http.StatusBadRequest, "bad_request", "Choose a provider to connect.")
	}
	profile := strings.TrimSpace(req.Profile)
	var provisional int64
	if profile == "" && req.SourceID == 0 && s.people != nil {
		// Nobody chosen: the sign-in is for the person reserved for that (see
		// people.Provisional), settled once the provider says whose records these are.
		var err error
		if provisional, err = s.people.Provisional(ctx); err != nil {
			return Started{}, err
		}
		profile = strconv.FormatInt(provisional, 10)
	}
	if profile == "" {
		profile = DefaultProfile
	}
	var profileID *int64
	if n, err := strconv.ParseInt(profile, 10, 64); err == nil && n > 0 && provisional == 0 {
		if err := s.checkProfile(ctx, n); err != nil {
			return Started{}, err
		}
		profileID = &n
	}
	var reconnect *records.Source
	if req.SourceID != 0 {
		src, err := s.store.GetSource(ctx, req.SourceID)
		if err != nil {
			return Started{}, err
		}
		if src.Kind != records.KindProvider || src.ProviderID == nil || src.TokenKey == "" {
			return Started{}, problem(http.StatusBadRequest, "not_a_provider_source", "Only a connected provider can be signed in to again.")
		}
		reconnect = &src
		if src.ProfileID != nil && req.Profile == "" {
			profile, profileID = strconv.FormatInt(*src.ProfileID, 10), src.ProfileID
		}
	}

	sess, err := s.inst.Session(ctx)
	if err != nil {
		return Started{}, err
	}
	lc := sess.Client
	catalog, err := lc.Providers(ctx, "")
	if err != nil {
		return Started{}, installation.LighthouseError(lc, err)
	}
	var p *lighthouse.Provider
	for i := range catalog {
		if catalog[i].ID == req.Provider {
			p = &catalog[i]
		}
	}
	if p == nil {
		return Started{}, problem(http.StatusNotFound, "provider_unknown", fmt.Sprintf("The Lighthouse does not offer a provider called %q.", req.Provider))
	}
	if reconnect != nil && *reconnect.ProviderID != p.ID {
		return Started{}, problem(http.StatusBadRequest, "bad_request", "This source belongs to another provider.")
	}
	if p.RedirectURI == "" {
		return Started{}, problem(http.StatusBadGateway, "lighthouse_error", "The Lighthouse's catalog entry for "+p.Name+" has no callback address, so it cannot be connected.")
	}

	server, err := smart.Discover(ctx, s.hc, p.FHIRBase)
	if err != nil {
		return Started{}, providerError(err)
	}
	if p.TokenURL != "" && installation.NormURL(p.TokenURL) != installation.NormURL(server.TokenEndpoint) {
		s.log.Warn("the catalog's token endpoint differs from the provider's discovery; using discovery", "provider", p.ID)
	}
	pk := smart.NewPKCE()
	state := smart.NewState()
	// The minimum: one read scope per type the app uses, never a wildcard, narrowed by the
	// catalog when the provider limits the types.
	scope := smart.MinimumScopes(server, p.Scopes)

	a := &attempt{
		id:          randomHex(16),
		provider:    *p,
		profile:     profile,
		key:         p.ID + "\x00" + profile,
		done:        make(chan struct{}),
		server:      server,
		verifier:    pk.Verifier,
		tokenURL:    server.TokenEndpoint,
		clientID:    p.ClientID,
		redirectURI: p.RedirectURI,
		lh:          lc,
		reconnect:   reconnect,
		profileID:   profileID,
		provisional: provisional,
		status:      StatusPending,
	}
	if reconnect != nil {
		a.key += "\x00" + strconv.FormatInt(reconnect.ID, 10)
	}

	s.mu.Lock()
	s.purgeLocked()
	var older []*attempt
	pending := 0
	for _, o := range s.attempts {
		if o.status != StatusPending {
			continue
		}
		if o.key == a.key {
			older = append(older, o)
		} else {
			pending++
		}
	}
	s.mu.Unlock()
	if pending >= maxPending {
		return Started{}, problem(http.StatusTooManyRequests, "too_many_pending", "Too many sign-ins are waiting. Finish or cancel one first.")
	}
	for _, o := range older { // the user started over: the older browser tab no longer counts
		o.listener.Close()
	}

	l, err := callback.Listen(s.ctx, callback.Options{
		Timeout:       s.timeout,
		ExpectedState: state,
		Handle:        func(ctx context.Context, r callback.Result) error { return s.handle(ctx, a, r) },
		Logger:        s.log.With("part", "sign-in listener"),
	})
	if err != nil {
		return Started{}, err
	}
	a.listener = l
	a.expires = s.now().Add(s.timeout)
	resp, err := lc.Connect(ctx, p.ID, lighthouse.ConnectRequest{
		State:         state,
		CodeChallenge: pk.Challenge,
		RedirectPort:  l.Port(),
		UserKey:       sess.UserKey(profile),
		Scope:         scope,
	})
	if err == nil && resp.RedirectURI != "" && installation.NormURL(resp.RedirectURI) != installation.NormURL(p.RedirectURI) {
		err = problem(http.StatusBadGateway, "lighthouse_error", "The Lighthouse answered with a callback address that does not match its catalog, so connecting was stopped.")
	}
	if err != nil {
		l.Close()
		return Started{}, installation.LighthouseError(lc, err)
	}
	if resp.Warning != nil {
		a.warning = resp.Warning.Detail
	}
	if !resp.ExpiresAt.IsZero() && resp.ExpiresAt.Before(a.expires) {
		a.expires = resp.ExpiresAt
	}
	s.mu.Lock()
	s.attempts[a.id] = a
	s.mu.Unlock()
	go s.watch(a)
	s.log.Info("sign-in started", "provider", p.ID, "connect_id", a.id, "port", l.Port(), "confidential", p.Confidential, "reconnect", reconnect != nil)
	return Started{
		ConnectID:    a.id,
		AuthorizeURL: resp.AuthorizeURL,
		ExpiresAt:    a.expires.UTC(),
		Provider:     p.ID,
		ProviderName: p.Name,
		Warning:      a.warning,
	}, nil
}

// checkProfile makes sure a person exists (and may be chosen) before a sign-in is started for it.
func (s *Service) checkProfile(ctx context.Context, id int64) error {
	ok, err := s.store.ChoosablePerson(ctx, id)
	if err == nil && !ok {
		return problem(http.StatusNotFound, "not_found", fmt.Sprintf("There is no person with id %d.", id))
	}
	return err
}

// handle runs inside the listener for the one accepted callback with a code: check iss, exchange
// the code at the token endpoint recorded with the state, save the tokens in the keyring, and
// create (or update) the source. Its error is shown on the browser's result page and recorded.
func (s *Service) handle(ctx context.Context, a *attempt, r callback.Result) error {
	if err := smart.CheckIssuer(a.server, r.Iss); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var tok *smart.Token
	var err error
	if a.provider.Confidential {
		tok, err = s.swapCode(ctx, a, r.Code)
	} else {
		tok, err = smart.Exchange(ctx, s.hc, a.tokenURL, a.clientID, r.Code, a.verifier, a.redirectURI)
	}
	if err != nil {
		return err
	}
	if a.reconnect == nil && tok.Patient != "" {
		// The same patient at the same provider again: sign in to the source that holds them
		// (new tokens, the same records, one sync), never a second copy of every record.
		src, found, err := s.store.FindProviderSource(ctx, a.provider.ID, a.server.FHIRBase, tok.Patient)
		if err != nil {
			return err
		}
		if found && src.TokenURL == a.tokenURL && src.Confidential == a.provider.Confidential && src.ClientID == a.clientID {
			s.mu.Lock()
			a.reconnect = &src
			s.mu.Unlock()
			s.log.Info("this patient is connected already; signing in to their source again", "provider", a.provider.ID, "source_id", src.ID)
		}
	}
	if a.reconnect != nil {
		return s.saveReconnect(ctx, a, tok)
	}

	key := tokenKeyPrefix + randomHex(16)
	if err := smart.NewSecretTokenStore(s.keyring, key).Save(ctx, tok); err != nil {
		return installation.KeyringError(err) // nothing was created
	}
	id, err := s.store.AddSource(ctx, records.NewSource{
		Kind:         records.KindProvider,
		Name:         a.provider.Name,
		Status:       records.StatusConnected,
		ProfileID:    a.profileID,
		PatientID:    tok.Patient,
		ProviderID:   a.provider.ID,
		FHIRBase:     a.server.FHIRBase,
		Scopes:       tok.Scope,
		TokenURL:     a.tokenURL,
		ClientID:     a.clientID,
		Confidential: a.provider.Confidential,
		TokenKey:     key,
	})
	if err != nil {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer dcancel()
		if derr := s.keyring.Delete(dctx, key); derr != nil {
			s.log.Error("a sign-in could not be removed from the keyring after the source failed", "err", derr)
		}
		return fmt.Errorf("Fasten could not save the new source: %w", err)
	}
	s.mu.Lock()
	a.sourceID = id
	s.mu.Unlock()
	return nil
}

// saveReconnect stores a new sign-in for an existing source under its keyring key.
func (s *Service) saveReconnect(ctx context.Context, a *attempt, tok *smart.Token) error {
	src := a.reconnect
	if src.PatientID != nil && *src.PatientID != "" && *src.PatientID != tok.Patient {
		return problem(http.StatusConflict, ErrCodeWrongPatient,
			"You signed in as a different patient than the one this source holds, so nothing was changed. To add that patient, connect the provider as a new source.")
	}
	if src.TokenURL != a.tokenURL || src.Confidential != a.provider.Confidential || src.ClientID != a.clientID {
		return problem(http.StatusConflict, ErrCodeFailed,
			"The provider's sign-in settings changed since this source was connected, so it cannot be signed in to again. Connect the provider as a new source.")
	}
	if err := smart.NewSecretTokenStore(s.keyring, src.TokenKey).Save(ctx, tok); err != nil {
		return installation.KeyringError(err)
	}
	s.tokens.Forget(src.ID)
	status, clearErr, scope, patient := records.StatusConnected, "", tok.Scope, tok.Patient
	if err := s.store.UpdateSource(ctx, src.ID, records.SourceUpdate{Status: &status, LastError: &clearErr, Scopes: &scope, PatientID: &patient}); err != nil {
		return fmt.Errorf("Fasten could not update the source: %w", err)
	}
	s.mu.Lock()
	a.sourceID = src.ID
	s.mu.Unlock()
	return nil
}

// swapCode exchanges the code through the Lighthouse (confidential providers).
func (s *Service) swapCode(ctx context.Context, a *attempt, code string) (*smart.Token, error) {
	status, body, err := a.lh.SwapToken(ctx, a.provider.ID, lighthouse.TokenRequest{
		GrantType: "authorization_code", Code: code, CodeVerifier: a.verifier, RedirectURI: a.redirectURI,
	})
	if err != nil {
		return nil, installation.LighthouseError(a.lh, err)
	}
	tok, err := smart.ParseTokenResponse(body, s.now())
	if err != nil {
		return nil, fmt.Errorf("code exchange: %w", err)
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("code exchange: %w: the provider answered HTTP %d", smart.ErrBadTokenResponse, status)
	}
	return tok, nil
}

// watch waits for the sign-in's outcome and records it.
func (s *Service) watch(a *attempt) {
	_, err := a.listener.Wait(s.ctx)
	if err != nil {
		status := StatusFailed
		code, msg, errID := failure(err)
		if code == ErrCodeCancelled {
			status = StatusCancelled
		}
		s.mu.Lock()
		a.status, a.errCode, a.errMsg, a.finished = status, code, msg, s.now()
		s.mu.Unlock()
		close(a.done)
		if errID != "" {
			s.log.Error("sign-in failed", "provider", a.provider.ID, "connect_id", a.id, "error_id", errID, "err", err)
		} else {
			s.log.Info("sign-in ended", "provider", a.provider.ID, "connect_id", a.id, "status", status, "reason", code, "err", err)
		}
		return
	}
	s.mu.Lock()
	id := a.sourceID
	s.mu.Unlock()
	onConnected := s.onConnected
	raw, name := s.fetchPatient(id)
	if a.reconnect == nil {
		s.settle(a, id, raw)
	}
	s.mu.Lock()
	a.status, a.patientName, a.finished, a.syncStarted = StatusConnected, name, s.now(), onConnected != nil
	s.mu.Unlock()
	close(a.done)
	s.log.Info("provider connected", "provider", a.provider.ID, "connect_id", a.id, "source_id", id, "reconnect", a.reconnect != nil)
	s.publish("source.status", map[string]any{"source_id": id, "status": records.StatusConnected, "name": a.provider.Name})
	if onConnected != nil {
		onConnected(id)
	}
}

// failure turns the outcome of a sign-in into a code and a sentence for the user. An error that
// is not one of the known outcomes is not shown (it may name internal paths): the sentence names
// an id for the log line instead, which failure also returns.
func failure(err error) (code, msg, errID string) {
	var pe *callback.ProviderError
	var c httpkit.Coded
	var oe *smart.OAuthError
	switch {
	case errors.Is(err, callback.ErrClosed), errors.Is(err, context.Canceled):
		return ErrCodeCancelled, "Connecting was cancelled. Nothing was connected.", ""
	case errors.Is(err, callback.ErrTimeout):
		return ErrCodeTimeout, "The sign-in timed out: the provider did not send you back to Fasten within 10 minutes. Nothing was connected; you can start again.", ""
	case errors.Is(err, callback.ErrAccessDenied):
		return ErrCodeDenied, "You declined to share your records at the provider, so nothing was connected.", ""
	case errors.As(err, &pe):
		return ErrCodeProvider, "The provider refused the sign-in, so nothing was connected. " + capitalise(pe.Error()) + ".", ""
	case errors.Is(err, callback.ErrNoCode):
		return ErrCodeProvider, "The provider sent you back without a sign-in code, so nothing was connected.", ""
	case errors.Is(err, smart.ErrNoPatient):
		return ErrCodeNoPatient, "The provider did not say whose records were shared, so nothing was connected. Try again and choose a patient at the provider.", ""
	case errors.Is(err, smart.ErrIssuerMismatch):
		return ErrCodeIssuer, "The sign-in answer came from a different server than the provider Fasten asked, so it was not used and nothing was connected.", ""
	case errors.As(err, &oe):
		msg := "The provider refused the sign-in, so nothing was connected. You can start again."
		if oe.Code != "" {
			msg += " The provider said: " + oe.Code
			if oe.Description != "" {
				msg += " (" + oe.Description + ")"
			}
			msg += "."
		}
		return ErrCodeRefused, msg, ""
	case errors.As(err, &c):
		switch code := c.ErrorCode(); {
		case code == "keyring_locked":
			return ErrCodeKeyringLocked, c.Error(), ""
		case strings.HasPrefix(code, "keyring"):
			return ErrCodeKeyring, c.Error(), ""
		default:
			return code, c.Error(), ""
		}
	}
	errID = randomHex(6)
	return ErrCodeFailed, "Connecting did not finish because of a problem on our side, so nothing was connected. The details are in the log under error " + errID + ".", errID
}

// fetchPatient reads the connected patient from the provider (best effort, bounded): the
// Patient resource's JSON and its display name.
func (s *Service) fetchPatient(sourceID int64) ([]byte, string) {
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	src, err := s.store.GetSource(ctx, sourceID)
	if err != nil || src.PatientID == nil || src.FHIRBase == nil {
		return nil, ""
	}
	tm, err := s.TokenManagerFor(ctx, src)
	if err != nil {
		return nil, ""
	}
	hc := &http.Client{Transport: tm.Transport(s.hc.Transport), Timeout: 15 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*src.FHIRBase, "/")+"/Patient/"+*src.PatientID, nil)
	if err != nil {
		return nil, ""
	}
	req.Header.Set("Accept", "application/fhir+json")
	resp, err := hc.Do(req)
	if err != nil {
		s.log.Info("could not read the connected patient's name", "source_id", sourceID, "err", err)
		return nil, ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, ""
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, ""
	}
	var pt struct {
		ResourceType string      `json:"resourceType"`
		ID           string      `json:"id"`
		Name         []humanName `json:"name"`
	}
	if json.Unmarshal(raw, &pt) != nil || pt.ResourceType != "Patient" || pt.ID != *src.PatientID {
		return nil, ""
	}
	return raw, displayName(pt.Name)
}

// settle decides whose the new source is (internal/people): the person chosen at connect,
// else the person its Patient matches, else a new one. Every record synced later gets it (the
// first sync starts after this).
func (s *Service) settle(a *attempt, sourceID int64, patient []byte) {
	if s.people == nil || sourceID == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	src, err := s.store.GetSource(ctx, sourceID)
	if err != nil || src.PatientID == nil || *src.PatientID == "" {
		s.log.Warn("a connected source could not be given a person", "source_id", sourceID, "err", err)
		return
	}
	if _, err := s.people.SettleConnect(ctx, people.Settle{
		SourceID: sourceID, PatientRef: "Patient/" + *src.PatientID, Patient: patient, Chosen: a.profileID, Provisional: a.provisional,
	}); err != nil {
		s.log.Warn("a connected source could not be given a person", "source_id", sourceID, "err", err)
	}
}

type humanName struct {
	Use    string   `json:"use"`
	Text   string   `json:"text"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
}

// displayName picks the official (else usual, else first) name: its text, or given + family.
func displayName(names []humanName) string {
	if len(names) == 0 {
		return ""
	}
	best := names[0]
	for _, use := range []string{"usual", "official"} {
		for _, n := range names {
			if n.Use == use {
				best = n
			}
		}
	}
	if t := strings.TrimSpace(best.Text); t != "" {
		return t
	}
	return strings.Join(strings.Fields(strings.Join(append(append([]string{}, best.Given...), best.Family), " ")), " ")
}

// Status returns a connect's state.
func (s *Service) Status(id string) (ConnectStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
	a, ok := s.attempts[id]
	if !ok {
		return ConnectStatus{}, problem(http.StatusNotFound, "not_found", "This sign-in is unknown or finished more than an hour ago.")
	}
	return a.statusLocked(), nil
}

func (a *attempt) statusLocked() ConnectStatus {
	st := ConnectStatus{
		ConnectID:    a.id,
		Provider:     a.provider.ID,
		ProviderName: a.provider.Name,
		Status:       a.status,
		ErrorCode:    a.errCode,
		PatientName:  a.patientName,
		SyncStarted:  a.syncStarted,
		Reconnect:    a.reconnect != nil,
		ExpiresAt:    a.expires.UTC(),
		Warning:      a.warning,
	}
	if a.status == StatusConnected && a.sourceID != 0 {
		id := a.sourceID
		st.SourceID = &id
	}
	if a.errMsg != "" {
		m := a.errMsg
		st.Error = &m
	}
	return st
}

// Cancel stops a pending sign-in (its listener closes) and returns the final status.
func (s *Service) Cancel(ctx context.Context, id string) (ConnectStatus, error) {
	s.mu.Lock()
	a, ok := s.attempts[id]
	s.mu.Unlock()
	if !ok {
		return ConnectStatus{}, problem(http.StatusNotFound, "not_found", "This sign-in is unknown or finished more than an hour ago.")
	}
	a.listener.Close()
	select {
	case <-a.done:
	case <-ctx.Done():
		return ConnectStatus{}, ctx.Err()
	}
	return s.Status(id)
}

// purgeLocked forgets finished sign-ins after keepFinished.
func (s *Service) purgeLocked() {
	now := s.now()
	for id, a := range s.attempts {
		if a.status != StatusPending && !a.finished.IsZero() && now.Sub(a.finished) > keepFinished {
			delete(s.attempts, id)
		}
	}
}

// cancelForSource stops pending reconnects of a source (before it is disconnected or deleted).
func (s *Service) cancelForSource(id int64) {
	s.mu.Lock()
	var list []*attempt
	for _, a := range s.attempts {
		if a.reconnect != nil && a.reconnect.ID == id && a.status == StatusPending {
			list = append(list, a)
		}
	}
	s.mu.Unlock()
	for _, a := range list {
		a.listener.Close()
		select {
		case <-a.done:
		case <-time.After(time.Minute):
		}
	}
}
