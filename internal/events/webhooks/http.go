package webhooks

import (
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Routes returns the hub's API routes (paths relative to httpkit.Prefix).
func (h *Hub) Routes() []httpkit.Route {
	return []httpkit.Route{
		{Method: "POST", Path: "/hub", Handler: h.postHub},
		{Method: "GET", Path: "/hub/subscriptions", Handler: h.listSubscriptions},
		{Method: "PATCH", Path: "/hub/subscriptions/{id}", Handler: h.patchSubscription},
		{Method: "DELETE", Path: "/hub/subscriptions/{id}", Handler: h.deleteSubscription},
	}
}

// --- POST /hub --------------------------------------------------------------------------------

func (h *Hub) postHub(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		httpkit.WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the hub request as application/x-www-form-urlencoded (hub.mode, hub.callback, hub.events, hub.secret, hub.lease_seconds).")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		httpkit.WriteError(w, http.StatusBadRequest, "bad_request", "The form body could not be read: "+err.Error())
		return
	}
	form := r.PostForm
	for k, v := range form {
		if strings.HasPrefix(k, "hub.") && len(v) > 1 {
			httpkit.WriteError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%s may appear only once.", k))
			return
		}
	}
	callback, err := CheckCallback(form.Get("hub.callback"))
	if err != nil {
		httpkit.Fail(w, r, h.log, err)
		return
	}
	var info Subscription
	switch form.Get("hub.mode") {
	case "subscribe":
		req, err := h.parseSubscribe(callback, form)
		if err != nil {
			httpkit.Fail(w, r, h.log, err)
			return
		}
		info, err = h.subscribe(r.Context(), req)
		if err != nil {
			httpkit.Fail(w, r, h.log, err)
			return
		}
	case "unsubscribe":
		info, err = h.unsubscribe(callback)
		if err != nil {
			httpkit.Fail(w, r, h.log, err)
			return
		}
	default:
		httpkit.WriteError(w, http.StatusBadRequest, "bad_request", "hub.mode must be subscribe or unsubscribe.")
		return
	}
	httpkit.WriteJSON(w, http.StatusAccepted, map[string]any{
		"id": info.ID, "state": info.State, "events": info.Events, "lease_seconds": info.LeaseSeconds,
		"message": "Accepted: the hub will now send a GET to hub.callback with hub.challenge; echo it to confirm.",
	})
}

// --- subscriptions ----------------------------------------------------------------------------

func (h *Hub) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	httpkit.WriteJSON(w, http.StatusOK, h.Subscriptions())
}

func (h *Hub) patchSubscription(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AllowResources   *bool `json:"allow_resources"`
		AllowedResources *bool `json:"allowed_resources"`
	}
	if err := httpkit.DecodeJSON(r, &body, 4<<10, false); err != nil {
		httpkit.Fail(w, r, h.log, err)
		return
	}
	allow := body.AllowResources
	if allow == nil {
		allow = body.AllowedResources
	}
	if allow == nil {
		httpkit.WriteError(w, http.StatusBadRequest, "bad_request", "Nothing to change: send {\"allow_resources\": true|false}.")
		return
	}
	info, err := h.AllowResources(r.Context(), r.PathValue("id"), *allow)
	if err != nil {
		httpkit.Fail(w, r, h.log, err)
		return
	}
	httpkit.WriteJSON(w, http.StatusOK, info)
}

func (h *Hub) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	if err := h.Delete(r.Context(), r.PathValue("id")); err != nil {
		httpkit.Fail(w, r, h.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
