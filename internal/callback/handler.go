package callback

import (
	"net/http"
	"strconv"
	"time"
)

// Fixed paths. /callback is the redirect target; the others are the pages the browser is sent to
// with 303 See Other, so that the code never stays in the address bar.
const (
	pathCallback     = "/callback"
	pathDone         = "/done"
	pathMissingState = "/error/missing-state"
	pathInvalidState = "/error/invalid-state"
	pathAlreadyUsed  = "/error/already-used"
)

// securityHeaders are sent on every response.
var securityHeaders = map[string]string{
	"Referrer-Policy":              "no-referrer",
	"Cache-Control":                "no-store",
	"Pragma":                       "no-cache",
	"Content-Security-Policy":      "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Resource-Policy": "same-origin",
}

func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range securityHeaders {
		h.Set(k, v)
	}
	// DNS rebinding: a page on another origin that resolves its name to 127.0.0.1 sends its own
	// Host header. Only the literal address we bound is accepted.
	if r.Host != "127.0.0.1:"+strconv.Itoa(l.port) {
		l.render(w, http.StatusForbidden, pageWrongHost)
		return
	}
	if r.Method != http.MethodGet {
		l.render(w, http.StatusNotFound, pageNotFound)
		return
	}
	switch r.URL.Path {
	case pathCallback:
		l.callback(w, r)
	case pathDone:
		l.donePage(w)
	case pathMissingState:
		l.render(w, http.StatusBadRequest, pageMissingState)
	case pathInvalidState:
		l.render(w, http.StatusBadRequest, pageInvalidState)
	case pathAlreadyUsed:
		l.render(w, http.StatusConflict, pageAlreadyUsed)
	default:
		l.render(w, http.StatusNotFound, pageNotFound)
	}
}

func seeOther(w http.ResponseWriter, path string) {
	w.Header().Set("Location", path)
	w.WriteHeader(http.StatusSeeOther)
}

func (l *Listener) isClaimed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.claimed
}

func (l *Listener) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if l.isClaimed() {
		l.log.Info("sign-in callback refused: the sign-in already finished")
		seeOther(w, pathAlreadyUsed)
		return
	}
	states := q["state"]
	if len(states) == 0 || states[0] == "" {
		l.log.Info("sign-in callback refused: no state")
		seeOther(w, pathMissingState)
		return
	}
	if len(states) > 1 || len(q["code"]) > 1 || len(q["error"]) > 1 || !l.stateOK(states[0]) {
		l.log.Info("sign-in callback refused: unknown or expired state")
		seeOther(w, pathInvalidState)
		return
	}

	l.mu.Lock()
	if l.claimed {
		l.mu.Unlock()
		seeOther(w, pathAlreadyUsed)
		return
	}
	l.claimed = true
	l.mu.Unlock()

	res := Result{
		Code:             q.Get("code"),
		State:            states[0],
		Iss:              q.Get("iss"),
		Error:            q.Get("error"),
		ErrorDescription: clip(q.Get("error_description"), 300),
	}
	var (
		err error
		p   *page
	)
	switch {
	case res.Error != "":
		pe := &ProviderError{Code: clip(res.Error, 64), Description: res.ErrorDescription}
		err = pe
		if pe.Code == "access_denied" {
			p = pageDenied
		} else {
			p = providerErrorPage(pe)
		}
	case res.Code == "":
		err = ErrNoCode
		p = pageNoCode
	case l.opts.Handle != nil:
		if herr := l.opts.Handle(l.ctx, res); herr != nil {
			err = herr
			p = exchangeFailedPage(herr)
		} else {
			p = pageSuccess
		}
	default:
		p = pageSuccess
	}
	l.mu.Lock()
	l.page = p
	l.mu.Unlock()
	l.finish(res, err)
	l.log.Info("sign-in callback accepted", "provider_error", res.Error, "handled_ok", err == nil)

	seeOther(w, pathDone)
	go l.closeAfterGrace()
}

// closeAfterGrace closes the listener when the grace period for fetching /done has passed.
func (l *Listener) closeAfterGrace() {
	t := time.NewTimer(l.opts.DoneGrace)
	defer t.Stop()
	select {
	case <-t.C:
		l.shutdown(true)
	case <-l.closed:
	}
}

func (l *Listener) donePage(w http.ResponseWriter) {
	l.mu.Lock()
	p := l.page
	l.mu.Unlock()
	if p == nil {
		l.render(w, http.StatusNotFound, pageNotFound)
		return
	}
	l.render(w, p.status, p)
	// The page is written once this handler returns; a graceful shutdown waits for that.
	go l.shutdown(true)
}

func (l *Listener) render(w http.ResponseWriter, status int, p *page) {
	b, err := p.html()
	if err != nil {
		l.log.Error("render sign-in page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
