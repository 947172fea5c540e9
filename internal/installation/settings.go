package installation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fastenhealth/fasten-desktop/internal/config"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// Installation is the registration as GET /installation shows it. It holds no secret.
type Installation struct {
	InstallationID string     `json:"installation_id"`
	LighthouseURL  string     `json:"lighthouse_url"`
	Name           string     `json:"name"`
	Email          string     `json:"email"`
	RegisteredAt   *time.Time `json:"registered_at"`
}

// Settings is what GET /settings shows.
type Settings struct {
	OnboardingDone bool `json:"onboarding_done"`
	// LighthouseURL is the Lighthouse in use; LighthouseURLSource says why (flag, settings,
	// default).
	LighthouseURL        string `json:"lighthouse_url"`
	LighthouseURLSource  string `json:"lighthouse_url_source"`
	DefaultLighthouseURL string `json:"default_lighthouse_url"`
	// Installation is the registration with the Lighthouse in use, or null.
	Installation *Installation `json:"installation"`
	// RegisteredElsewhere is the Lighthouse of a registration that is not the one in use (the
	// flag points elsewhere), so the user knows why they must register again.
	RegisteredElsewhere string `json:"registered_elsewhere,omitempty"`
	// AdminName and AdminEmail prefill the registration form (kept after a Lighthouse change).
	AdminName  string `json:"admin_name,omitempty"`
	AdminEmail string `json:"admin_email,omitempty"`
}

func installationOf(c config.Config) *Installation {
	in := &Installation{InstallationID: c.InstallationID, LighthouseURL: NormURL(c.LighthouseURL), Name: c.AdminName, Email: c.AdminEmail}
	if !c.RegisteredAt.IsZero() {
		t := c.RegisteredAt.UTC()
		in.RegisteredAt = &t
	}
	return in
}

// Installation returns the registration with the Lighthouse in use, or nil before registering.
func (s *Service) Installation() (*Installation, error) {
	c, err := s.cfg.Load()
	if err != nil {
		return nil, err
	}
	u, _ := s.lighthouseURL(c)
	if !registeredHere(c, u) {
		return nil, nil
	}
	return installationOf(c), nil
}

// Settings returns the installation's settings.
func (s *Service) Settings() (Settings, error) {
	c, err := s.cfg.Load()
	if err != nil {
		return Settings{}, err
	}
	u, src := s.lighthouseURL(c)
	out := Settings{
		OnboardingDone:       c.OnboardingDone,
		LighthouseURL:        u,
		LighthouseURLSource:  src,
		DefaultLighthouseURL: config.DefaultLighthouseURL,
		AdminName:            c.AdminName,
		AdminEmail:           c.AdminEmail,
	}
	if registeredHere(c, u) {
		out.Installation = installationOf(c)
	} else if c.InstallationID != "" {
		out.RegisteredElsewhere = NormURL(c.LighthouseURL)
	}
	return out, nil
}

// ValidateAdmin checks and normalises the administrator's name and email: a name of 1 to 200
// characters without control characters, and a bare address local@domain with a dotted domain.
func ValidateAdmin(name, email string) (string, string, error) {
	name = strings.Join(strings.Fields(name), " ")
	email = strings.TrimSpace(email)
	if name == "" || utf8.RuneCountInString(name) > 200 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", "", problem(http.StatusBadRequest, "invalid_name", "Please enter the administrator's name (1 to 200 characters).")
	}
	badEmail := problem(http.StatusBadRequest, "invalid_email", "Please enter a valid email address, such as name@example.org.")
	if len(email) > 254 || strings.IndexFunc(email, unicode.IsSpace) >= 0 {
		return "", "", badEmail
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return "", "", badEmail
	}
	at := strings.LastIndexByte(email, '@')
	domain := email[at+1:]
	if at < 1 || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", "", badEmail
	}
	return name, email, nil
}

// Register registers this installation with the Lighthouse in use (or again, replacing the
// previous registration): it checks that the keyring can be used, registers, keeps the secret in
// the keyring (bound to the installation ID and Lighthouse URL) and the ID, administrator and
// URL in the settings file, and marks onboarding done.
func (s *Service) Register(ctx context.Context, name, email string) (*Installation, error) {
	name, email, err := ValidateAdmin(name, email)
	if err != nil {
		return nil, err
	}
	c, err := s.cfg.Load()
	if err != nil {
		return nil, err
	}
	lhURL, _ := s.lighthouseURL(c)
	lc, err := s.lighthouseClient(lhURL, nil)
	if err != nil {
		return nil, err
	}
	// The secret has nowhere else to go: find out before the Lighthouse issues one.
	if _, err := s.keyring.Get(ctx, keyringProbeKey); err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return nil, KeyringError(err)
	}
	reg, err := lc.Register(ctx, name, email)
	if err != nil {
		return nil, LighthouseError(lc, err)
	}
	b, err := json.Marshal(storedSecret{V: 1, InstallationID: reg.InstallationID, LighthouseURL: lhURL, Secret: reg.InstallationSecret})
	if err != nil {
		return nil, err
	}
	if err := s.keyring.Set(ctx, SecretKey(reg.InstallationID), b); err != nil {
		return nil, KeyringError(err)
	}
	now := s.now().UTC().Truncate(time.Second)
	oldID := ""
	c, err = s.cfg.Update(func(c *config.Config) error {
		oldID = c.InstallationID
		c.InstallationID = reg.InstallationID
		c.LighthouseURL = lhURL
		c.AdminName, c.AdminEmail = name, email
		c.RegisteredAt = now
		c.OnboardingDone = true
		return nil
	})
	s.forgetRegistration()
	if err != nil {
		s.deleteSecret(ctx, reg.InstallationID)
		return nil, fmt.Errorf("save the installation in the settings file: %w", err)
	}
	if oldID != "" && oldID != reg.InstallationID {
		s.deleteSecret(ctx, oldID) // the replaced registration's secret is of no use any more
	}
	s.log.Info("installation registered", "installation_id", reg.InstallationID, "lighthouse", lhURL)
	return installationOf(c), nil
}

// SettingsPatch changes settings; nil fields are left alone.
type SettingsPatch struct {
	// LighthouseURL: "" resets to the public Lighthouse. A different Lighthouse than the one this
	// installation registered with ends that registration (its secret is removed from the
	// keyring); register again afterwards.
	LighthouseURL  *string `json:"lighthouse_url"`
	OnboardingDone *bool   `json:"onboarding_done"`
}

// UpdateSettings applies p. A Lighthouse URL change applies at once, also over the start-up flag.
func (s *Service) UpdateSettings(ctx context.Context, p SettingsPatch) (Settings, error) {
	var newURL string
	if p.LighthouseURL != nil {
		newURL = NormURL(*p.LighthouseURL)
		if newURL == "" {
			newURL = config.DefaultLighthouseURL
		}
		if err := CheckLighthouseURL(newURL); err != nil {
			return Settings{}, problem(http.StatusBadRequest, "invalid_lighthouse_url", err.Error())
		}
	}
	dropped := ""
	_, err := s.cfg.Update(func(c *config.Config) error {
		if p.LighthouseURL != nil {
			if c.InstallationID != "" && NormURL(c.LighthouseURL) != newURL {
				dropped = c.InstallationID
				c.InstallationID = ""
				c.RegisteredAt = time.Time{}
			}
			c.LighthouseURL = newURL
		}
		if p.OnboardingDone != nil {
			c.OnboardingDone = *p.OnboardingDone
		}
		return nil
	})
	if err != nil {
		return Settings{}, fmt.Errorf("save the settings file: %w", err)
	}
	if p.LighthouseURL != nil {
		s.mu.Lock()
		s.override = ""
		s.mu.Unlock()
		s.forgetRegistration()
		s.log.Info("Lighthouse changed in Settings", "lighthouse", newURL, "registration_dropped", dropped != "")
	}
	if dropped != "" {
		// The secret belongs to the old Lighthouse only; it must never be sent to the new one.
		s.deleteSecret(ctx, dropped)
	}
	return s.Settings()
}

// deleteSecret removes an installation's secret from the keyring (best effort: a leftover is
// bound to its installation and Lighthouse and is never used for another).
func (s *Service) deleteSecret(ctx context.Context, installationID string) {
	if err := s.keyring.Delete(ctx, SecretKey(installationID)); err != nil && !errors.Is(err, secrets.ErrNotFound) {
		s.log.Warn("could not remove an old installation secret from the keyring", "installation_id", installationID, "err", err)
	}
}
