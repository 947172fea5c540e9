package owner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockIsExclusiveAndSaysWhoHoldsIt(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "serve")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(dir, "import")
	var he *HeldError
	if !errors.As(err, &he) || !errors.Is(err, ErrHeld) {
		t.Fatalf("second acquire: %v", err)
	}
	if he.Holder.PID != os.Getpid() || he.Holder.Command != "serve" || he.Holder.Since.IsZero() {
		t.Fatalf("holder %+v", he.Holder)
	}
	msg := err.Error()
	for _, want := range []string{"already running", dir, "fasten-desktop serve", fmt.Sprint(os.Getpid()), "since"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, InfoFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("owner.json: %v %v", st, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal("second release:", err)
	}
	if _, err := os.Stat(filepath.Join(dir, InfoFile)); !os.IsNotExist(err) {
		t.Errorf("owner.json left after release: %v", err)
	}
	l2, err := Acquire(dir, "window")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Release()
	if h := l2.Holder(); h.Command != CommandWindow || !strings.Contains(h.String(), "the Fasten window") {
		t.Errorf("holder %v", h)
	}
}

func TestWaitTakesTheFolderOnceFree(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir, "import")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{}, 1)
	got := make(chan error, 1)
	go func() {
		l2, err := Wait(context.Background(), dir, "import", 5*time.Millisecond, func(*HeldError) bool {
			select {
			case held <- struct{}{}:
			default:
			}
			return false
		})
		if err == nil {
			err = l2.Release()
		}
		got <- err
	}()
	<-held
	l.Release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// A cancelled wait ends with the holder in the error.
	l, _ = Acquire(dir, "serve")
	defer l.Release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Wait(ctx, dir, "import", time.Millisecond, nil); !errors.Is(err, ErrHeld) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

// TestLockDiesWithTheProcess: a process killed while holding the folder leaves it free.
func TestLockDiesWithTheProcess(t *testing.T) {
	if dir := os.Getenv("OWNER_TEST_HOLD"); dir != "" {
		if _, err := Acquire(dir, "serve"); err != nil {
			fmt.Println("error", err)
			os.Exit(3)
		}
		fmt.Println("held")
		select {}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockDiesWithTheProcess$")
	cmd.Env = append(os.Environ(), "OWNER_TEST_HOLD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "held\n" {
		cmd.Process.Kill()
		t.Fatalf("child: %q", line)
	}
	_, err = Acquire(dir, "import")
	var he *HeldError
	if !errors.As(err, &he) || he.Holder.PID != cmd.Process.Pid {
		t.Fatalf("while the child holds it: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(dir, "import")
	if err != nil {
		t.Fatalf("after the holder died: %v", err)
	}
	l.Release()
}
