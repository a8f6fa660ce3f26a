import { readFileSync } from 'node:fs';
import { dirname, join, posix, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleDir } from '../../src/api/console-plugin.js';
import { copyArgs, parseDockerfile } from '../deploy/dockerfile-parser.js';
import { startHarness, type Harness } from './api-harness.js';

/** The web console's static files: served public, no traversal, found from src/ and dist/. */
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const sources = join(repo, 'src', 'api', 'console');

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

describe('console static files', () => {
  it('serves the page, its modules and uPlot without a token', async () => {
    const page = await h.app.inject({ url: '/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    // Every asset the page and its modules import is served.
    const html = page.body;
    const js = ['app', 'lib', 'live', 'calls', 'tuning', 'policy', 'lists']
      .map((m) => readFileSync(join(sources, `${m}.js`), 'utf8'))
      .join('\n');
    const urls = new Set(
      [...html.matchAll(/(?:href|src)="(\/[^"]+)"/g), ...js.matchAll(/from '(\/vendor\/[^']+)'/g)].map(
        (m) => m[1]!,
      ),
    );
    expect([...urls]).toEqual(
      expect.arrayContaining(['/assets/app.js', '/assets/style.css', '/vendor/uplot/uPlot.esm.js']),
    );
    for (const url of urls) {
      const r = await h.app.inject({ url });
      expect(r.statusCode, url).toBe(200);
      expect(r.body.length, url).toBeGreaterThan(100);
    }
    expect((await h.app.inject({ url: '/assets/app.js' })).headers['content-type']).toContain('javascript');
  });

  it('refuses traversal, dot files and unknown files with 404', async () => {
    for (const url of [
      '/assets/../../package.json',
      '/assets/%2e%2e/%2e%2e/package.json',
      '/assets/.env',
      '/vendor/uplot/../../package.json',
      '/assets/nope.js',
    ]) {
      const r = await h.app.inject({ url });
      expect(r.statusCode, url).toBe(404);
      expect(r.body).not.toContain('"dependencies"');
    }
  });

  it('finds the files from dist/src/api, where npm start and the image run it', () => {
    expect(consoleDir(join(repo, 'src', 'api'))).toBe(sources);
    expect(consoleDir(join(repo, 'dist', 'src', 'api'))).toBe(sources);
    expect(() => consoleDir('/nonexistent/dist/src/api')).toThrow(/web console files not found/);
  });

  it('the image keeps dist/ and src/api/console/ side by side, and ships uplot', () => {
    const df = parseDockerfile(readFileSync(join(repo, 'Dockerfile'), 'utf8'));
    const final = df.stages[df.stages.length - 1]!;
    const copies = final.instructions.filter((i) => i.keyword === 'COPY').map(copyArgs);
    const dest = (src: string) => copies.find((c) => c.sources.includes(src))?.dest;
    const dist = dest('/src/dist');
    const consoleFiles = dest('/src/src/api/console');
    expect(dist).toBeDefined();
    expect(consoleFiles).toBeDefined();
    // consoleDir() looks three folders up from dist/src/api: the same relative layout.
    expect(posix.normalize(posix.join(dist!, 'src', 'api', '..', '..', '..', 'src', 'api', 'console'))).toBe(
      posix.normalize(consoleFiles!),
    );
    const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      files: string[];
    };
    // uPlot is served from node_modules, which the image keeps after `npm prune --omit=dev`.
    expect(pkg.dependencies.uplot).toBeDefined();
    expect(pkg.files).toEqual(expect.arrayContaining(['dist', 'src/api/console']));
  });
});
