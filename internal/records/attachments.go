package records

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/httpkit"
)

// Attachment is the content of one FHIR Attachment: inline data, or a Binary in the store.
type Attachment struct {
	ContentType string
	Title       string
	Data        []byte
	// The attachment's own claims about its content, and whether the bytes agree.
	DeclaredSize int64
	DeclaredHash string // base64 SHA-1, as FHIR has it
	SizeMismatch bool
	HashMismatch bool
}

// ErrNoAttachment says a record has no such attachment, or its content is not stored.
var ErrNoAttachment error = &httpkit.Kind{Status: http.StatusNotFound, Code: "no_attachment", Text: "no such attachment"}

type attachmentDoc struct {
	ContentType string `json:"contentType"`
	Data        string `json:"data"`
	URL         string `json:"url"`
	Size        int64  `json:"size"`
	Hash        string `json:"hash"`
	Title       string `json:"title"`
}

// attachmentsOf lists the attachments of a resource in order: DocumentReference content,
// DiagnosticReport presentedForm, Media content, Communication payloads, an Observation's
// valueAttachment; a Binary is its own single attachment.
func attachmentsOf(typ string, raw []byte) ([]attachmentDoc, error) {
	var d struct {
		Content json.RawMessage `json:"content"`
		// DiagnosticReport
		PresentedForm []attachmentDoc `json:"presentedForm"`
		// Communication
		Payload []struct {
			ContentAttachment *attachmentDoc `json:"contentAttachment"`
		} `json:"payload"`
		ValueAttachment *attachmentDoc `json:"valueAttachment"`
		// Binary
		ContentType string `json:"contentType"`
		Data        string `json:"data"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("read attachments: %w", err)
	}
	var out []attachmentDoc
	switch typ {
	case "Binary":
		out = append(out, attachmentDoc{ContentType: d.ContentType, Data: d.Data})
	case "DocumentReference":
		var cs []struct {
			Attachment attachmentDoc `json:"attachment"`
		}
		if len(d.Content) > 0 && json.Unmarshal(d.Content, &cs) == nil {
			for _, c := range cs {
				out = append(out, c.Attachment)
			}
		}
	case "Media":
		var a attachmentDoc
		if len(d.Content) > 0 && json.Unmarshal(d.Content, &a) == nil {
			out = append(out, a)
		}
	case "DiagnosticReport":
		out = append(out, d.PresentedForm...)
	case "Communication", "CommunicationRequest":
		for _, p := range d.Payload {
			if p.ContentAttachment != nil {
				out = append(out, *p.ContentAttachment)
			}
		}
	case "Observation":
		if d.ValueAttachment != nil {
			out = append(out, *d.ValueAttachment)
		}
	}
	return out, nil
}

// Attachment returns the n-th attachment (from 0) of a record: its inline data, or the Binary its
// url names when the store holds it. Size and hash are checked against what the attachment says.
func (s *Store) Attachment(ctx context.Context, typ, id string, sourceID int64, n int) (Attachment, error) {
	it, err := s.Get(ctx, typ, id, sourceID)
	if err != nil {
		return Attachment{}, err
	}
	docs, err := attachmentsOf(typ, it.Resource)
	if err != nil {
		return Attachment{}, err
	}
	if n < 0 || n >= len(docs) {
		return Attachment{}, fmt.Errorf("%s/%s has no attachment %d: %w", typ, id, n, ErrNoAttachment)
	}
	a := docs[n]
	out := Attachment{ContentType: a.ContentType, Title: a.Title, DeclaredSize: a.Size, DeclaredHash: a.Hash}
	b64 := a.Data
	if b64 == "" && a.URL != "" {
		k := localKey(a.URL)
		if !strings.HasPrefix(k, "Binary/") {
			return Attachment{}, fmt.Errorf("the content of attachment %d is not stored in your records (it is at %s): %w", n, a.URL, ErrNoAttachment)
		}
		bin, err := s.Get(ctx, "Binary", strings.TrimPrefix(k, "Binary/"), it.SourceID)
		if errors.Is(err, ErrNotFound) {
			bin, err = s.Get(ctx, "Binary", strings.TrimPrefix(k, "Binary/"), 0)
		}
		if errors.Is(err, ErrNotFound) {
			return Attachment{}, fmt.Errorf("the file of attachment %d (%s) is not in your records: %w", n, k, ErrNoAttachment)
		}
		if err != nil {
			return Attachment{}, err
		}
		var b attachmentDoc
		if err := json.Unmarshal(bin.Resource, &b); err != nil {
			return Attachment{}, fmt.Errorf("read %s: %w", k, err)
		}
		b64 = b.Data
		if out.ContentType == "" {
			out.ContentType = b.ContentType
		}
	}
	if b64 == "" {
		return Attachment{}, fmt.Errorf("attachment %d of %s/%s holds no content: %w", n, typ, id, ErrNoAttachment)
	}
	data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return Attachment{}, fmt.Errorf("attachment %d of %s/%s is not valid base64: %w", n, typ, id, ErrNoAttachment)
	}
	out.Data = data
	if a.Size > 0 && a.Size != int64(len(data)) {
		out.SizeMismatch = true
	}
	if a.Hash != "" {
		sum := sha1.Sum(data)
		if base64.StdEncoding.EncodeToString(sum[:]) != a.Hash {
			out.HashMismatch = true
		}
	}
	out.ContentType = SafeContentType(out.ContentType)
	return out, nil
}

// SafeContentType keeps a well-formed media type (with its charset) and replaces anything else
// with application/octet-stream.
func SafeContentType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return "application/octet-stream"
	}
	keep := map[string]string{}
	if cs, ok := params["charset"]; ok {
		keep["charset"] = cs
	}
	return mime.FormatMediaType(mt, keep)
}
