package installation

import (
	"net/http"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Routes are the service's API endpoints (relative to httpkit.Prefix).
func (s *Service) Routes() []httpkit.Route {
	return []httpkit.Route{
		{Method: "GET", Path: "/installation", Handler: s.getInstallation},
		{Method: "POST", Path: "/installation", Handler: s.postInstallation},
		{Method: "GET", Path: "/settings", Handler: s.getSettings},
		{Method: "PATCH", Path: "/settings", Handler: s.patchSettings},
	}
}

func (s *Service) getInstallation(w http.ResponseWriter, r *http.Request) {
	in, err := s.Installation()
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	if in == nil {
		httpkit.WriteError(w, http.StatusNotFound, CodeNotRegistered, "This installation is not registered with the Lighthouse yet.")
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, in)
}

func (s *Service) postInstallation(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if err := httpkit.DecodeJSON(r, &body, 0, true); err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	in, err := s.Register(r.Context(), body.Name, body.Email)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusCreated, in)
}

func (s *Service) getSettings(w http.ResponseWriter, r *http.Request) {
	st, err := s.Settings()
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, st)
}

func (s *Service) patchSettings(w http.ResponseWriter, r *http.Request) {
	var p SettingsPatch
	if err := httpkit.DecodeJSON(r, &p, 0, true); err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	if p.LighthouseURL == nil && p.OnboardingDone == nil {
		httpkit.WriteError(w, http.StatusBadRequest, "bad_request", `Nothing to change: send {"lighthouse_url": "..."} or {"onboarding_done": true}.`)
		return
	}
	st, err := s.UpdateSettings(r.Context(), p)
	if err != nil {
		httpkit.Fail(w, r, s.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, st)
}
