// Package replicate makes large FHIR data sets out of the shared Synthea data for benchmarks and
// crash tests: it reads real bundles once (resolving their urn:uuid references to Type/id) and
// writes as many copies as asked, each with fresh ids. Every UUID in a copy (resource ids and the
// references to them) is replaced by a UUID derived from the original and the copy number, so
// references stay consistent inside each copy and no two copies collide.
package replicate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
)

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// Source holds the resources of some files, references resolved, one JSON document each.
type Source struct {
	Resources [][]byte
	Bytes     int64
}

// Load reads files (Bundles or NDJSON) and resolves their urn:uuid references. A Type/id seen in
// several files (Synthea repeats organizations and practitioners) is kept once, so every copy
// holds distinct resources.
func Load(ctx context.Context, files ...string) (*Source, error) {
	urls := map[string]string{}
	for _, f := range files {
		err := scanFile(ctx, f, func(e *fhir.Entry) error {
			if e.FullURL != "" {
				urls[e.FullURL] = e.Type + "/" + e.ID
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	src := &Source{}
	resolve := func(v string) (string, bool) { r, ok := urls[v]; return r, ok }
	seen := map[string]bool{}
	for _, f := range files {
		err := scanFile(ctx, f, func(e *fhir.Entry) error {
			if seen[e.Type+"/"+e.ID] {
				return nil
			}
			seen[e.Type+"/"+e.ID] = true
			raw := append([]byte(nil), fhir.RewriteRefs(e.Raw, e.Refs, resolve)...)
			src.Resources = append(src.Resources, raw)
			src.Bytes += int64(len(raw))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return src, nil
}

func scanFile(ctx context.Context, path string, fn func(*fhir.Entry) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fhir.Scan(ctx, f, path, fhir.Options{}, fn)
}

// Copy returns resource raw with every UUID replaced by its copy-k counterpart. Copy 0 is the
// original.
func Copy(raw []byte, k int) []byte {
	if k == 0 {
		return raw
	}
	return uuidRE.ReplaceAllFunc(raw, func(u []byte) []byte {
		h := sha256.Sum256(append(append([]byte(nil), u...), fmt.Sprintf("/%d", k)...))
		h[6] = h[6]&0x0f | 0x40 // version 4
		h[8] = h[8]&0x3f | 0x80 // RFC 4122 variant
		return fmt.Appendf(nil, "%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
	})
}

// WriteNDJSON writes copies until at least n resources (or, when bytes > 0, at least that many
// bytes) are written, one resource per line. It returns the resources written.
func (s *Source) WriteNDJSON(w io.Writer, n int, bytes int64) (int, error) {
	return s.WriteNDJSONFrom(w, 0, n, bytes)
}

// WriteNDJSONFrom is WriteNDJSON starting at copy number first (different first copies give data
// sets with no id in common).
func (s *Source) WriteNDJSONFrom(w io.Writer, first, n int, bytes int64) (int, error) {
	return s.Write(w, Options{First: first, N: n, Bytes: bytes})
}

// Options say how many copies Write makes and how.
type Options struct {
	First int   // the first copy's number
	N     int   // resources to write at least (when Bytes is 0)
	Bytes int64 // bytes to write at least (when > 0)
	// OwnNames gives the patients of each copy but the first names of their own (a second
	// family name per copy), so that every copy is a household of other people rather than the
	// same people again (who match as one person per original patient).
	OwnNames bool
}

// Write writes copies, one resource per line, and returns the resources written.
func (s *Source) Write(w io.Writer, o Options) (int, error) {
	if len(s.Resources) == 0 {
		return 0, fmt.Errorf("no resources to replicate")
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	count := 0
	var written int64
	for k := o.First; ; k++ {
		for _, r := range s.Resources {
			if (o.Bytes > 0 && written >= o.Bytes) || (o.Bytes <= 0 && count >= o.N) {
				return count, bw.Flush()
			}
			c := Copy(r, k)
			if o.OwnNames && k > 0 {
				var err error
				if c, err = rename(c, k); err != nil {
					return count, err
				}
			}
			if _, err := bw.Write(c); err != nil {
				return count, err
			}
			bw.WriteByte('\n')
			written += int64(len(c)) + 1
			count++
		}
	}
}

// surnames make the second family names of OwnNames copies: copy k is named after
// surnames[k%len] (and, past the list, surnames[k/len%len] too).
var surnames = []string{
	"Abbott", "Acosta", "Adler", "Aguilar", "Alvarez", "Andersen", "Arnold", "Bauer", "Becker", "Bennett",
	"Berg", "Bishop", "Blake", "Brandt", "Brooks", "Caldwell", "Campos", "Carlsen", "Castillo", "Chavez",
	"Cohen", "Conway", "Cruz", "Dalton", "Delgado", "Diaz", "Dixon", "Duarte", "Eriksen", "Estrada",
	"Farley", "Ferreira", "Fischer", "Fleming", "Franco", "Garrido", "Gibson", "Gomez", "Graham", "Hahn",
	"Hansen", "Harper", "Herrera", "Hoffman", "Holm", "Ibarra", "Jensen", "Jordan", "Kaiser", "Keller",
	"Klein", "Koch", "Lambert", "Larsen", "Lehmann", "Lopez", "Lund", "Maddox", "Marin", "Medina",
	"Meyer", "Molina", "Morales", "Nash", "Navarro", "Nielsen", "Novak", "Nunez", "Olsen", "Ortega",
	"Pacheco", "Parker", "Pereira", "Peters", "Quinn", "Ramos", "Reyes", "Richter", "Rios", "Romero",
	"Rossi", "Salazar", "Santos", "Schmidt", "Schulz", "Serrano", "Silva", "Sousa", "Stone", "Suarez",
	"Torres", "Urban", "Valdez", "Vargas", "Vega", "Vogel", "Wagner", "Walsh", "Weber", "Wolf",
	"Young", "Zamora", "Ziegler", "Zimmer",
}

func surnameFor(k int) string {
	n := len(surnames)
	if k < n {
		return surnames[k]
	}
	return surnames[k%n] + "-" + surnames[k/n%n]
}

// rename gives a Patient of copy k its copy's second family name; other resources are unchanged.
func rename(raw []byte, k int) ([]byte, error) {
	if !bytes.Contains(raw, []byte(`"Patient"`)) {
		return raw, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m["resourceType"] != "Patient" {
		return raw, nil
	}
	names, _ := m["name"].([]any)
	for _, n := range names {
		if nm, ok := n.(map[string]any); ok {
			fam, _ := nm["family"].(string)
			nm["family"] = strings.TrimSpace(fam + " " + surnameFor(k))
			delete(nm, "text")
		}
	}
	return json.Marshal(m)
}
