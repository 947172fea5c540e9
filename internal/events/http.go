package events

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/api"
)

// Routes returns the hub's API routes (paths relative to api.Prefix), for api.Server.Add.
func (h *Hub) Routes() []api.Route {
	return []api.Route{
		{Method: "GET", Path: "/events", Handler: h.serveEvents},
		{Method: "POST", Path: "/events/ticket", Handler: h.postTicket},
		{Method: "POST", Path: "/hub", Handler: h.postHub},
		{Method: "GET", Path: "/hub/subscriptions", Handler: h.listSubscriptions},
		{Method: "PATCH", Path: "/hub/subscriptions/{id}", Handler: h.patchSubscription},
		{Method: "DELETE", Path: "/hub/subscriptions/{id}", Handler: h.deleteSubscription},
	}
}

func writeErr(w http.ResponseWriter, err error) {
	var re *requestError
	if errors.As(err, &re) {
		api.WriteError(w, re.status, re.code, re.msg)
		return
	}
	api.WriteError(w, http.StatusInternalServerError, "internal", "Something went wrong on our side: "+err.Error())
}

// --- POST /hub --------------------------------------------------------------------------------

func (h *Hub) postHub(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		api.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the hub request as application/x-www-form-urlencoded (hub.mode, hub.callback, hub.events, hub.secret, hub.lease_seconds).")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		api.WriteError(w, http.StatusBadRequest, "bad_request", "The form body could not be read: "+err.Error())
		return
	}
	form := r.PostForm
	for k, v := range form {
		if strings.HasPrefix(k, "hub.") && len(v) > 1 {
			api.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s may appear only once.", k))
			return
		}
	}
	callback, err := CheckCallback(form.Get("hub.callback"))
	if err != nil {
		writeErr(w, err)
		return
	}
	var info Subscription
	switch form.Get("hub.mode") {
	case "subscribe":
		req, err := h.parseSubscribe(callback, form)
		if err != nil {
			writeErr(w, err)
			return
		}
		info, err = h.subscribe(r.Context(), req)
		if err != nil {
			writeErr(w, err)
			return
		}
	case "unsubscribe":
		info, err = h.unsubscribe(callback)
		if err != nil {
			writeErr(w, err)
			return
		}
	default:
		api.WriteError(w, http.StatusBadRequest, "bad_request", "hub.mode must be subscribe or unsubscribe.")
		return
	}
	api.WriteJSON(w, http.StatusAccepted, map[string]any{
		"id": info.ID, "state": info.State, "events": info.Events, "lease_seconds": info.LeaseSeconds,
		"message": "Accepted: the hub will now send a GET to hub.callback with hub.challenge; echo it to confirm.",
	})
}

// --- subscriptions ----------------------------------------------------------------------------

func (h *Hub) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, h.Subscriptions())
}

func (h *Hub) patchSubscription(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AllowResources   *bool `json:"allow_resources"`
		AllowedResources *bool `json:"allowed_resources"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		api.WriteError(w, http.StatusBadRequest, "bad_request", "Send {\"allow_resources\": true|false}.")
		return
	}
	allow := body.AllowResources
	if allow == nil {
		allow = body.AllowedResources
	}
	if allow == nil {
		api.WriteError(w, http.StatusBadRequest, "bad_request", "Nothing to change: send {\"allow_resources\": true|false}.")
		return
	}
	info, err := h.AllowResources(r.Context(), r.PathValue("id"), *allow)
	if err != nil {
		writeErr(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, info)
}

func (h *Hub) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	if err := h.Delete(r.Context(), r.PathValue("id")); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- tickets ----------------------------------------------------------------------------------

type ticket struct {
	host    string
	expires time.Time
}

// Ticket is a short-lived, single-use credential for GET /events from clients that cannot send an
// Authorization header (EventSource).
type Ticket struct {
	Ticket    string    `json:"ticket"`
	ExpiresAt time.Time `json:"expires_at"`
}

// NewTicket issues a ticket (256 random bits, single use, TicketTTL) bound to host, the Host
// header of the request that asked for it.
func (h *Hub) NewTicket(host string) Ticket {
	tok := randToken(32)
	exp := h.now().Add(h.cfg.TicketTTL)
	h.mu.Lock()
	now := h.now()
	for k, t := range h.tickets {
		if !now.Before(t.expires) {
			delete(h.tickets, k)
		}
	}
	h.tickets[sha256.Sum256([]byte(tok))] = ticket{host: strings.ToLower(host), expires: exp}
	h.mu.Unlock()
	return Ticket{Ticket: tok, ExpiresAt: exp.UTC()}
}

func (h *Hub) postTicket(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, h.NewTicket(r.Host))
}

// TicketRequest reports whether r is a GET /api/v1/events carrying a valid ticket, and uses the
// ticket up. For the serve-mode guard's Open func: such a request needs no bearer header. The
// ticket must be unexpired and issued for the same Host, and an Origin header, when present, must
// be the app's own (http://<Host>).
func (h *Hub) TicketRequest(r *http.Request) bool {
	if r.Method != http.MethodGet || r.URL.Path != api.Prefix+"/events" {
		return false
	}
	tok := r.URL.Query().Get("ticket")
	if tok == "" || len(tok) > 128 {
		return false
	}
	host := strings.ToLower(r.Host)
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, "http://"+host) {
		return false
	}
	k := sha256.Sum256([]byte(tok))
	h.mu.Lock()
	t, ok := h.tickets[k]
	delete(h.tickets, k) // single use, whatever happens next
	h.mu.Unlock()
	return ok && h.now().Before(t.expires) && t.host == host
}

// --- GET /events (Server-Sent Events) ---------------------------------------------------------

// serveEvents streams events as text/event-stream: for each event an "id:", an "event:" (the
// topic) and a "data:" line (the JSON {"id","event","timestamp","data"}), flushed at once; a
// comment heartbeat every Heartbeat; it ends when the request ends or the hub stops.
// ?topics=a,b narrows the stream.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	var topics []string
	if v := r.URL.Query().Get("topics"); v != "" {
		var err error
		if topics, err = h.parseEvents(v); err != nil {
			writeErr(w, err)
			return
		}
	}
	rc := http.NewResponseController(w)
	ch, cancel := h.bus.Subscribe(topics...)
	defer cancel()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(s string) bool {
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprint(w, s); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write("retry: 3000\n: connected\n\n") {
		return
	}
	beat := time.NewTicker(h.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-h.done:
			return
		case <-beat.C:
			if !write(": ping\n\n") {
				return
			}
		case ev, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(ev)
			if err != nil || strings.ContainsAny(ev.Event, "\r\n") {
				continue
			}
			if !write("id: " + ev.ID + "\nevent: " + ev.Event + "\ndata: " + string(b) + "\n\n") {
				return
			}
		}
	}
}
