/// <reference types="node" />
// The /docs/ page (docs/ beside src/): what the build ships, and what the
// page's script asks of the real Swagger UI bundle.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createContext, runInContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  PAGE_FILES,
  SWAGGER_UI_FILES,
  docsFileNames,
  readDocsFile,
  stripSourceMapComments,
  swaggerUiDir,
} from '../docs/plugin.ts';

function file(name: string): string {
  const text = readDocsFile(name);
  if (text === undefined) throw new Error(`no docs file ${name}`);
  return text;
}

interface BundleSurface {
  (config: Record<string, unknown>): unknown;
  presets: Record<string, unknown>;
  plugins: Record<string, unknown>;
}

/** Loads the shipped swagger-ui-bundle.js, then init.js, and returns the config init.js passed. */
function runInitScript(): { config: Record<string, unknown>; real: BundleSurface } {
  const sandbox: Record<string, unknown> = {
    File, Blob, URL, URLSearchParams, TextEncoder, TextDecoder, FormData, Headers, Request,
    Response, AbortController, console, setTimeout, clearTimeout,
    fetch: () => {
      throw new Error('the page fetched something while loading');
    },
  };
  sandbox.window = sandbox;
  sandbox.self = sandbox;
  const context = createContext(sandbox);
  runInContext(file('swagger-ui-bundle.js'), context);
  const real = sandbox.SwaggerUIBundle as BundleSurface;
  expect(typeof real).toBe('function');

  const calls: Record<string, unknown>[] = [];
  const spy = Object.assign((config: Record<string, unknown>) => {
    calls.push(config);
    return {};
  }, { presets: real.presets, plugins: real.plugins });
  sandbox.SwaggerUIBundle = spy;
  runInContext(file('init.js'), context);
  expect(calls).toHaveLength(1);
  return { config: calls[0]!, real };
}

describe('API docs page', () => {
  it('ships swagger-ui files that exist in node_modules/swagger-ui-dist', () => {
    const dir = swaggerUiDir();
    expect(dir).toMatch(/node_modules[\\/]swagger-ui-dist$/);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string };
    expect(pkg.version).toMatch(/^5\./);
    for (const name of SWAGGER_UI_FILES) {
      expect(file(name).trim(), name).not.toBe('');
    }
    expect(file('swagger-ui-bundle.js')).toContain('SwaggerUIBundle');
    expect(file('swagger-ui.css')).toContain('.swagger-ui');
  });

  it('index.html loads only files that the build puts beside it', () => {
    const html = file('index.html');
    expect(html).toMatch(/<title>isobar API<\/title>/);
    expect(html).toContain('id="swagger-ui"');

    const shipped = new Set(docsFileNames());
    const assets = [
      ...html.matchAll(/<script\b[^>]*\bsrc="([^"]*)"/g),
      ...html.matchAll(/<link\b[^>]*\bhref="([^"]*)"/g),
    ].map((m) => m[1]!);
    expect(assets).toEqual(
      expect.arrayContaining(['./swagger-ui.css', './swagger-ui-bundle.js', './init.js']),
    );
    for (const url of assets) {
      if (url.startsWith('data:')) continue;
      expect(url, url).toMatch(/^\.\/[^/]+$/);
      expect(shipped.has(url.slice(2)), url).toBe(true);
    }
    // The bundle defines SwaggerUIBundle, which init.js calls: order matters.
    expect(html.indexOf('./swagger-ui-bundle.js')).toBeLessThan(html.indexOf('./init.js'));
    // No inline script, so a CSP without 'unsafe-inline' can serve the page.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it('init.js starts the real bundle on /api/v1/openapi.json with no validator', () => {
    const { config, real } = runInitScript();
    expect(config.url).toBe('/api/v1/openapi.json');
    expect(config.dom_id).toBe('#swagger-ui');
    expect(config.validatorUrl).toBeNull();
    expect(config.queryConfigEnabled).toBe(false);
    expect('urls' in config || 'configUrl' in config || 'spec' in config).toBe(false);
    // Each preset and plugin named is one that this version of the bundle has.
    expect(config.presets).toEqual([real.presets.apis]);
    expect(config.plugins).toEqual([real.plugins.DownloadUrl]);
    for (const item of [
      ...(config.presets as unknown[]),
      ...(config.plugins as unknown[]),
    ]) {
      expect(typeof item).toBe('function');
    }
  });

  it('the page files name no other host', () => {
    for (const name of PAGE_FILES) {
      // The icon's SVG namespace is a name, not a request.
      const text = file(name).replaceAll('http://www.w3.org/2000/svg', '');
      expect(text, name).not.toMatch(/https?:\/\//);
    }
  });

  it('drops source map comments, and only those', () => {
    const css = 'a{b:c}\n\n/*# sourceMappingURL=swagger-ui.css.map*/';
    expect(stripSourceMapComments(css)).toBe('a{b:c}\n\n');
    const js = 'x();\n//# sourceMappingURL=x.js.map\ny();\n';
    expect(stripSourceMapComments(js)).toBe('x();\ny();\n');
    expect(stripSourceMapComments('s="//# sourceMappingURL=";')).toBe('s="//# sourceMappingURL=";');
    for (const name of docsFileNames()) {
      expect(file(name), name).not.toMatch(/^\/[/*]# sourceMappingURL=/m);
    }
  });

  it('has no file for names outside the page', () => {
    expect(readDocsFile('../package.json')).toBeUndefined();
    expect(readDocsFile('swagger-ui-bundle.js.map')).toBeUndefined();
    expect(readDocsFile('plugin.ts')).toBeUndefined();
  });
});
