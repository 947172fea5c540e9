package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fastenhealth/fasten-desktop/internal/control"
	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/paths"
)

// backupCmd writes a consistent copy of the record database (VACUUM INTO a temporary file next to
// the destination, integrity-checked and fsynced, then renamed), safe to run while the app is open.
func backupCmd(ctx context.Context, args []string, env Env) error {
	var c Common
	fs := newFlags("backup", env, &c)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"backup needs one FILE to write the copy to"}
	}
	dest, err := filepath.Abs(fs.Arg(0))
	if err != nil {
		return err
	}
	// Lstat: a link (even a dangling one) is an existing path too; db.Backup checks again and
	// never replaces anything.
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("%s exists already; choose a new file name (a backup never overwrites a file)", dest)
	}
	lock, client, err := claim(ctx, c, env, "backup")
	if err != nil {
		return err
	}
	var dbPath string
	if client != nil {
		// The window or serve holds the folder: it writes the copy (VACUUM INTO reads a
		// consistent snapshot while it keeps working).
		if dbPath, err = client.Backup(ctx, control.BackupRequest{Dest: dest}); err != nil {
			return err
		}
	} else {
		defer lock.Release()
		dirs, err := paths.Resolve(c.DataDir, env.Getenv)
		if err != nil {
			return err
		}
		dbPath = dirs.DB()
		if _, err := os.Stat(dbPath); err != nil {
			return fmt.Errorf("there is no database to back up at %s", dbPath)
		}
		d, err := db.Open(ctx, dbPath, db.Options{})
		if err != nil {
			return err
		}
		defer d.Close()
		if err := d.Backup(ctx, dest); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.Stdout, "Backed up %s to %s (checked). Tokens and secrets stay in the system keyring and are not in the copy.\n", dbPath, dest)
	return nil
}
