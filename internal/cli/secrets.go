package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/installation"
	"github.com/fastenhealth/fasten-desktop/internal/paths"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// Headless home-server mode: where the installation secret and provider tokens live when the
// user asks for an encrypted file instead of the OS keyring (docs/home-server.md).
const (
	// PassphraseEnv holds the passphrase of the encrypted secrets file.
	PassphraseEnv = "FASTEN_SECRETS_PASSPHRASE"
	// PassphraseCredential is the systemd credential (a file in $CREDENTIALS_DIRECTORY) that
	// holds the passphrase, for `LoadCredential=` / `LoadCredentialEncrypted=` in a unit.
	PassphraseCredential = "fasten-secrets-passphrase"
	// SecretsFileName is the encrypted secrets file in the data folder.
	SecretsFileName = "secrets.age"
)

// secretsHint is added to "no keyring" errors in the commands that can use the secrets file.
const secretsHint = "On a server without a desktop session, Fasten can keep sign-ins in an encrypted file in its data folder instead: " +
	"set " + PassphraseEnv + " (or a systemd credential named " + PassphraseCredential + ") to a passphrase and start Fasten again. " +
	"See docs/home-server.md."

// secretsPassphrase returns the passphrase the user gave for the secrets file and where it came
// from, or "" when none was given. A credential file that exists but cannot be read is an error.
func secretsPassphrase(getenv func(string) string) (pass []byte, from string, err error) {
	if p := getenv(PassphraseEnv); p != "" {
		return []byte(p), PassphraseEnv, nil
	}
	dir := getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return nil, "", nil
	}
	path := filepath.Join(dir, PassphraseCredential)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, "", nil
	case err != nil:
		return nil, "", fmt.Errorf("read the systemd credential %s: %w", PassphraseCredential, err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, "", fmt.Errorf("the systemd credential %s is empty", PassphraseCredential)
	}
	return b, "the systemd credential " + PassphraseCredential, nil
}

// secretsStore chooses where a long-running command keeps secrets. With a passphrase (see
// secretsPassphrase) it is the encrypted file in the data folder, created on first use; a wrong
// passphrase stops the command with a clear message. Without one it is the OS keyring, never
// the file: when the keyring cannot be used, msg says exactly how to enable the file, and the
// keyring's errors (shown in the app when registering or connecting) say it too.
func secretsStore(ctx context.Context, c Common, env Env, opts ...secrets.FileOption) (store secrets.Store, msg string, err error) {
	pass, from, err := secretsPassphrase(env.Getenv)
	if err != nil {
		return nil, "", err
	}
	if pass != nil {
		dirs, err := paths.Resolve(c.DataDir, env.Getenv)
		if err != nil {
			return nil, "", err
		}
		path := filepath.Join(dirs.Data, SecretsFileName)
		fstore, err := secrets.OpenFileStore(path, pass, opts...)
		if err != nil {
			if errors.Is(err, secrets.ErrWrongPassphrase) {
				return nil, "", fmt.Errorf("%w (%s, passphrase from %s)", err, path, from)
			}
			return nil, "", fmt.Errorf("open the secrets file %s: %w", path, err)
		}
		return fstore, fmt.Sprintf("Sign-ins are kept in the encrypted file %s (passphrase from %s), not in the system keyring.", path, from), nil
	}
	kr := secrets.NewKeyring(installation.KeyringService, secrets.WithTimeout(3*time.Second))
	store = hintStore{kr}
	if _, err := kr.Get(ctx, "serve-probe"); errors.Is(err, secrets.ErrUnavailable) {
		return store, "The system keyring is not available, so registering and connecting providers will fail. " + secretsHint, nil
	}
	return store, "", nil
}

// hintStore adds secretsHint to the keyring's "unavailable" errors.
type hintStore struct{ secrets.Store }

func (h hintStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := h.Store.Get(ctx, key)
	return v, withHint(err)
}

func (h hintStore) Set(ctx context.Context, key string, value []byte) error {
	return withHint(h.Store.Set(ctx, key, value))
}

func (h hintStore) Delete(ctx context.Context, key string) error {
	return withHint(h.Store.Delete(ctx, key))
}

func withHint(err error) error {
	if err != nil && errors.Is(err, secrets.ErrUnavailable) {
		return hintError{err}
	}
	return err
}

type hintError struct{ err error }

func (h hintError) Error() string { return h.err.Error() + " " + secretsHint }
func (h hintError) Unwrap() error { return h.err }

// printSecretsNote writes msg (if any) to w.
func printSecretsNote(w io.Writer, msg string) {
	if msg != "" {
		fmt.Fprintln(w, msg)
	}
}
