package callback

import (
	"bytes"
	"html/template"
	"net/http"
)

// page is one self-contained HTML page: inline style, no script, no external resource.
type page struct {
	status int
	Title  string
	Lead   string // the main sentence
	Detail string // what went wrong, in the provider's or our words (escaped)
	OK     bool
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.Title}} - Fasten</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f5f7fa;color:#1f2933;margin:0;display:flex;min-height:100vh;align-items:center;justify-content:center}
main{background:#fff;max-width:32rem;margin:1rem;padding:2rem 2.25rem;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:1.35rem;margin:0 0 .75rem}
h1.ok{color:#1b7f4b}
h1.bad{color:#b42318}
p{line-height:1.5;margin:.5rem 0}
.detail{background:#f8f9fb;border-left:3px solid #d0d5dd;padding:.5rem .75rem;font-size:.95rem;word-break:break-word}
.close{margin-top:1.25rem;color:#52606d}
</style>
</head>
<body>
<main>
<h1 class="{{if .OK}}ok{{else}}bad{{end}}">{{.Title}}</h1>
<p>{{.Lead}}</p>
{{if .Detail}}<p class="detail">{{.Detail}}</p>{{end}}
<p class="close">You can close this tab and return to Fasten.</p>
</main>
</body>
</html>
`))

func (p *page) html() ([]byte, error) {
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, p); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var (
	pageSuccess = &page{status: http.StatusOK, OK: true,
		Title: "You're connected",
		Lead:  "Fasten received your sign-in. Your records will start arriving in the app."}
	pageDenied = &page{status: http.StatusForbidden,
		Title: "You declined to share your records",
		Lead:  "Nothing was connected and nothing was shared with Fasten. If this was a mistake, start connecting again from Fasten."}
	pageNoCode = &page{status: http.StatusBadRequest,
		Title: "Sign-in incomplete",
		Lead:  "The provider sent you back without a sign-in code, so nothing was connected. Start connecting again from Fasten."}
	pageMissingState = &page{status: http.StatusBadRequest,
		Title: "This sign-in link is not valid",
		Lead:  "The link is missing its security check, so Fasten did not use it. Start connecting again from Fasten."}
	pageInvalidState = &page{status: http.StatusBadRequest,
		Title: "This sign-in link is not valid or has expired",
		Lead:  "It does not belong to the sign-in Fasten is waiting for (it may be old, or from another window), so Fasten did not use it. If you are still signing in, finish in the most recent browser tab, or start connecting again from Fasten."}
	pageAlreadyUsed = &page{status: http.StatusConflict,
		Title: "This sign-in has already finished",
		Lead:  "Fasten already received an answer for this sign-in and ignored this one."}
	pageNotFound = &page{status: http.StatusNotFound,
		Title: "Not found",
		Lead:  "This address is only used by Fasten while you sign in to a provider."}
	pageWrongHost = &page{status: http.StatusForbidden,
		Title: "Wrong address",
		Lead:  "Fasten only answers sign-ins sent to 127.0.0.1."}
)

func providerErrorPage(e *ProviderError) *page {
	detail := e.Code
	if e.Description != "" {
		detail += ": " + e.Description
	}
	return &page{status: http.StatusBadRequest,
		Title:  "The provider could not complete the sign-in",
		Lead:   "Your provider reported a problem, so nothing was connected. You can try again from Fasten; if it keeps happening, the provider may be having trouble.",
		Detail: "The provider said: " + detail}
}

func exchangeFailedPage(err error) *page {
	return &page{status: http.StatusBadGateway,
		Title:  "Connecting did not finish",
		Lead:   "You signed in, but Fasten could not finish connecting to your provider, so nothing was connected. You can try again from Fasten.",
		Detail: clip(err.Error(), 400)}
}
