import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const unitPath = join(repo, 'deploy/voiceguard.service');
const text = readFileSync(unitPath, 'utf8');

/** key → values of the [Service] section (a key may repeat). */
function section(name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      current = s[1]!;
      continue;
    }
    if (current !== name) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}
const svc = section('Service');
const one = (k: string) => svc.get(k)?.at(-1);

const hasSystemdAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const work = mkdtempSync(join(tmpdir(), 'vg-unit-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('deploy/voiceguard.service', () => {
  it.skipIf(!hasSystemdAnalyze)('passes systemd-analyze verify with no warnings', () => {
    // verify exits 0 on unknown keys or bad values and only warns, so stderr must be empty too.
    const copy = join(work, 'voiceguard.service');
    copyFileSync(unitPath, copy);
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8', cwd: work });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr.trim()).toBe('');
  });

  it('runs unprivileged with the hardening an edge box needs', () => {
    expect(one('DynamicUser') === 'yes' || one('User') !== undefined).toBe(true);
    expect(one('User')).not.toBe('root');
    expect(one('StateDirectory')).toBe('voiceguard');
    expect(one('ConfigurationDirectory')).toBe('voiceguard');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    expect(one('RestrictAddressFamilies')?.split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
  });

  it('asks for CAP_NET_BIND_SERVICE only when the configured SIP port is privileged', async () => {
    const { ConfigSchema } = await import('../../src/config/schema.js');
    const port = ConfigSchema.parse({}).sip.listen.port;
    const caps = (one('AmbientCapabilities') ?? '').trim();
    const bounding = (one('CapabilityBoundingSet') ?? '').trim();
    if (port >= 1024) {
      // 5060 is above 1023: binding it needs no capability, so none is granted.
      expect(caps).toBe('');
      expect(bounding).toBe('');
    } else {
      expect(caps).toBe('CAP_NET_BIND_SERVICE');
      expect(bounding).toBe('CAP_NET_BIND_SERVICE');
    }
  });

  it('reloads on SIGHUP, drains on SIGTERM, restarts on failure, logs to journald', () => {
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('KillSignal')).toBe('SIGTERM');
    const stop = one('TimeoutStopSec')!;
    const minutes = /^(\d+)min$/.exec(stop);
    expect(minutes ? Number(minutes[1]) : Number(stop) / 60).toBeGreaterThanOrEqual(5);
    expect(one('Restart')).toBe('on-failure');
    expect(one('StandardOutput')).toBe('journal');
    expect(one('ExecStart')).toMatch(/dist\/src\/cli\/main\.js serve$/);
    expect(svc.get('Environment')).toEqual(
      expect.arrayContaining([
        'VOICEGUARD_STORE_PATH=/var/lib/voiceguard/voiceguard.sqlite',
        'VOICEGUARD_CONFIG=/etc/voiceguard/voiceguard.yaml',
      ]),
    );
  });
});
