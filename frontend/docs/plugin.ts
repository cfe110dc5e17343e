/// <reference types="node" />
// The API documentation page, /docs/: this folder's page files and Swagger UI
// from the swagger-ui-dist package, written to dist/docs/ by the build and
// served from memory by the dev server. Nothing is fetched from anywhere.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';

/** The page's folder under dist/, and its path on the daemon: `/docs/`. */
export const DOCS_DIR = 'docs';

/** The page's own files, kept beside this module. */
export const PAGE_FILES = ['index.html', 'init.js', 'page.css'] as const;

/**
 * Files taken from swagger-ui-dist: the UI (React and all included), its
 * styles, and the licence texts that go with redistributing them.
 */
export const SWAGGER_UI_FILES = [
  'swagger-ui-bundle.js',
  'swagger-ui.css',
  'swagger-ui-bundle.js.LICENSE.txt',
  'LICENSE',
  'NOTICE',
] as const;

const pageDir = dirname(fileURLToPath(import.meta.url));

/** The installed swagger-ui-dist package's folder. */
export function swaggerUiDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('swagger-ui-dist/package.json'));
}

/**
 * Drops `//# sourceMappingURL=…` and `/*# sourceMappingURL=… *\/` lines: the
 * maps are not shipped, and a browser's developer tools would ask for them.
 */
export function stripSourceMapComments(text: string): string {
  return text.replace(/^(?:\/\/# sourceMappingURL=.*|\/\*# sourceMappingURL=.*?\*\/)\r?\n?/gm, '');
}

/** One file of the page by its name under dist/docs/, or undefined. */
export function readDocsFile(name: string): string | undefined {
  if ((PAGE_FILES as readonly string[]).includes(name)) {
    return readFileSync(join(pageDir, name), 'utf8');
  }
  if ((SWAGGER_UI_FILES as readonly string[]).includes(name)) {
    return stripSourceMapComments(readFileSync(join(swaggerUiDir(), name), 'utf8'));
  }
  return undefined;
}

/** Every file of the page, by its name under dist/docs/. */
export function docsFileNames(): string[] {
  return [...PAGE_FILES, ...SWAGGER_UI_FILES];
}

function contentType(name: string): string {
  if (name.endsWith('.html')) return 'text/html; charset=utf-8';
  if (name.endsWith('.js')) return 'text/javascript; charset=utf-8';
  if (name.endsWith('.css')) return 'text/css; charset=utf-8';
  return 'text/plain; charset=utf-8';
}

/** Adds dist/docs/ to the build, and /docs/ to the dev server. */
export function apiDocs(): Plugin {
  return {
    name: 'isobar-api-docs',
    buildStart() {
      for (const name of PAGE_FILES) this.addWatchFile(join(pageDir, name));
    },
    generateBundle() {
      for (const name of docsFileNames()) {
        const source = readDocsFile(name);
        if (source === undefined) throw new Error(`api docs: no file ${name}`);
        this.emitFile({ type: 'asset', fileName: `${DOCS_DIR}/${name}`, source });
      }
    },
    configureServer(server) {
      server.middlewares.use(`/${DOCS_DIR}`, (req, res, next) => {
        if (req.method !== 'GET' && req.method !== 'HEAD') return next();
        const [path = '/', query] = (req.url ?? '/').split('?', 2);
        // Mounted at /docs, `req.url` is '/' for both /docs and /docs/; the
        // page's relative URLs need the slash.
        if ((req.originalUrl ?? '').split('?', 1)[0] === `/${DOCS_DIR}`) {
          res.statusCode = 301;
          res.setHeader('Location', `/${DOCS_DIR}/${query === undefined ? '' : `?${query}`}`);
          res.end();
          return;
        }
        const source = readDocsFile(path === '/' ? 'index.html' : path.slice(1));
        if (source === undefined) return next();
        res.setHeader('Content-Type', contentType(path === '/' ? 'index.html' : path));
        res.setHeader('Cache-Control', 'no-cache');
        if (req.method === 'HEAD') res.end();
        else res.end(source);
      });
    },
  };
}
