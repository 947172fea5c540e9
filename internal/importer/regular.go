package importer

import (
	"fmt"
	"io/fs"
	"os"
)

// CheckFile refuses what import cannot read as a file before anything opens it: a folder, and
// anything that is not a regular file (a named pipe would block the import forever, a device
// never ends). path is where it is; name is how the user called it.
func CheckFile(path, name string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	return checkMode(st.Mode(), name)
}

func checkMode(m fs.FileMode, name string) error {
	if m.IsDir() {
		return fmt.Errorf("%s is a folder; choose the files inside it", name)
	}
	if m.IsRegular() {
		return nil
	}
	kind := "not a regular file"
	switch {
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeDevice != 0:
		kind = "a device"
	}
	return fmt.Errorf("%s is %s, not a file; import reads regular files only (save the data to a file first)", name, kind)
}
