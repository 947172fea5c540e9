// Command pecheck checks that Windows executables are what `make dist` promises: a GUI program
// (subsystem WINDOWS_GUI, no console window) and, for the app itself, 64-bit x86 (PE32+, AMD64).
// Debian's wine cannot run Go 1.26 binaries, so the Windows build is checked by its headers.
//
//	go run ./build/pecheck app.exe                 PE32+, AMD64, GUI
//	go run ./build/pecheck -installer setup.exe    GUI (NSIS installers are 32-bit stubs)
package main

import (
	"debug/pe"
	"errors"
	"flag"
	"fmt"
	"os"
)

const subsystemGUI = 2 // IMAGE_SUBSYSTEM_WINDOWS_GUI

// check returns a description of the file, or why it is not what is wanted.
func check(path string, installer bool) (string, error) {
	f, err := pe.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: not a PE file: %w", path, err)
	}
	defer f.Close()
	var kind string
	var subsystem uint16
	switch h := f.OptionalHeader.(type) {
	case *pe.OptionalHeader64:
		kind, subsystem = "PE32+", h.Subsystem
	case *pe.OptionalHeader32:
		kind, subsystem = "PE32", h.Subsystem
	default:
		return "", fmt.Errorf("%s: no optional header", path)
	}
	desc := fmt.Sprintf("%s: %s, machine %#x, subsystem %d", path, kind, f.Machine, subsystem)
	if subsystem != subsystemGUI {
		return desc, errors.New(desc + ": not a GUI program (subsystem 2); was it built with -ldflags -H windowsgui?")
	}
	if !installer && (kind != "PE32+" || f.Machine != pe.IMAGE_FILE_MACHINE_AMD64) {
		return desc, errors.New(desc + ": want PE32+ for AMD64")
	}
	return desc, nil
}

func main() {
	installer := flag.Bool("installer", false, "accept a 32-bit GUI program (an NSIS installer)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: pecheck [-installer] FILE...")
		os.Exit(2)
	}
	bad := false
	for _, p := range flag.Args() {
		desc, err := check(p, *installer)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			bad = true
			continue
		}
		fmt.Println(desc + ": ok")
	}
	if bad {
		os.Exit(1)
	}
}
