package api

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func sha1b64(s string) string {
	h := sha1.Sum([]byte(s))
	return base64.StdEncoding.EncodeToString(h[:])
}

func TestAttachmentsAreServedNeverExecuted(t *testing.T) {
	e := newEnv(t)
	note := "Chief complaint: cough.\n"
	html := `<p>Hi</p><script>alert(1)</script><img src="http://example.com/x.png">`
	bundle := fmt.Sprintf(`{"resourceType":"Bundle","type":"collection","entry":[
	{"resource":{"resourceType":"DocumentReference","id":"d1","status":"current","content":[
		{"attachment":{"contentType":"text/plain; charset=utf-8","data":%q,"size":%d,"hash":%q,"title":"note.txt"}},
		{"attachment":{"contentType":"text/html","data":%q}},
		{"attachment":{"contentType":"application/pdf","url":"Binary/b1","title":"scan.pdf"}},
		{"attachment":{"contentType":"text/plain","data":%q,"size":3,"hash":"AAAA"}},
		{"attachment":{"contentType":"image/png","url":"https://elsewhere.example/x.png"}},
		{"attachment":{"contentType":"not a type","data":%q}}
	]}},
	{"resource":{"resourceType":"Binary","id":"b1","contentType":"application/pdf","data":%q}}
	]}`, b64(note), len(note), sha1b64(note), b64(html), b64("tampered"), b64("x"), b64("%PDF-1.4 fake"))
	f := t.TempDir() + "/docs.json"
	writeFile(t, f, bundle)
	importShared(t, e, []string{f})

	cases := []struct {
		n               int
		status          int
		ctype, body     string
		check, filename string
	}{
		{0, 200, "text/plain; charset=utf-8", note, "ok", "note.txt"},
		{1, 200, "text/html", html, "ok", ""},
		{2, 200, "application/pdf", "%PDF-1.4 fake", "ok", "scan.pdf"},
		{3, 200, "text/plain", "tampered", "size-mismatch,hash-mismatch", ""},
		{4, 404, "", "", "", ""},
		{5, 200, "application/octet-stream", "x", "ok", ""},
		{6, 404, "", "", "", ""},
	}
	for _, c := range cases {
		resp, err := http.Get(fmt.Sprintf("%s%s/resources/DocumentReference/d1/attachments/%d", e.http.URL, Prefix, c.n))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("attachment %d: status %d (%s)", c.n, resp.StatusCode, b)
			continue
		}
		if c.status != 200 {
			continue
		}
		h := resp.Header
		if h.Get("Content-Type") != c.ctype || string(b) != c.body {
			t.Errorf("attachment %d: %q %q", c.n, h.Get("Content-Type"), b)
		}
		if h.Get("Content-Security-Policy") != "sandbox" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("attachment %d: CSP %q nosniff %q", c.n, h.Get("Content-Security-Policy"), h.Get("X-Content-Type-Options"))
		}
		if h.Get("X-Attachment-Check") != c.check {
			t.Errorf("attachment %d: check %q, want %q", c.n, h.Get("X-Attachment-Check"), c.check)
		}
		if c.filename != "" && h.Get("Content-Disposition") != `inline; filename=`+c.filename {
			t.Errorf("attachment %d: disposition %q", c.n, h.Get("Content-Disposition"))
		}
	}
	// A Binary is its own attachment 0.
	resp, err := http.Get(e.http.URL + Prefix + "/resources/Binary/b1/attachments/0")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" {
		t.Errorf("Binary: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
