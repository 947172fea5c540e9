// Package owner gives a data folder one owner: the first thing a process does with a data folder
// is take an exclusive OS lock (flock on Unix, LockFileEx on Windows) on owner.lock in it, and
// nothing else touches the folder before that (no spool cleanup, no migration, no checkpoint).
// Beside the lock, owner.json says who holds it (process id, command, since when) for the
// messages other processes print. The OS drops the lock when the process ends, however it ends,
// so a crash never leaves the folder locked; a stale owner.json is rewritten by the next owner.
package owner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// File names inside the data folder.
const (
	LockFile = "owner.lock"
	InfoFile = "owner.json"
)

// Holder is who holds a data folder.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"` // window, serve, import, sync, backup
	Since   time.Time `json:"since"`
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another Fasten process"
	}
	what := "`fasten-desktop " + h.Command + "`"
	if h.Command == CommandWindow {
		what = "the Fasten window"
	}
	return fmt.Sprintf("%s (process %d, since %s)", what, h.PID, h.Since.Local().Format("2006-01-02 15:04:05"))
}

// CommandWindow is the Command of the desktop window (and its --background instance).
const CommandWindow = "window"

// HeldError says the folder is held by another process (or another Lock in this one).
type HeldError struct {
	Dir    string
	Holder Holder // zero when owner.json could not be read
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("Fasten is already running with the data folder %s: %s", e.Dir, e.Holder)
}

// ErrHeld is what errors.Is finds in a *HeldError.
var ErrHeld = errors.New("the data folder is in use by another Fasten process")

func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lock is a held data folder.
type Lock struct {
	dir    string
	f      *os.File
	holder Holder
}

// Dir is the data folder this lock holds.
func (l *Lock) Dir() string { return l.dir }

// Holder is what owner.json says about this process.
func (l *Lock) Holder() Holder { return l.holder }

// Acquire takes the data folder dir for command without waiting: a *HeldError (errors.Is
// ErrHeld) when another process holds it. dir must exist.
func Acquire(dir, command string) (*Lock, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(abs, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the lock of the data folder %s: %w", abs, err)
	}
	ok, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the data folder %s: %w", abs, err)
	}
	if !ok {
		f.Close()
		return nil, &HeldError{Dir: abs, Holder: readHolder(abs)}
	}
	l := &Lock{dir: abs, f: f, holder: Holder{PID: os.Getpid(), Command: command, Since: time.Now().UTC().Truncate(time.Second)}}
	if err := writeHolder(abs, l.holder); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// Wait takes the data folder, waiting (polling every interval) while another process holds it.
// onHeld is called on every refused attempt (the caller prints a message once, or looks for the
// holder's control socket: returning true stops waiting with the *HeldError).
func Wait(ctx context.Context, dir, command string, interval time.Duration, onHeld func(*HeldError) bool) (*Lock, error) {
	for {
		l, err := Acquire(dir, command)
		var he *HeldError
		if !errors.As(err, &he) {
			return l, err
		}
		if onHeld != nil && onHeld(he) {
			return nil, he
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("stopped waiting: %w", he)
		case <-t.C:
		}
	}
}

// Release removes owner.json and drops the lock. It is safe to call twice.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	if h := readHolder(l.dir); h.PID == l.holder.PID && h.Command == l.holder.Command && h.Since.Equal(l.holder.Since) {
		os.Remove(filepath.Join(l.dir, InfoFile))
	}
	err := unlock(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

func readHolder(dir string) Holder {
	var h Holder
	// The holder writes owner.json right after it got the lock: a reader between the two sees
	// the previous file or none; a second look covers that moment.
	for range 2 {
		b, err := os.ReadFile(filepath.Join(dir, InfoFile))
		if err == nil && json.Unmarshal(b, &h) == nil && h.PID != 0 {
			return h
		}
		time.Sleep(20 * time.Millisecond)
	}
	return Holder{}
}

func writeHolder(dir string, h Holder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+InfoFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", InfoFile, err)
	}
	_, err = tmp.Write(append(b, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil && runtime.GOOS != "windows" {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, InfoFile))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", InfoFile, err)
	}
	return nil
}
