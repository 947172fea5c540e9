package sandbox

import (
	"bytes"
	"cmp"
	"html/template"
	"net/http"
	"slices"
)

const pageStyle = `body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1d2733}
h1{font-size:1.4rem}.note{color:#555}.err{color:#a40000;font-weight:600}
ul.patients{list-style:none;padding:0;max-height:22rem;overflow:auto;border:1px solid #ccd;border-radius:6px}
ul.patients li{padding:.35rem .6rem;border-bottom:1px solid #eef}code{font-size:.9em}
button{font-size:1rem;padding:.5rem 1.4rem;margin-right:.6rem;border-radius:6px;border:1px solid #888;cursor:pointer}
button.allow{background:#1f6feb;color:#fff;border-color:#1f6feb}`

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Demo Hospital: sign in</title><style>` + pageStyle + `</style></head>
<body>
<h1>Demo Hospital patient portal</h1>
<p class="note">A test provider with synthetic (Synthea) patients. Every patient is a login; no password is needed.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="request_id" value="{{.RequestID}}">
<h2>Sign in as</h2>
<ul class="patients">
{{range .Patients}}<li><label><input type="radio" name="patient" value="{{.ID}}"{{if .Checked}} checked{{end}}> {{.Name}} <span class="note">(born {{.BirthDate}}, id {{.ID}})</span></label></li>
{{end}}</ul>
<h2>Allow access?</h2>
<p><strong>{{.Client}}</strong> asks for:</p>
<ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>
{{if .Dropped}}<p class="note">Not granted by this provider: {{range .Dropped}}<code>{{.}}</code> {{end}}</p>{{end}}
<p><button class="allow" type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form>
</body></html>`))

var messageTmpl = template.Must(template.New("msg").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{{.Title}}</title><style>` + pageStyle + `</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>{{range .Lines}}<p><code>{{.}}</code></p>{{end}}</body></html>`))

type loginPatient struct {
	ID, Name, BirthDate string
	Checked             bool
}

func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, status int, handle string, req *authRequest, selected, errMsg string) {
	infos := s.Patients()
	slices.SortStableFunc(infos, func(a, b PatientInfo) int { return cmp.Compare(a.Name, b.Name) })
	patients := make([]loginPatient, 0, len(infos))
	for _, p := range infos {
		patients = append(patients, loginPatient{ID: p.ID, Name: p.Name, BirthDate: p.BirthDate, Checked: p.ID == selected})
	}
	var dropped []string
	for _, sc := range req.requested {
		if !slices.Contains(req.granted, sc) {
			dropped = append(dropped, sc)
		}
	}
	data := map[string]any{
		"Action": s.base(r) + "/auth/authorize", "RequestID": handle, "Patients": patients,
		"Client": req.client.ID, "Scopes": req.granted, "Dropped": dropped, "Error": errMsg,
	}
	var buf bytes.Buffer
	if err := loginTmpl.Execute(&buf, data); err != nil {
		s.log.Error("sandbox login page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w)
	w.Header().Set(RequestIDHeader, handle)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage shows an error that must not be redirected (unknown client, bad redirect_uri).
func (s *Server) errorPage(w http.ResponseWriter, status int, title, msg string, lines ...string) {
	var buf bytes.Buffer
	if err := messageTmpl.Execute(&buf, map[string]any{"Title": title, "Message": msg, "Lines": lines}); err != nil {
		http.Error(w, title, status)
		return
	}
	setPageHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET.")
		return
	}
	s.errorPage(w, http.StatusOK, "Demo Hospital (Fasten sandbox)",
		"A SMART on FHIR R4 test provider over synthetic Synthea patients. Connect to it from Fasten with the FHIR base URL below.",
		s.fhirBase(r))
}
