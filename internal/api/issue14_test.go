package api

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// outcome decodes an OperationOutcome body.
type outcome struct {
	ResourceType string
	Issue        []struct {
		Diagnostics string
		Location    []string
		Details     struct{ Coding []struct{ Code string } }
	}
}

func (e *env) nothingStored(t *testing.T) {
	t.Helper()
	var counts map[string]int
	e.get(t, "/resources/counts", &counts)
	var srcs []records.Source
	e.get(t, "/sources", &srcs)
	if len(counts) != 0 || len(srcs) != 0 {
		t.Fatalf("a refused upload wrote %v %v", counts, srcs)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestIssue14_4_CorruptCompressedInputIs400: damaged gzip (bad deflate, bad CRC, trailing
// garbage) and a zip entry whose size lies are bad input: 400 OperationOutcome naming the file
// and where, nothing written.
func TestIssue14_4_CorruptCompressedInputIs400(t *testing.T) {
	bundle, err := os.ReadFile(data(t, shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json"))
	if err != nil {
		t.Fatal(err)
	}
	good := gz(bundle)
	badDeflate := append([]byte(nil), good...)
	for i := 40; i < 80; i++ {
		badDeflate[i] ^= 0x5a
	}
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-6] ^= 0xff // CRC-32 sits in the last 8 bytes
	trailing := append(append([]byte(nil), good...), []byte("this is not gzip")...)
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	fw, _ := zw.Create("bundle.json")
	fw.Write(bundle)
	zw.Close()
	lying := zbuf.Bytes()
	// Make the central directory and local header claim a smaller uncompressed size.
	cd := bytes.LastIndex(lying, []byte("PK\x01\x02"))
	lying = append([]byte(nil), lying...)
	copy(lying[cd+24:cd+28], []byte{0x10, 0, 0, 0})

	dir := t.TempDir()
	for name, b := range map[string][]byte{"bad-deflate.json.gz": badDeflate, "bad-crc.json.gz": badCRC, "trailing.json.gz": trailing, "lying-size.zip": lying} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			f := filepath.Join(dir, name)
			os.WriteFile(f, b, 0o600)
			code, body := e.upload(t, []string{f}, nil, nil)
			var oo outcome
			json.Unmarshal(body, &oo)
			if code != http.StatusBadRequest || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 ||
				!strings.Contains(oo.Issue[0].Diagnostics, name) || len(oo.Issue[0].Location) != 1 {
				t.Fatalf("%d %s", code, body)
			}
			e.nothingStored(t)
		})
	}
}

// failingSpool is a spool file on a full disk.
type failingSpool struct{ name string }

func (f failingSpool) Write(p []byte) (int, error) {
	return 0, &os.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
}
func (f failingSpool) Close() error { return nil }
func (f failingSpool) Name() string { return f.name }

// TestIssue14_5_DiskFullDuringUploadIs507: a full disk while the upload is stored answers 507
// disk_full in the user's terms, without the spool's path; the next upload works.
func TestIssue14_5_DiskFullDuringUploadIs507(t *testing.T) {
	e := newEnv(t)
	full := true
	e.srv.createSpool = func(dir, pattern string) (spoolFile, error) {
		if full {
			return failingSpool{name: filepath.Join(dir, "upload-123")}, nil
		}
		return createSpool(dir, pattern)
	}
	file := data(t, shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	code, body := e.upload(t, []string{file}, nil, nil)
	if code != http.StatusInsufficientStorage || !strings.Contains(string(body), `"disk_full"`) || strings.Contains(string(body), e.srv.cfg.SpoolDir) {
		t.Fatalf("%d %s", code, body)
	}
	e.nothingStored(t)
	full = false
	if code, body := e.upload(t, []string{file}, nil, nil); code != 200 {
		t.Fatalf("the next import: %d %s", code, body)
	}
}

// TestIssue14_6_UploadTargets: an upload into a provider source is a 409; a source_id that is
// not a number is a 400 (not silently a new source).
func TestIssue14_6_UploadTargets(t *testing.T) {
	e := newEnv(t)
	var id int64
	err := e.store.WriteTx(t.Context(), func(tx *sql.Tx) error {
		var err error
		id, err = e.store.CreateSource(t.Context(), tx, records.NewSource{Kind: records.KindProvider, Name: "Demo Hospital", ProviderID: "demo"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	file := data(t, shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	code, body := e.upload(t, []string{file}, map[string]string{"source_id": fmt.Sprint(id)}, nil)
	if code != http.StatusConflict || !strings.Contains(string(body), "provider") {
		t.Fatalf("into a provider source: %d %s", code, body)
	}
	var self int64
	if err := e.store.WriteTx(t.Context(), func(tx *sql.Tx) error {
		var err error
		self, err = e.store.CreateSource(t.Context(), tx, records.NewSource{Kind: records.KindManual, Name: "Entered by me", ContentHash: "self:1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	code, body = e.upload(t, []string{file}, map[string]string{"source_id": fmt.Sprint(self)}, nil)
	if code != http.StatusConflict || !strings.Contains(string(body), "entered themselves") {
		t.Fatalf("into a person's own source: %d %s", code, body)
	}
	code, body = e.upload(t, []string{file}, map[string]string{"source_id": "abc"}, nil)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "source_id") {
		t.Fatalf("source_id=abc: %d %s", code, body)
	}
	var srcs []records.Source
	e.get(t, "/sources", &srcs)
	if len(srcs) != 2 {
		t.Fatalf("sources after refused uploads: %+v", srcs)
	}
}

// TestIssue14_12_FilePartsAreCapped: an upload with more file parts than the cap is refused
// before any source is created.
func TestIssue14_12_FilePartsAreCapped(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxFiles = 20 })
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for i := range 25 {
			w, _ := mw.CreateFormFile("file", fmt.Sprintf("p%d.json", i))
			fmt.Fprintf(w, `{"resourceType":"Patient","id":"p%d"}`, i)
		}
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest("POST", e.http.URL+Prefix+"/imports", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "20 files") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	e.nothingStored(t)
	if ents, _ := os.ReadDir(e.srv.cfg.SpoolDir); len(ents) != 0 {
		t.Fatalf("spool not cleaned: %v", ents)
	}
}
