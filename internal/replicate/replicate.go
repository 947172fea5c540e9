// Package replicate makes large FHIR data sets out of the shared Synthea data for benchmarks and
// crash tests: it reads real bundles once (resolving their urn:uuid references to Type/id) and
// writes as many copies as asked, each with fresh ids. Every UUID in a copy (resource ids and the
// references to them) is replaced by a UUID derived from the original and the copy number, so
// references stay consistent inside each copy and no two copies collide.
package replicate

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"regexp"

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
	if len(s.Resources) == 0 {
		return 0, fmt.Errorf("no resources to replicate")
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	count := 0
	var written int64
	for k := first; ; k++ {
		for _, r := range s.Resources {
			if (bytes > 0 && written >= bytes) || (bytes <= 0 && count >= n) {
				return count, bw.Flush()
			}
			c := Copy(r, k)
			if _, err := bw.Write(c); err != nil {
				return count, err
			}
			bw.WriteByte('\n')
			written += int64(len(c)) + 1
			count++
		}
	}
}
