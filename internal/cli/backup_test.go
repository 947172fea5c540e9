package cli

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

func TestBackupWritesACheckedCopyAndNeverOverwrites(t *testing.T) {
	data := t.TempDir()
	f, _ := shareddata.Path(shareddata.Synthea, "patient-100ddb60-fb28-4663-a8f2-af93cdc4294e.json")
	var out, errOut bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	if err := importCmd(context.Background(), []string{"--data-dir", data, f}, env); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "copy.db")
	if err := backupCmd(context.Background(), []string{"--data-dir", data, dest}, env); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+dest+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var check string
	db.QueryRow(`SELECT count(*) FROM resources`).Scan(&n)
	db.QueryRow(`PRAGMA integrity_check`).Scan(&check)
	if n != 450 || check != "ok" {
		t.Fatalf("copy has %d resources, integrity %q", n, check)
	}
	ents, _ := os.ReadDir(filepath.Dir(dest))
	if len(ents) != 1 {
		t.Fatalf("leftovers next to the copy: %v", ents)
	}
	if err := backupCmd(context.Background(), []string{"--data-dir", data, dest}, env); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("overwrote: %v", err)
	}
}
