import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigSchema } from '../../src/config/schema.js';
import { ENV_PREFIX, leafPaths, loadConfig } from '../../src/config/load-config.js';
import { parseDockerfile } from './dockerfile-parser.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const envNames = new Set(
  leafPaths(ConfigSchema).map(
    (p) => ENV_PREFIX + p.map((k) => k.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_'),
  ),
);
envNames.add(`${ENV_PREFIX}CONFIG`);

interface ComposeService {
  network_mode?: string;
  environment: Record<string, string>;
  volumes: string[];
  stop_grace_period: string;
  stop_signal: string;
}

describe('docker-compose.example.yml', () => {
  const compose = parseYaml(readFileSync(join(repo, 'docker-compose.example.yml'), 'utf8')) as {
    services: Record<string, ComposeService>;
  };
  const svc = compose.services.voiceguard!;

  it('mounts the image volumes and only sets environment variables the config knows', () => {
    const df = parseDockerfile(readFileSync(join(repo, 'Dockerfile'), 'utf8'));
    const final = df.stages[df.stages.length - 1]!;
    const imageVolumes = final.instructions
      .filter((i) => i.keyword === 'VOLUME')
      .flatMap((i) => i.json ?? []);
    const targets = svc.volumes.map((v) => v.split(':')[1]);
    expect(targets.sort()).toEqual([...imageVolumes].sort());
    for (const name of Object.keys(svc.environment)) expect(envNames.has(name), name).toBe(true);
  });

  it('uses host networking and a stop grace period long enough to drain calls', () => {
    expect(svc.network_mode).toBe('host');
    expect(svc.stop_signal).toBe('SIGTERM');
    expect(svc.stop_grace_period).toMatch(/^\d+m$/);
    expect(Number(svc.stop_grace_period.slice(0, -1))).toBeGreaterThanOrEqual(5);
  });
});

describe('deploy/voiceguard.example.yaml', () => {
  it('is a valid config that keeps data on the state volume and stores no audio', () => {
    const { config } = loadConfig(join(repo, 'deploy/voiceguard.example.yaml'), {});
    expect(config.store.path).toBe('/var/lib/voiceguard/voiceguard.sqlite');
    expect(config.policy.defaults.retainAudioSeconds).toBe(0);
    expect(config.policy.defaults.onError).toBe('log');
    expect(config.api.host).toBe('127.0.0.1');
  });

  it('spells out every top-level section, so an admin sees what there is to set', () => {
    const raw = parseYaml(readFileSync(join(repo, 'deploy/voiceguard.example.yaml'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(Object.keys(raw).sort()).toEqual(Object.keys(ConfigSchema.shape).sort());
  });
});
