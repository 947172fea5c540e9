package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/importer"
	"github.com/fastenhealth/fasten-desktop/internal/replicate"
	"github.com/fastenhealth/fasten-desktop/internal/secrets/secretstest"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// BenchmarkScale (issue 17) is a household's record at scale through the HTTP API: the shared
// Synthea set replicated with fresh ids to FASTEN_BENCH_SCALE resources (default 1,000,000), in
// two shapes, each imported once into a data folder kept under $TMPDIR/fasten-bench (the folder's
// name carries the size and the schema version, so a stale one is never reused):
//
//   - people: every copy a household of its own (replicate.Options.OwnNames), so thousands of
//     people with a few hundred records each;
//   - person: the 13 largest Synthea patients replicated as they are, so the copies of each match
//     as one person: 13 people, the largest with over 100,000 records at a million.
//
// For each shape it reports p50 and p95 (ms, 60 requests each, after one warm-up) of the reads a
// person makes: the dashboard summary of one person (the one with the most records) and of
// everyone, the timeline's first page and a page 100 pages deep, a search, a lab's history by
// code, the people list and the sources list; and the bytes of each answer.
func BenchmarkScale(b *testing.B) {
	n := 1000000
	if v, err := strconv.Atoi(os.Getenv("FASTEN_BENCH_SCALE")); err == nil && v > 0 {
		n = v
	}
	shapes := []string{"people", "person"}
	if v := os.Getenv("FASTEN_BENCH_SHAPES"); v != "" {
		shapes = strings.Split(v, ",")
	}
	for _, shape := range shapes {
		b.Run(shape, func(b *testing.B) {
			dir := scaleDataDir(b, shape, n)
			be, err := Open(context.Background(), Options{DataDir: dir, Keyring: secretstest.New(), Version: "bench",
				Getenv: func(string) string { return "" }})
			if err != nil {
				b.Fatal(err)
			}
			defer be.Close()
			srv := httptest.NewServer(be.API.Handler())
			defer srv.Close()
			get := func(path string, out any) (int, error) {
				resp, err := http.Get(srv.URL + "/api/v1" + path)
				if err != nil {
					return 0, err
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body)
				if err != nil {
					return 0, err
				}
				if resp.StatusCode != http.StatusOK {
					return 0, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
				}
				if out != nil {
					if err := json.Unmarshal(body, out); err != nil {
						return 0, fmt.Errorf("GET %s: %w", path, err)
					}
				}
				return len(body), nil
			}
			// The person with the most records, and a lab test of theirs.
			var people []struct {
				ID          int64 `json:"id"`
				RecordCount int   `json:"resource_count"`
			}
			if _, err := get("/profiles?counts=true", &people); err != nil {
				b.Fatal(err)
			}
			if len(people) == 0 {
				b.Fatal("no people")
			}
			sort.Slice(people, func(i, j int) bool { return people[i].RecordCount > people[j].RecordCount })
			p := people[0].ID
			var sum struct {
				Labs []struct {
					Resource struct {
						Code struct {
							Coding []struct{ System, Code string }
						}
					} `json:"resource"`
				} `json:"labs"`
			}
			if _, err := get(fmt.Sprintf("/summary?profile=%d", p), &sum); err != nil {
				b.Fatal(err)
			}
			code := "http://loinc.org|4548-4"
			for _, l := range sum.Labs {
				if c := l.Resource.Code.Coding; len(c) > 0 {
					code = c[0].System + "|" + c[0].Code
					break
				}
			}
			deep := func(profile string) string {
				cur := ""
				for range 100 {
					var page struct {
						NextCursor string `json:"next_cursor"`
					}
					if _, err := get("/timeline?limit=50"+profile+cursorParam(cur), &page); err != nil {
						b.Fatal(err)
					}
					if page.NextCursor == "" {
						break
					}
					cur = page.NextCursor
				}
				return cur
			}
			pq := fmt.Sprintf("&profile=%d", p)
			// A "-cold" query follows a write (a source renamed to its own name), so nothing
			// kept from an earlier read (people list, a person's doctors) is used.
			var srcs []struct {
				ID   int64  `json:"id"`
				Name string `json:"name"`
			}
			if _, err := get("/sources", &srcs); err != nil || len(srcs) == 0 {
				b.Fatalf("sources: %v", err)
			}
			write := func() {
				body, _ := json.Marshal(map[string]string{"name": srcs[0].Name})
				req, _ := http.NewRequest(http.MethodPatch, fmt.Sprintf("%s/api/v1/sources/%d", srv.URL, srcs[0].ID), strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("PATCH source: %d", resp.StatusCode)
				}
			}
			queries := []struct{ name, path string }{
				{"summary-person", fmt.Sprintf("/summary?profile=%d", p)},
				{"summary-everyone", "/summary"},
				{"counts-person", fmt.Sprintf("/resources/counts?profile=%d", p)},
				{"timeline-person", "/timeline?limit=50" + pq},
				{"timeline-person-deep", "/timeline?limit=50" + pq + cursorParam(deep(pq))},
				{"timeline-everyone", "/timeline?limit=50"},
				{"timeline-everyone-deep", "/timeline?limit=50" + cursorParam(deep(""))},
				{"search-person", "/search?limit=50&q=hemoglobin" + pq},
				{"search-everyone", "/search?limit=50&q=hemoglobin"},
				{"lab-history", "/resources?type=Observation&sort=date&limit=500&code=" + url.QueryEscape(code) + pq},
				{"people", "/profiles"},
				{"people-cold", "/profiles"},
				{"people-counts", "/profiles?counts=true"},
				{"people-counts-cold", "/profiles?counts=true"},
				// What the household page asks for: its first 24 people with their counts.
				{"people-household-cold", "/profiles?counts=true&limit=24"},
				{"summary-person-cold", fmt.Sprintf("/summary?profile=%d", p)},
				{"sources", "/sources"},
				{"sources-person", "/sources?profile=" + strconv.FormatInt(p, 10)},
			}
			// Printed, not logged: a benchmark's log is cut after a few lines.
			fmt.Printf("scale %s: %d people; the largest (%d) has %d records; lab %s\n", shape, len(people), p, people[0].RecordCount, code)
			b.ResetTimer()
			for range b.N {
				for _, q := range queries {
					if only := os.Getenv("FASTEN_BENCH_QUERIES"); only != "" && !slices.Contains(strings.Split(only, ","), q.name) {
						continue
					}
					size, err := get(q.path, nil) // warm-up
					if err != nil {
						b.Fatal(err)
					}
					var ds []time.Duration
					for range 60 {
						if strings.HasSuffix(q.name, "-cold") {
							write()
						}
						start := time.Now()
						if _, err := get(q.path, nil); err != nil {
							b.Fatal(err)
						}
						ds = append(ds, time.Since(start))
					}
					sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
					p50, p95 := ds[len(ds)/2], ds[len(ds)*95/100]
					b.ReportMetric(float64(p95.Microseconds())/1000, q.name+"-p95-ms")
					fmt.Printf("scale %s %-24s p50 %7.1f ms  p95 %7.1f ms  %8d bytes\n", shape, q.name, float64(p50.Microseconds())/1000, float64(p95.Microseconds())/1000, size)
				}
			}
		})
	}
}

func cursorParam(c string) string {
	if c == "" {
		return ""
	}
	return "&cursor=" + url.QueryEscape(c)
}

// scaleDataDir returns a data folder holding n replicated resources of the given shape, made
// once (through the real importer, with people matched as for any import) and kept.
func scaleDataDir(b *testing.B, shape string, n int) string {
	b.Helper()
	root := filepath.Join(os.TempDir(), "fasten-bench")
	dir := filepath.Join(root, fmt.Sprintf("scale-%s-%d-schema%d", shape, n, db.SchemaVersion()))
	if _, err := os.Stat(filepath.Join(dir, "fasten.db")); err == nil {
		return dir
	}
	syn, err := shareddata.Path(shareddata.Synthea)
	if err != nil {
		b.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(syn, "patient-*.json"))
	if shape == "person" {
		sort.Slice(files, func(i, j int) bool { return fileSize(files[i]) > fileSize(files[j]) })
		files = files[:13]
	}
	files = append(files, filepath.Join(syn, "organizations.json"), filepath.Join(syn, "practitioners.json"))
	src, err := replicate.Load(context.Background(), files...)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.Fatal(err)
	}
	ndjson := filepath.Join(root, fmt.Sprintf("scale-%s-%d.ndjson", shape, n))
	f, err := os.Create(ndjson)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := src.Write(f, replicate.Options{N: n, OwnNames: shape == "people"}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	defer os.Remove(ndjson)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	be, err := Open(context.Background(), Options{DataDir: tmp, Keyring: secretstest.New(), Version: "bench",
		Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	res, err := be.Importer.Import(context.Background(), []importer.Input{{Name: filepath.Base(ndjson), Path: ndjson}}, importer.Options{})
	if err != nil {
		be.Close()
		b.Fatal(err)
	}
	fmt.Printf("scale %s: imported %d resources in %.1fs\n", shape, res.Resources, time.Since(start).Seconds())
	if err := be.Close(); err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}
