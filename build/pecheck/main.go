// Command pecheck checks that Windows executables are what `make dist` promises: a GUI program
// (subsystem WINDOWS_GUI, no console window) and, for the app itself, 64-bit x86 (PE32+, AMD64).
// Debian's wine cannot run Go 1.26 binaries, so the Windows build is checked by its headers.
//
//	go run ./build/pecheck app.exe                 PE32+, AMD64, GUI
//	go run ./build/pecheck -installer setup.exe    GUI (NSIS installers are 32-bit stubs)
//
// The app must also carry its resources (build/dist.sh embeds them with go-winres): an icon group
// for Explorer and the taskbar, a manifest (DPI awareness, common controls) and version
// information for the file's Properties and the installer's list of programs.
package main

import (
	"debug/pe"
	"encoding/binary"
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
	if installer {
		return desc, nil
	}
	if kind != "PE32+" || f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 {
		return desc, errors.New(desc + ": want PE32+ for AMD64")
	}
	types, err := resourceTypes(f)
	if err != nil {
		return desc, fmt.Errorf("%s: %w", desc, err)
	}
	for _, want := range []struct {
		id   uint32
		name string
	}{{rtGroupIcon, "icon"}, {rtManifest, "manifest"}, {rtVersion, "version information"}} {
		if !types[want.id] {
			return desc, fmt.Errorf("%s: no %s resource (embed it with go-winres, as build/dist.sh does)", desc, want.name)
		}
	}
	return desc + ", icon, manifest, version", nil
}

// Resource types (winuser.h).
const (
	rtGroupIcon = 14
	rtVersion   = 16
	rtManifest  = 24
)

// resourceTypes lists the numeric resource types in the root directory of the .rsrc section
// (IMAGE_RESOURCE_DIRECTORY: 12 bytes, then the counts of named and numbered entries, then 8-byte
// entries whose first word is the type).
func resourceTypes(f *pe.File) (map[uint32]bool, error) {
	sec := f.Section(".rsrc")
	if sec == nil {
		return nil, errors.New("no resources (.rsrc section)")
	}
	b, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("reading .rsrc: %w", err)
	}
	if len(b) < 16 {
		return nil, errors.New(".rsrc section too short")
	}
	named := int(binary.LittleEndian.Uint16(b[12:]))
	numbered := int(binary.LittleEndian.Uint16(b[14:]))
	end := 16 + 8*(named+numbered)
	if end > len(b) {
		return nil, errors.New(".rsrc root directory runs past the section")
	}
	types := map[uint32]bool{}
	for i := named; i < named+numbered; i++ {
		types[binary.LittleEndian.Uint32(b[16+8*i:])] = true
	}
	return types, nil
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
