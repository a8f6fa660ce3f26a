import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { codecChecks, webhookErasureChecks, type DoctorReport } from '../../src/cli/doctor.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { freeSipPort, freeTcpPort, retryTakenPort } from '../ports.js';

/** Runs the built CLI (`npm test` builds first) against real ports, the real model and SQLite. */
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cli = join(repo, 'dist/src/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'vg-doctor-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function doctor(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    // No VOICEGUARD_* from the surrounding shell: the file alone decides.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VOICEGUARD_')));
    const child = spawn(process.execPath, [cli, 'doctor', ...args], { cwd: repo, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

function bindUdp(port: number): Promise<Socket> {
  return new Promise((done, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(port, '127.0.0.1', () => done(s));
  });
}

let counter = 0;
async function writeConfig(
  patch: {
    sipPort?: number;
    modelPath?: string;
    rtpMin?: number;
    extra?: string;
    listenExtra?: string;
    sipExtra?: string;
  } = {},
): Promise<{ file: string; sipPort: number; rtpMin: number }> {
  const sipPort = patch.sipPort ?? (await freeSipPort());
  const apiPort = await freeTcpPort();
  // A small RTP range keeps the bind test quick; it starts on a port the kernel just gave out free.
  const rtpMin = patch.rtpMin ?? (await freeTcpPort()) & ~1;
  const file = join(work, `voiceguard-${++counter}.yaml`);
  writeFileSync(
    file,
    [
      'sip:',
      '  listen: { host: "127.0.0.1", port: ' + sipPort + (patch.listenExtra ?? '') + ' }',
      '  publicAddress: "127.0.0.1"',
      patch.sipExtra ?? '',
      'media:',
      '  bindHost: "127.0.0.1"',
      `  portMin: ${rtpMin}`,
      `  portMax: ${rtpMin + 63}`,
      'detector:',
      `  modelPath: ${JSON.stringify(patch.modelPath ?? join(repo, 'models/voiceguard-detector.onnx'))}`,
      `  metadataPath: ${JSON.stringify(join(repo, 'models/voiceguard-detector.json'))}`,
      'store:',
      `  path: ${JSON.stringify(join(work, `data-${counter}`, 'voiceguard.sqlite'))}`,
      'api:',
      `  port: ${apiPort}`,
      patch.extra ?? '',
    ].join('\n'),
  );
  return { file, sipPort, rtpMin };
}

const failLines = (out: string) => out.split('\n').filter((l) => l.startsWith('FAIL'));

describe('voiceguard doctor', () => {
  it('passes a good config: ports free, model loads and scores, store writable', async () => {
    const { file } = await writeConfig();
    const r = await doctor(['-c', file]);
    expect(failLines(r.stdout), r.stdout + r.stderr).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok\s+config\s+.*is valid/m);
    expect(r.stdout).toMatch(/^ok\s+model\s+.*loads in onnxruntime .* scores a test window/m);
    expect(r.stdout).toMatch(/^ok\s+rtp\.range\s+.*all 64 ports free, room for 16 calls/m);
    expect(r.stdout).toMatch(/^ok\s+store\s+.*will be created/m);
    expect(r.stdout).toMatch(/^ok\s+g729\s+.*G\.729 decoder loaded \(bcg729\)/m);
  });

  it('warns, with the fix, when the G.729 decoder is not built; says nothing with media.fallbackCodecs []', () => {
    const c = ConfigSchema.parse({});
    expect(codecChecks(c, '/nonexistent/g729.node')).toEqual([
      {
        name: 'g729',
        status: 'warn',
        message: expect.stringMatching(/no G\.729 decoder: .* is not built .*media\.undecodable \(relay\)/),
        fix: expect.stringContaining('libbcg729-dev'),
      },
    ]);
    expect(codecChecks(ConfigSchema.parse({ media: { fallbackCodecs: [] } }))).toEqual([]);
  });

  it("warns of a webhook that gets call events but not erasures; prints the erasure ledger's state", async () => {
    const hooks = ConfigSchema.parse({
      api: {
        webhooks: [
          { url: 'https://siem.example/hook', secret: 'hook-secret-1' },
          { url: 'https://tickets.example/hook', secret: 'hook-secret-1', events: ['action', 'erasure'] },
        ],
      },
    });
    expect(webhookErasureChecks(hooks)).toEqual([
      {
        name: 'api.webhooks',
        status: 'warn',
        message: 'https://siem.example/hook receives verdict, action events but is not told of erasures',
        fix: expect.stringContaining("add 'erasure' to its events"),
      },
    ]);
    const { file } = await writeConfig();
    const r = await doctor(['-c', file]);
    expect(r.stdout).toMatch(/^ok\s+store\.erasures\s+.*\.erasures\.jsonl: 0 erasure\(s\) recorded/m);
  });

  it('fails on a busy SIP port and names it', async () => {
    const sock = await bindUdp(0);
    const port = sock.address().port;
    try {
      const { file } = await writeConfig({ sipPort: port });
      const r = await doctor(['-c', file]);
      expect(r.code).toBe(1);
      const fails = failLines(r.stdout);
      expect(fails).toHaveLength(1);
      expect(fails[0]).toContain(`${port}/udp on 127.0.0.1 is in use`);
      expect(fails[0]).toContain('sip.listen.port');
      // TCP on the same port is still free, and says so.
      expect(r.stdout).toMatch(
        new RegExp(`^ok\\s+sip\\.port\\s+${port}/tcp on 127\\.0\\.0\\.1 is free`, 'm'),
      );
    } finally {
      sock.close();
    }
  });

  it('counts busy ports in the RTP range as a warning, not a failure', async () => {
    const { file, rtpMin } = await writeConfig();
    const sock = await bindUdp(rtpMin + 10);
    try {
      const r = await doctor(['-c', file]);
      expect(r.code, r.stdout).toBe(0);
      expect(r.stdout).toMatch(
        new RegExp(`^warn\\s+rtp\\.range\\s+.*1 of 64 ports busy \\(${rtpMin + 10}\\); 63 free`, 'm'),
      );
    } finally {
      sock.close();
    }
  });

  it('fails on a bad model path and names the file', async () => {
    const missing = join(work, 'no-such-model.onnx');
    const { file } = await writeConfig({ modelPath: missing });
    const r = await doctor(['-c', file]);
    expect(r.code).toBe(1);
    const fails = failLines(r.stdout);
    expect(fails).toHaveLength(1);
    expect(fails[0]).toMatch(/^FAIL\s+model\s+/);
    expect(fails[0]).toContain(missing);
    expect(fails[0]).toContain('file not found');
  });

  it("fails on a file that is not an ONNX model, with the loader's reason", async () => {
    const junk = join(work, 'junk.onnx');
    writeFileSync(junk, 'this is not a protobuf');
    const { file } = await writeConfig({ modelPath: junk });
    const r = await doctor(['-c', file]);
    expect(r.code).toBe(1);
    expect(failLines(r.stdout).join('\n')).toContain(junk);
  });

  it('reports every invalid field of the config, one FAIL line each, and --json carries the same', async () => {
    const file = join(work, 'bad.yaml');
    writeFileSync(file, 'sip:\n  listen:\n    port: 70000\nmedia:\n  codecs: ["G729"]\nnosuchkey: 1\n');
    const r = await doctor(['-c', file, '--json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(report.ok).toBe(false);
    const fails = report.checks.filter((c) => c.status === 'fail').map((c) => c.message);
    expect(fails.some((m) => m.includes('sip.listen.port'))).toBe(true);
    expect(fails.some((m) => m.includes('media.codecs.0'))).toBe(true);
    expect(fails.some((m) => m.includes("'nosuchkey'"))).toBe(true);
    // The host checks still run without a config.
    expect(report.checks.map((c) => c.name)).toContain('clock');
  });

  it('SIP over TLS: checks the TLS port and that the certificate loads with its key', async () => {
    const tlsPort = await freeTcpPort();
    const tls = (key: string) =>
      `  tls: { certFile: ${JSON.stringify(join(repo, 'test/fixtures/tls/server.pem'))}, keyFile: ${JSON.stringify(join(repo, `test/fixtures/tls/${key}`))} }`;
    const good = await writeConfig({
      listenExtra: `, transports: [udp, tls], tlsPort: ${tlsPort}`,
      sipExtra: tls('server.key'),
    });
    const r = await doctor(['-c', good.file]);
    expect(r.stdout).toMatch(
      new RegExp(`^ok\\s+sip\\.port\\s+${tlsPort}/tls on 127\\.0\\.0\\.1 is free`, 'm'),
    );
    expect(r.stdout).toMatch(/^ok\s+sip\.tls\s+.*server\.pem loads with its key; valid until 2126-/m);
    const bad = await writeConfig({
      listenExtra: `, transports: [udp, tls], tlsPort: ${tlsPort}`,
      sipExtra: tls('peer.key'),
    });
    const b = await doctor(['-c', bad.file]);
    expect(b.code).toBe(1);
    expect(failLines(b.stdout).join('\n')).toMatch(/sip\.tls.*do not make a TLS context/);
  });

  it('next to a running voiceguard, counts its ports as its own instead of failing on them', async () => {
    // Thresholds in the file: the gateway then starts (failing open) even where the model is missing.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VOICEGUARD_')));
    let log = '';
    const { file, sipPort, server } = await retryTakenPort(async () => {
      const cfg = await writeConfig({
        extra: 'policy:\n  defaults: { dropLlr: 6, warnLlr: 3, humanLlr: -4, maxListenMs: 8000 }',
      });
      const child = spawn(process.execPath, [cli, 'serve', '-c', cfg.file], {
        cwd: repo,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const closed = new Promise<void>((res) => child.once('close', () => res()));
      log = '';
      child.stdout.on('data', (d: Buffer) => (log += d.toString()));
      child.stderr.on('data', (d: Buffer) => (log += d.toString()));
      for (let i = 0; i < 120 && !log.includes('"event":"api.listening"'); i++) {
        if (child.exitCode !== null) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      if (!log.includes('"event":"api.listening"')) {
        if (child.exitCode === null) child.kill('SIGKILL');
        await closed; // all of its output, the one-line reason included
        throw new Error(`serve did not start:\n${log}`);
      }
      return { ...cfg, server: child };
    });
    try {
      const r = await doctor(['-c', file]);
      expect(r.stdout).toMatch(/^ok\s+running\s+voiceguard is running with this config/m);
      expect(r.stdout).toMatch(
        new RegExp(
          `^ok\\s+sip\\.port\\s+${sipPort}/udp on 127\\.0\\.0\\.1 is in use by the running voiceguard`,
          'm',
        ),
      );
      expect(r.stdout).toMatch(/^ok\s+api\.port\s+.* is in use by the running voiceguard/m);
      expect(
        failLines(r.stdout).filter((l) => /port|rtp/.test(l)),
        r.stdout,
      ).toEqual([]);
    } finally {
      if (server.exitCode === null) {
        const exited = new Promise<number | null>((res) => server.once('exit', (code) => res(code)));
        server.kill('SIGTERM');
        expect(await exited, log).toBe(0);
      }
    }
  }, 60_000);
});
