//go:build desktop || dev

package app

// DesktopBuild reports whether this binary was built with the Wails desktop tags.
const DesktopBuild = true
