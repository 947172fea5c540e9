package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/lighthouse"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
	"github.com/fastenhealth/fasten-desktop/internal/smart"
)

// TokensOptions are the dependencies of Tokens.
type TokensOptions struct {
	// Keyring holds each source's tokens under its TokenKey (required).
	Keyring secrets.Store
	// Installation refreshes confidential providers' tokens through the Lighthouse (required).
	Installation *installation.Service
	// HTTPClient refreshes public clients' tokens at the provider; nil means a client with a
	// 30 s timeout.
	HTTPClient *http.Client
	Log        *slog.Logger
	Now        func() time.Time
}

// Tokens keeps one token manager per provider source, for the syncer and the connect flow.
type Tokens struct {
	keyring secrets.Store
	inst    *installation.Service
	hc      *http.Client
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	managers map[int64]*managerEntry
}

type managerEntry struct {
	key string
	m   *smart.TokenManager
}

// NewTokens returns Tokens. It does no I/O.
func NewTokens(o TokensOptions) (*Tokens, error) {
	if o.Keyring == nil || o.Installation == nil {
		return nil, errors.New("connect: Tokens needs a keyring and the installation")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Tokens{keyring: o.Keyring, inst: o.Installation, hc: o.HTTPClient, log: o.Log, now: o.Now,
		managers: map[int64]*managerEntry{}}, nil
}

// ManagerFor returns the token manager of a provider source: its tokens in the keyring
// (smart.NewSecretTokenStore under src.TokenKey), refreshed straight at the recorded token
// endpoint for public clients (smart.DirectRefresher; no Lighthouse needed, so sync goes on while
// the Lighthouse is down) or through the Lighthouse's token swap for confidential ones, and
// authorizing only requests under the source's FHIR base (smart.WithFHIRBase).
//
// One manager is kept per source, so concurrent callers (sync jobs, the first Patient read) share
// its single-flight refresh. A refresh answered invalid_grant is returned as an error matching
// smart.ErrInvalidGrant (smart.NeedsReconnect): the caller marks the source reconnect_needed.
func (s *Tokens) ManagerFor(ctx context.Context, src records.Source) (*smart.TokenManager, error) {
	if src.Kind != records.KindProvider || src.TokenKey == "" {
		return nil, fmt.Errorf("source %d has no saved sign-in: %w", src.ID, smart.ErrNoToken)
	}
	if src.FHIRBase == nil || *src.FHIRBase == "" {
		return nil, fmt.Errorf("source %d has no FHIR base URL", src.ID)
	}
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%t\x00%s", src.TokenKey, src.TokenURL, src.ClientID, src.Confidential, *src.FHIRBase)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.managers[src.ID]; ok && e.key == key {
		return e.m, nil
	}
	var refresh smart.RefreshFunc
	if src.Confidential {
		if src.ProviderID == nil || *src.ProviderID == "" {
			return nil, fmt.Errorf("source %d has no provider id for the Lighthouse token swap", src.ID)
		}
		refresh = s.swapRefresher(*src.ProviderID)
	} else {
		if src.TokenURL == "" {
			return nil, fmt.Errorf("source %d has no recorded token endpoint: connect the provider again", src.ID)
		}
		refresh = smart.DirectRefresher(s.hc, src.TokenURL, src.ClientID)
	}
	m := smart.NewTokenManager(smart.NewSecretTokenStore(s.keyring, src.TokenKey), refresh,
		smart.WithFHIRBase(*src.FHIRBase), smart.WithLogger(s.log.With("source_id", src.ID)))
	s.managers[src.ID] = &managerEntry{key: key, m: m}
	return m, nil
}

// swapRefresher refreshes through the Lighthouse (grant_type refresh_token), which adds the
// client secret of a confidential provider.
func (s *Tokens) swapRefresher(providerID string) smart.RefreshFunc {
	return func(ctx context.Context, refreshToken string) (*smart.Token, error) {
		sess, err := s.inst.Session(ctx)
		if err != nil {
			if errors.Is(err, installation.ErrNotRegistered) {
				return nil, fmt.Errorf("this provider signs in through the Lighthouse, and this installation is not registered with it: %w", err)
			}
			return nil, err
		}
		lc := sess.Client
		status, body, err := lc.SwapToken(ctx, providerID, lighthouse.TokenRequest{GrantType: "refresh_token", RefreshToken: refreshToken})
		if err != nil {
			return nil, installation.LighthouseError(lc, err)
		}
		tok, err := smart.ParseRefreshResponse(body, s.now())
		if err != nil {
			return nil, err // an invalid_grant body is an *smart.OAuthError matching ErrInvalidGrant
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("%w: the provider answered HTTP %d", smart.ErrBadTokenResponse, status)
		}
		return tok, nil
	}
}

// Remove takes a provider source's tokens out of the keyring and drops its manager: the sign-in
// is forgotten (disconnect, or the person it belonged to is deleted).
func (s *Tokens) Remove(ctx context.Context, src records.Source) error {
	if src.TokenKey != "" {
		if err := s.keyring.Delete(ctx, src.TokenKey); err != nil && !errors.Is(err, secrets.ErrNotFound) {
			return installation.KeyringError(err)
		}
	}
	s.Forget(src.ID)
	return nil
}

// Forget drops the token manager of source id (its sign-in is gone or replaced).
func (s *Tokens) Forget(id int64) {
	s.mu.Lock()
	delete(s.managers, id)
	s.mu.Unlock()
}

// Disconnected is what a disconnect answers.
type Disconnected struct {
	SourceID int64 `json:"source_id"`
	// SourceDeleted: the source and its records were deleted; otherwise the source stays with
	// status reconnect_needed and every record.
	SourceDeleted bool           `json:"source_deleted"`
	Deleted       int            `json:"deleted"`
	Counts        map[string]int `json:"counts,omitempty"`
	Status        string         `json:"status,omitempty"`
}

// DisconnectedMessage is the source's last_error after a disconnect that kept the records.
const DisconnectedMessage = "Disconnected. Your records are kept; sign in again to get updates."

// Disconnect forgets a provider source's sign-in: its tokens are deleted from the keyring (there
// is no revocation call; the tokens simply cease to exist here). With deleteRecords the source
// and every record in it are deleted in one transaction; otherwise the source stays, with status
// reconnect_needed and every record kept. If the keyring cannot delete the tokens nothing is
// changed and the keyring's error is returned.
func (s *Service) Disconnect(ctx context.Context, id int64, deleteRecords bool) (Disconnected, error) {
	src, err := s.store.GetSource(ctx, id)
	if err != nil {
		return Disconnected{}, err
	}
	if src.Kind != records.KindProvider {
		return Disconnected{}, problem(http.StatusBadRequest, "not_a_provider_source", "Only a connected provider can be disconnected. Delete an imported file's source instead.")
	}
	s.cancelForSource(id)
	if err := s.tokens.Remove(ctx, src); err != nil {
		return Disconnected{}, err
	}
	s.forgetUser(ctx, src)
	out := Disconnected{SourceID: id}
	if deleteRecords {
		counts, err := s.store.DeleteSource(ctx, id)
		if err != nil {
			return Disconnected{}, err
		}
		for _, n := range counts {
			out.Deleted += n
		}
		out.SourceDeleted, out.Counts = true, counts
		s.log.Info("provider disconnected; source and records deleted", "source_id", id, "deleted", out.Deleted)
		s.publish("resources.changed", map[string]any{"source_id": id, "deleted": out.Deleted, "counts": counts})
		return out, nil
	}
	status, msg := records.StatusReconnectNeeded, DisconnectedMessage
	if err := s.store.UpdateSource(ctx, id, records.SourceUpdate{Status: &status, LastError: &msg}); err != nil {
		return Disconnected{}, err
	}
	out.Status = status
	s.log.Info("provider disconnected; records kept", "source_id", id)
	s.publish("source.status", map[string]any{"source_id": id, "status": status, "name": src.Name})
	return out, nil
}

// Reconnect starts a new sign-in for an existing provider source (the same provider and
// patient): on success its tokens are replaced, its status is connected again and its records
// are kept.
func (s *Service) Reconnect(ctx context.Context, id int64) (Started, error) {
	src, err := s.store.GetSource(ctx, id)
	if err != nil {
		return Started{}, err
	}
	if src.Kind != records.KindProvider || src.ProviderID == nil {
		return Started{}, problem(http.StatusBadRequest, "not_a_provider_source", "Only a connected provider can be signed in to again.")
	}
	req := ConnectRequest{Provider: *src.ProviderID, SourceID: id}
	if src.ProfileID != nil {
		req.Profile = strconv.FormatInt(*src.ProfileID, 10)
	}
	return s.Connect(ctx, req)
}

// forgetUser tells the Lighthouse that the source's person no longer uses its provider, when no
// other source of theirs does (best effort: a failure only keeps a slot counted).
func (s *Service) forgetUser(ctx context.Context, src records.Source) {
	if src.ProviderID == nil || src.ProfileID == nil {
		return
	}
	others, err := s.store.ListSources(ctx, *src.ProfileID)
	if err != nil {
		s.log.Warn("could not check the person's other sources", "source_id", src.ID, "err", err)
		return
	}
	for _, o := range others {
		if o.ID != src.ID && o.Kind == records.KindProvider && o.ProviderID != nil && *o.ProviderID == *src.ProviderID &&
			o.ProfileID != nil && *o.ProfileID == *src.ProfileID {
			return
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if err := s.inst.ForgetUser(fctx, *src.ProviderID, *src.ProfileID); err != nil {
		s.log.Warn("the Lighthouse could not forget a user; their slot stays counted", "provider", *src.ProviderID, "err", err)
	}
}
