package api

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// getAttachment serves the n-th attachment of a record: its own content type, never executed
// (Content-Security-Policy: sandbox, nosniff), with the checks of its size and hash in
// X-Attachment-Check (ok, size-mismatch, hash-mismatch or both, comma-separated).
func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request) {
	typ, src, err := resourceParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 {
		s.fail(w, r, httpkit.BadRequest("The attachment number must be a whole number from 0."))
		return
	}
	a, err := s.cfg.Store.Attachment(r.Context(), typ, r.PathValue("id"), src, n)
	if err != nil {
		s.fail(w, r, err) // records.ErrNoAttachment: 404 no_attachment
		return
	}
	var checks []string
	if a.SizeMismatch {
		checks = append(checks, "size-mismatch")
	}
	if a.HashMismatch {
		checks = append(checks, "hash-mismatch")
	}
	if len(checks) == 0 {
		checks = append(checks, "ok")
	}
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Attachment-Check", strings.Join(checks, ","))
	h.Set("Content-Length", strconv.Itoa(len(a.Data)))
	disp := "inline"
	if a.Title != "" {
		disp = mime.FormatMediaType("inline", map[string]string{"filename": a.Title})
		if disp == "" {
			disp = "inline"
		}
	}
	h.Set("Content-Disposition", disp)
	w.WriteHeader(http.StatusOK)
	w.Write(a.Data)
}

// resourceParams reads the {type} of a resource path and its ?source= filter.
func resourceParams(r *http.Request) (typ string, source int64, err error) {
	if source, err = queryInt(r, "source"); err != nil {
		return "", 0, err
	}
	typ = r.PathValue("type")
	if !fhir.KnownType(typ) {
		return "", 0, httpkit.BadRequest("%q is not a FHIR resource type.", typ)
	}
	return typ, source, nil
}
