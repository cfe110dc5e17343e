/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import { apiDocs } from './docs/plugin.ts';

// The daemon listens here by default; `npm run dev` forwards API calls to it.
const daemon = 'http://127.0.0.1:8080';

export default defineConfig({
  // Relative asset URLs: dist/ works when served from `/` (or any prefix).
  base: './',
  // The API documentation page: dist/docs/, served by the daemon at /docs/.
  plugins: [apiDocs()],
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'react' },
  },
  server: {
    proxy: {
      // Listed before /api so the websocket upgrade is proxied too.
      '/api/v1/live': { target: daemon, ws: true, changeOrigin: true },
      '/api': { target: daemon, changeOrigin: true },
      '/health': { target: daemon, changeOrigin: true },
    },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.{ts,tsx}'],
  },
});
