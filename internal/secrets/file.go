package secrets

// An encrypted secrets file for machines without a usable OS keyring (a headless home server).
// Never a silent fallback: the caller opens it only when the user gave a passphrase for it.
//
// Format: a small JSON document
//
//	{"fasten_secrets": 1, "identity": "<base64>", "data": "<base64>"}
//
// "identity" is an age X25519 identity encrypted with age's scrypt (passphrase) recipient; "data"
// is the JSON object {key: base64 value} encrypted with age to that identity's recipient. Opening
// the file costs one scrypt (about a second, on purpose); writes re-encrypt only "data" to the
// recipient (no passphrase work) and keep the "identity" blob as it is, so a write never needs the
// passphrase again and never changes which passphrase opens the file. Nothing in the file is in
// clear except the format marker. Writes go to a temporary file in the same folder (0600), are
// synced, then renamed over the old file: a crash leaves the old or the new file, never a mix.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"filippo.io/age"
)

// FileFormat is the version of the secrets file format FileStore writes and reads.
const FileFormat = 1

// ErrWrongPassphrase: the passphrase does not open the secrets file. Nothing was changed.
var ErrWrongPassphrase = errors.New("The passphrase does not open the encrypted secrets file; nothing was changed. Start again with the passphrase the file was created with.")

// ErrNoPassphrase: an empty passphrase was given.
var ErrNoPassphrase = errors.New("The passphrase for the encrypted secrets file is empty.")

// FileOption configures OpenFileStore.
type FileOption func(*fileOptions)

type fileOptions struct{ workFactor int }

// WithScryptWorkFactor sets the scrypt work factor (log2 N) used when a new file is created
// (default: age's, 18). Tests lower it; opening a file uses the factor stored in it.
func WithScryptWorkFactor(logN int) FileOption {
	return func(o *fileOptions) { o.workFactor = logN }
}

// FileStore is a Store kept in one encrypted file. It is safe for concurrent use within a
// process; every call re-reads the file, so a change by another process is seen (but two
// processes writing at the same moment is last-writer-wins: one data folder has one writer).
type FileStore struct {
	path      string
	mu        sync.Mutex
	identity  *age.X25519Identity
	recipient *age.X25519Recipient
	idBlob    []byte // the scrypt-encrypted identity, as read or first written
}

var _ Store = (*FileStore)(nil)

type fileDoc struct {
	Format   int    `json:"fasten_secrets"`
	Identity []byte `json:"identity"`
	Data     []byte `json:"data"`
}

// OpenFileStore opens the secrets file at path with passphrase, or creates it (and its folder)
// when it does not exist. A wrong passphrase gives an error matching ErrWrongPassphrase and
// leaves the file untouched; a damaged file gives ErrCorrupt.
func OpenFileStore(path string, passphrase []byte, opts ...FileOption) (*FileStore, error) {
	var o fileOptions
	for _, f := range opts {
		f(&o)
	}
	if len(bytes.TrimSpace(passphrase)) == 0 {
		return nil, ErrNoPassphrase
	}
	s := &FileStore{path: path}
	doc, err := s.readDoc()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, s.create(passphrase, o)
	case err != nil:
		return nil, err
	}
	sid, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	r, err := age.Decrypt(bytes.NewReader(doc.Identity), sid)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, &Error{Kind: ErrWrongPassphrase, Op: "open"}
		}
		return nil, &Error{Kind: ErrCorrupt, Op: "open", Err: fmt.Errorf("%s: identity: %w", path, err)}
	}
	idText, err := io.ReadAll(r)
	if err != nil {
		return nil, &Error{Kind: ErrCorrupt, Op: "open", Err: fmt.Errorf("%s: identity: %w", path, err)}
	}
	id, err := age.ParseX25519Identity(string(bytes.TrimSpace(idText)))
	if err != nil {
		return nil, &Error{Kind: ErrCorrupt, Op: "open", Err: fmt.Errorf("%s: identity: %w", path, err)}
	}
	s.identity, s.recipient, s.idBlob = id, id.Recipient(), doc.Identity
	// The entries must open too: find a damaged file now, not at the first sign-in.
	if _, err := s.entries(doc); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file's location.
func (s *FileStore) Path() string { return s.path }

func (s *FileStore) create(passphrase []byte, o fileOptions) error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	sr, err := age.NewScryptRecipient(string(passphrase))
	if err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	if o.workFactor > 0 {
		sr.SetWorkFactor(o.workFactor)
	}
	var blob bytes.Buffer
	w, err := age.Encrypt(&blob, sr)
	if err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	if _, err := io.WriteString(w, id.String()); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	s.identity, s.recipient, s.idBlob = id, id.Recipient(), blob.Bytes()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	return s.write(map[string][]byte{})
}

// Get returns the value stored under key, or an error matching ErrNotFound.
func (s *FileStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return nil, err
	}
	v, ok := m[key]
	if !ok {
		return nil, &Error{Kind: ErrNotFound, Op: "get"}
	}
	return v, nil
}

// Set stores value under key, replacing any previous value.
func (s *FileStore) Set(ctx context.Context, key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return &Error{Kind: ErrTooLarge, Op: "set"}
	}
	return s.update(ctx, func(m map[string][]byte) bool {
		m[key] = bytes.Clone(value)
		return true
	})
}

// Delete removes key. Deleting a missing key is not an error.
func (s *FileStore) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	return s.update(ctx, func(m map[string][]byte) bool {
		_, ok := m[key]
		delete(m, key)
		return ok
	})
}

func (s *FileStore) update(ctx context.Context, change func(map[string][]byte) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.load()
	if err != nil {
		return err
	}
	if !change(m) {
		return nil
	}
	return s.write(m)
}

func (s *FileStore) readDoc() (*fileDoc, error) {
	raw, err := os.ReadFile(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	var doc fileDoc
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Format == 0 || len(doc.Identity) == 0 || len(doc.Data) == 0 {
		return nil, &Error{Kind: ErrCorrupt, Op: "read", Err: fmt.Errorf("%s is not a Fasten secrets file", s.path)}
	}
	if doc.Format != FileFormat {
		return nil, &Error{Kind: ErrCorrupt, Op: "read", Err: fmt.Errorf("%s has format %d; this version reads %d", s.path, doc.Format, FileFormat)}
	}
	return &doc, nil
}

// load reads and decrypts the entries.
func (s *FileStore) load() (map[string][]byte, error) {
	doc, err := s.readDoc()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &Error{Kind: ErrUnavailable, Op: "read", Err: fmt.Errorf("the secrets file %s is gone", s.path)}
		}
		return nil, err
	}
	return s.entries(doc)
}

func (s *FileStore) entries(doc *fileDoc) (map[string][]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(doc.Data), s.identity)
	if err != nil {
		return nil, &Error{Kind: ErrCorrupt, Op: "read", Err: fmt.Errorf("%s: %w", s.path, err)}
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return nil, &Error{Kind: ErrCorrupt, Op: "read", Err: fmt.Errorf("%s: %w", s.path, err)}
	}
	m := map[string][]byte{}
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, &Error{Kind: ErrCorrupt, Op: "read", Err: fmt.Errorf("%s: entries are not JSON", s.path)}
	}
	return m, nil
}

// write encrypts m to the recipient and replaces the file atomically (temp, fsync, rename).
func (s *FileStore) write(m map[string][]byte) error {
	plain, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var data bytes.Buffer
	w, err := age.Encrypt(&data, s.recipient)
	if err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	out, err := json.Marshal(fileDoc{Format: FileFormat, Identity: s.idBlob, Data: data.Bytes()})
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path, append(out, '\n'))
}

func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("secrets file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("secrets file: %w", err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil { // make the rename durable (not possible on Windows)
		d.Sync()
		d.Close()
	}
	return nil
}
