package ips

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Routes serves GET /export/ips?profile=ID[&sections=a,b][&since=YYYY-MM-DD][&until=YYYY-MM-DD].
func (b *Builder) Routes(log *slog.Logger) []httpkit.Route {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return []httpkit.Route{{Method: "GET", Path: "/export/ips", Handler: func(w http.ResponseWriter, r *http.Request) {
		profile, opt, err := ParseQuery(r)
		if err != nil {
			httpkit.Fail(w, r, log, err)
			return
		}
		doc, err := b.Build(r.Context(), profile, opt)
		if err != nil {
			httpkit.Fail(w, r, log, err)
			return
		}
		name := "patient-summary-" + b.now().UTC().Format("2006-01-02") + ".json"
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(doc); err != nil {
			log.Warn("ips export: write failed", "err", err)
		}
	}}}
}

// ParseQuery reads the person and their choices.
func ParseQuery(r *http.Request) (int64, Options, error) {
	q := r.URL.Query()
	var opt Options
	profile, err := strconv.ParseInt(q.Get("profile"), 10, 64)
	if err != nil || profile <= 0 {
		return 0, opt, httpkit.BadRequest("The profile parameter is required: the id of the person whose summary this is.")
	}
	if s := q.Get("sections"); s != "" || q.Has("sections") {
		opt.Sections = map[string]bool{}
		for _, k := range strings.Split(s, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if _, ok := SectionByKey(k); !ok {
				keys := make([]string, 0, len(Sections))
				for _, s := range Sections {
					keys = append(keys, s.Key)
				}
				return 0, opt, httpkit.BadRequest("%q is not a section; sections are %s.", k, strings.Join(keys, ", "))
			}
			opt.Sections[k] = true
		}
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"since", &opt.Since}, {"until", &opt.Until}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		if _, err := time.Parse("2006-01-02", v); err != nil {
			return 0, opt, httpkit.BadRequest("%s must be a date like 2024-01-31.", p.name)
		}
		*p.dst = v
	}
	if opt.Since != "" && opt.Until != "" && opt.Since > opt.Until {
		return 0, opt, httpkit.BadRequest("since (%s) is after until (%s).", opt.Since, opt.Until)
	}
	return profile, opt, nil
}
