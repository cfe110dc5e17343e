import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const script = resolve(import.meta.dirname, '..', '..', 'scripts', 'publish-dashboard.sh');
const out = mkdtempSync(join(tmpdir(), 'isobar-publish-'));
// The build step is the test command's own; here the files are staged from it.
const env = { ...process.env, SKIP_BUILD: '1' };

afterAll(() => rmSync(out, { recursive: true, force: true }));

function run(args: string[]) {
  return spawnSync('bash', [script, ...args], { env, encoding: 'utf8' });
}

describe('scripts/publish-dashboard.sh', () => {
  it('stages the dashboard with config.js naming the API origin, and says what it would upload', () => {
    const stdout = execFileSync(
      'bash',
      [script, '--dry-run', '--api-origin', 'https://api.wx.example.net', '--bucket', 'wx-dash', '--distribution', 'E2ABC', '--out', out],
      { env, encoding: 'utf8' },
    );
    const config = readFileSync(join(out, 'config.js'), 'utf8');
    expect(config).toContain("apiOrigin: 'https://api.wx.example.net'");
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toContain('./config.js');
    expect(stdout).toContain('would run: aws s3 sync');
    expect(stdout).toContain('s3://wx-dash/assets');
    expect(stdout).toMatch(/immutable/);
    expect(stdout).toContain('create-invalidation --distribution-id E2ABC');
  });

  it('refuses an API origin with a path, or none, with exit status 64', () => {
    for (const origin of ['https://api.example.net/v1', 'api.example.net', '', "https://x.net';alert(1)//"]) {
      const r = run(['--dry-run', '--api-origin', origin]);
      expect(r.status).toBe(64);
      expect(r.stderr).toContain('--api-origin must be an origin');
    }
  });

  it('needs a bucket to upload, and a valid one', () => {
    const none = run(['--api-origin', 'https://api.example.net']);
    expect(none.status).toBe(64);
    expect(none.stderr).toContain('--bucket is required');
    const bad = run(['--dry-run', '--api-origin', 'https://api.example.net', '--bucket', 'Bad_Bucket']);
    expect(bad.status).toBe(64);
    expect(bad.stderr).toContain('--bucket must be an S3 bucket name');
  });
});
