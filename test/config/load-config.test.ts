import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  ConfigError,
  leafPaths,
  loadConfig,
  renderDefaultsYaml,
  validateConfig,
} from '../../src/config/load-config.js';
import { ConfigSchema } from '../../src/config/schema.js';

function tempFile(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'vg-config-'));
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('loadConfig', () => {
  it('runs on built-in defaults when no file exists', () => {
    const { config, file } = loadConfig(null, {});
    expect(file).toBeNull();
    expect(config.sip.listen.port).toBe(5060);
    expect(config.api.host).toBe('127.0.0.1');
    expect(config.api.port).toBe(8080);
    expect(config.store.path).toBe('data/voiceguard.sqlite');
    expect(config.policy.defaults.retainAudioSeconds).toBe(0);
  });

  it('reads a YAML file and keeps defaults for missing keys', () => {
    const file = tempFile(
      'vg.yaml',
      'sip:\n  listen:\n    port: 5099\npolicy:\n  defaults:\n    onSynthetic: drop\n',
    );
    const { config } = loadConfig(file, {});
    expect(config.sip.listen.port).toBe(5099);
    expect(config.sip.listen.host).toBe('0.0.0.0');
    expect(config.policy.defaults.onSynthetic).toBe('drop');
    expect(config.policy.defaults.onError).toBe('log');
  });

  it('lets environment variables override the file', () => {
    const file = tempFile('vg.yaml', 'sip:\n  listen:\n    port: 5099\n');
    const { config } = loadConfig(file, {
      VOICEGUARD_SIP_LISTEN_PORT: '5070',
      VOICEGUARD_MEDIA_PORT_MIN: '30000',
      VOICEGUARD_MEDIA_PORT_MAX: '30100',
      VOICEGUARD_SIP_LISTEN_TRANSPORTS: '["udp"]',
      VOICEGUARD_STORE_PATH: '/tmp/x.sqlite',
      VOICEGUARD_PRIVACY_PSEUDONYMISE_NUMBERS: 'false',
    });
    expect(config.sip.listen.port).toBe(5070);
    expect(config.media.portMin).toBe(30000);
    expect(config.sip.listen.transports).toEqual(['udp']);
    expect(config.store.path).toBe('/tmp/x.sqlite');
    expect(config.privacy.pseudonymiseNumbers).toBe(false);
  });

  it('finds the file named by VOICEGUARD_CONFIG', () => {
    const file = tempFile('vg.yaml', 'log:\n  level: debug\n');
    expect(loadConfig(undefined, { VOICEGUARD_CONFIG: file }).config.log.level).toBe('debug');
  });

  it('names the key and the allowed values for a wrong enum', () => {
    expect(() => validateConfig({ policy: { defaults: { onSynthetic: 'explode' } } })).toThrowError(
      /policy\.defaults\.onSynthetic: invalid value; allowed values: "drop", "warn", "log"/,
    );
  });

  it('names the key for a wrong type and for an unknown key', () => {
    expect(() => validateConfig({ sip: { listen: { port: 'five' } } })).toThrowError(/sip\.listen\.port/);
    expect(() => validateConfig({ sip: { listne: {} } })).toThrowError(/sip: unknown key\(s\) 'listne'/);
  });

  it('refuses an ACK wait longer than the SIP stack keeps the INVITE transaction that retransmits the 2xx', () => {
    expect(() => validateConfig({ sip: { ackTimeoutMs: 40_000 } })).toThrowError(/sip\.ackTimeoutMs/);
    expect(validateConfig({ sip: { ackTimeoutMs: 32_000 } }).sip.ackTimeoutMs).toBe(32_000);
  });

  it('rejects an inverted RTP port range', () => {
    expect(() => validateConfig({ media: { portMin: 30000, portMax: 20000 } })).toThrowError(
      /media\.portMin/,
    );
  });

  it('SIP over TLS: names what is missing', () => {
    expect(() => validateConfig({ sip: { listen: { transports: ['udp', 'tls'] } } })).toThrowError(
      'sip.listen.transports has tls: set sip.tls.certFile and sip.tls.keyFile',
    );
    expect(() =>
      validateConfig({ sip: { pbx: { host: '10.0.0.5', port: 5061, transport: 'tls' } } }),
    ).toThrowError(
      'sip.pbx.transport is tls: add tls to sip.listen.transports (and set sip.tls.certFile and sip.tls.keyFile)',
    );
    const tls = { certFile: '/c.pem', keyFile: '/k.pem' };
    expect(() =>
      validateConfig({ sip: { listen: { transports: ['tls'] }, tls: { ...tls, requireClientCert: true } } }),
    ).toThrowError(/sip\.tls\.requireClientCert needs sip\.tls\.caFile/);
    expect(() =>
      validateConfig({ sip: { listen: { transports: ['tcp', 'tls'], port: 5060, tlsPort: 5060 }, tls } }),
    ).toThrowError(/tlsPort \(5060\) must differ/);
    const ok = validateConfig({
      sip: {
        listen: { transports: ['udp', 'tls'] },
        tls,
        pbx: { host: 'pbx.example', port: 5061, transport: 'tls' },
      },
    });
    expect(ok.sip.listen.tlsPort).toBe(5061);
    expect(ok.sip.tls).toMatchObject({ verifyPeers: true, requireClientCert: false, minVersion: 'TLSv1.2' });
  });

  it('reports unreadable and non-YAML files with the file name', () => {
    expect(() => loadConfig('/nonexistent/vg.yaml', {})).toThrowError(ConfigError);
    expect(() => loadConfig('/nonexistent/vg.yaml', {})).toThrowError(/\/nonexistent\/vg\.yaml/);
    const bad = tempFile('bad.yaml', 'sip: [unclosed\n');
    expect(() => loadConfig(bad, {})).toThrowError(/not valid YAML/);
  });

  it('renders every setting with a description, and the rendering parses back to the defaults', () => {
    const text = renderDefaultsYaml();
    const parsed: unknown = parseYaml(text);
    expect(validateConfig(parsed)).toEqual(ConfigSchema.parse({}));
    // One description line per leaf setting at least.
    const comments = text.split('\n').filter((l) => l.trim().startsWith('#')).length;
    expect(comments).toBeGreaterThanOrEqual(leafPaths(ConfigSchema).length);
  });
});
