/// <reference types="vitest/config" />
import { defineConfig, type Plugin } from 'vite';
import react from '@vitejs/plugin-react';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// A strict Content-Security-Policy for the built page. It is added only to the production build:
// the dev server injects an inline React refresh preamble that a strict script-src would block.
// Narratives are sanitised by DOMPurify (src/lib/sanitize.ts); this policy is the second wall:
// no remote images, scripts, styles, frames, objects or connections, whatever slips through.
export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "media-src 'none'",
  "object-src 'none'",
  "frame-src 'none'",
  "worker-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

// Vite empties dist/ before a build; dist/gitkeep is tracked by git, so put it back afterwards.
function keepGitkeep(): Plugin {
  return {
    name: 'fasten-keep-gitkeep',
    apply: 'build',
    closeBundle() {
      const f = fileURLToPath(new URL('./dist/gitkeep', import.meta.url));
      if (!existsSync(f)) writeFileSync(f, '');
    },
  };
}

function cspMeta(): Plugin {
  return {
    name: 'fasten-csp-meta',
    apply: 'build',
    transformIndexHtml: {
      order: 'post',
      handler(html) {
        // Right after <meta charset>, before any script or stylesheet.
        const meta = `<meta http-equiv="Content-Security-Policy" content="${CSP}" />`;
        const out = html.replace(/(<meta charset="[^"]*"\s*\/?>)/i, `$1\n    ${meta}`);
        if (out === html) throw new Error('index.html has no <meta charset>: cannot place the CSP');
        return out;
      },
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [react(), cspMeta(), keepGitkeep()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npm run dev` against a running `fasten-desktop serve --listen 127.0.0.1:9300`.
    // The guard refuses a foreign Origin (the dev server's), so the proxy drops that header.
    proxy: {
      '/api': {
        target: 'http://127.0.0.1:9300',
        changeOrigin: true,
        configure: (proxy) => proxy.on('proxyReq', (req) => req.removeHeader('origin')),
      },
    },
  },
  test: {
    environment: 'jsdom',
    globals: true,
    include: ['src/**/*.test.{ts,tsx}'],
    setupFiles: ['src/test/setup.ts'],
    restoreMocks: true,
  },
});
