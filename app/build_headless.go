//go:build !desktop && !dev

package app

// DesktopBuild reports whether this binary was built with the Wails desktop tags; without them
// (CGO_ENABLED=0 server builds) there is no window, only serve, import and sync.
const DesktopBuild = false
