package sandbox

import (
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Faults are failures injected into FHIR API calls (reads, searches, $everything; not
// metadata, discovery or the auth endpoints). Counters are consumed one per affected call, in
// the order Unauthorized, TooManyRequests, ServerErrors; Latency applies to every affected
// call. Set them with SetFaults; read what is left with Faults.
type Faults struct {
	Unauthorized    int           // next N calls: 401 with WWW-Authenticate: Bearer error="invalid_token"
	TooManyRequests int           // next N calls: 429 with Retry-After
	RetryAfter      time.Duration // Retry-After for 429 and 503, whole seconds rounded up; default 1 s
	OmitRetryAfter  bool          // send 429/503 without Retry-After
	ServerErrors    int           // next N calls: ServerErrorStatus
	// ServerErrorStatus is the status of ServerErrors, default 500 (502, 503, 504 also useful).
	ServerErrorStatus int
	Latency           time.Duration // added before every affected call is answered
	// PathPrefix limits the faults to calls whose path below the FHIR base starts with it,
	// e.g. "/Observation" or "/Patient/123/$everything". Empty: every FHIR API call.
	PathPrefix string
	// RefreshInvalidGrant makes every refresh_token grant answer invalid_grant while set.
	RefreshInvalidGrant bool
}

type faultState struct {
	mu sync.Mutex
	f  Faults
}

// SetFaults replaces the injected faults (the zero Faults turns them off).
func (s *Server) SetFaults(f Faults) {
	s.faults.mu.Lock()
	s.faults.f = f
	s.faults.mu.Unlock()
}

// Faults returns the injected faults with the counters that are left.
func (s *Server) Faults() Faults {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.f
}

// injectFault applies Faults to a FHIR API call; true means the response was written.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, apiPath string) bool {
	s.faults.mu.Lock()
	f := &s.faults.f
	if f.PathPrefix != "" && !strings.HasPrefix(apiPath, f.PathPrefix) {
		s.faults.mu.Unlock()
		return false
	}
	latency := f.Latency
	kind := ""
	switch {
	case f.Unauthorized > 0:
		f.Unauthorized--
		kind = "401"
	case f.TooManyRequests > 0:
		f.TooManyRequests--
		kind = "429"
	case f.ServerErrors > 0:
		f.ServerErrors--
		kind = "5xx"
	}
	retryAfter, omitRetry, status := f.RetryAfter, f.OmitRetryAfter, f.ServerErrorStatus
	s.faults.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			infoFrom(r.Context()).fault = "cancelled"
			w.WriteHeader(http.StatusServiceUnavailable) // the client is gone; this is for the log
			return true
		}
	}
	if kind == "" {
		return false
	}
	infoFrom(r.Context()).fault = kind
	if retryAfter <= 0 {
		retryAfter = time.Second
	}
	setRetry := func() {
		if !omitRetry {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
		}
	}
	switch kind {
	case "401":
		w.Header().Set("WWW-Authenticate", `Bearer realm="sandbox", error="invalid_token", error_description="The access token expired"`)
		s.writeOutcome(w, http.StatusUnauthorized, "login", "the access token expired")
	case "429":
		setRetry()
		s.writeOutcome(w, http.StatusTooManyRequests, "throttled", "too many requests")
	default:
		if status < 500 || status > 599 {
			status = http.StatusInternalServerError
		}
		if status == http.StatusServiceUnavailable {
			setRetry()
		}
		s.writeOutcome(w, status, "exception", "injected server error")
	}
	return true
}

// LoggedRequest is one request the sandbox answered.
type LoggedRequest struct {
	Time      time.Time // wall clock at arrival (real time, for measuring client delays)
	ClockTime time.Time // Config.Now() at arrival
	Method    string
	Path      string     // URL path as received, e.g. "/fhir/Observation"
	Query     url.Values // query parameters; codes, tokens and secrets replaced by "REDACTED"
	Status    int
	Fault     string // injected fault: "401", "429", "5xx", "invalid_grant", "cancelled", or ""
	GrantType string // grant_type of token-endpoint requests
	UserAgent string // the User-Agent header
}

type requestLog struct {
	mu   sync.Mutex
	max  int
	reqs []LoggedRequest
}

func (l *requestLog) add(r LoggedRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reqs) >= l.max {
		l.reqs = slices.Delete(l.reqs, 0, len(l.reqs)-l.max+1)
	}
	l.reqs = append(l.reqs, r)
}

// Requests returns the logged requests, oldest first (at most Config.MaxLoggedRequests).
func (s *Server) Requests() []LoggedRequest {
	s.reqlog.mu.Lock()
	defer s.reqlog.mu.Unlock()
	out := slices.Clone(s.reqlog.reqs)
	for i := range out {
		out[i].Query = maps.Clone(out[i].Query)
	}
	return out
}

// ResetRequests empties the request log and zeroes TokenCalls.
func (s *Server) ResetRequests() {
	s.reqlog.mu.Lock()
	s.reqlog.reqs = nil
	s.reqlog.mu.Unlock()
	s.auth.mu.Lock()
	clear(s.auth.tokenCalls)
	s.auth.mu.Unlock()
}

var secretParams = map[string]bool{
	"code": true, "code_verifier": true, "refresh_token": true, "access_token": true,
	"client_secret": true, "id_token": true, "token": true, "client_assertion": true,
}

// Redacted replaces a secret query value in the request log.
const Redacted = "REDACTED"

func redactQuery(q url.Values) url.Values {
	for k, vs := range q {
		if secretParams[k] {
			for i := range vs {
				vs[i] = Redacted
			}
		}
	}
	return q
}
