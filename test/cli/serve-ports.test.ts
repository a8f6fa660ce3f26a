import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { startServer } from '../../src/cli/serve.js';
import { freeSipPort } from '../ports.js';

/**
 * `voiceguard serve` on a port another program holds: one line that names the address, the
 * transport and the setting, exit code 1 - not Node's uncaught 'error' event with a stack trace.
 * Real sockets hold the ports; the built CLI runs (`npm test` builds first).
 */
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const cli = join(repo, 'dist/src/cli/main.js');
const work = mkdtempSync(join(tmpdir(), 'vg-serve-ports-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function serve(
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((done) => {
    const base = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith('VOICEGUARD_')),
    );
    const child = spawn(process.execPath, [cli, 'serve'], {
      cwd: repo,
      env: {
        ...base,
        VOICEGUARD_SIP_LISTEN_HOST: '127.0.0.1',
        VOICEGUARD_API_HOST: '127.0.0.1',
        VOICEGUARD_API_PORT: '0',
        VOICEGUARD_MEDIA_BIND_HOST: '127.0.0.1',
        VOICEGUARD_STORE_PATH: join(work, `s-${Math.random().toString(36).slice(2)}.sqlite`),
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A serve that did start would run on: stop it so the test reports what it printed.
    const t = setTimeout(() => child.kill('SIGTERM'), 20_000);
    child.on('close', (code) => {
      clearTimeout(t);
      done({ code, stderr, stdout });
    });
  });
}

function holdTcp(port: number): Promise<Server> {
  const srv = createServer();
  return new Promise((ok, fail) => {
    srv.once('error', fail);
    srv.listen(port, '127.0.0.1', () => ok(srv));
  });
}

function holdUdp(port: number): Promise<Socket> {
  const s = createSocket('udp4');
  return new Promise((ok, fail) => {
    s.once('error', fail);
    s.bind(port, '127.0.0.1', () => ok(s));
  });
}

describe('serve: a listening port that cannot be had', () => {
  it('SIP TCP port held by another program: one line naming it and sip.listen.port, exit 1', async () => {
    const port = await freeSipPort();
    const held = await holdTcp(port);
    try {
      const r = await serve({ VOICEGUARD_SIP_LISTEN_PORT: String(port) });
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        `voiceguard: SIP cannot listen on 127.0.0.1:${port}/tcp: the port is in use by another program (EADDRINUSE); stop it or change sip.listen.port (voiceguard doctor checks the ports)`,
      );
      // Nothing claims to listen that does not.
      expect(r.stdout).not.toContain('"event":"sip.listening"');
    } finally {
      held.close();
    }
  });

  it('SIP UDP port held: names udp', async () => {
    const port = await freeSipPort();
    const held = await holdUdp(port);
    try {
      const r = await serve({ VOICEGUARD_SIP_LISTEN_PORT: String(port) });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`SIP cannot listen on 127.0.0.1:${port}/udp: the port is in use`);
      expect(r.stderr).not.toMatch(/Unhandled|node:events|at /);
    } finally {
      held.close();
    }
  });

  it('admin API port held: names api.port, after SIP listened', async () => {
    const apiPort = await freeSipPort();
    const held = await holdTcp(apiPort);
    try {
      const r = await serve({
        VOICEGUARD_SIP_LISTEN_PORT: String(await freeSipPort()),
        VOICEGUARD_API_PORT: String(apiPort),
      });
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        `voiceguard: admin API cannot listen on 127.0.0.1:${apiPort}/http: the port is in use by another program (EADDRINUSE); stop it or change api.port (voiceguard doctor checks the ports)`,
      );
    } finally {
      held.close();
    }
  });

  it('an address not on this machine: names sip.listen.host', async () => {
    const r = await serve({
      VOICEGUARD_SIP_LISTEN_HOST: '192.0.2.1', // TEST-NET-1 (RFC 5737): never a local address
      VOICEGUARD_SIP_LISTEN_PORT: String(await freeSipPort()),
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      '192.0.2.1 is not an address of this machine (EADDRNOTAVAIL); change sip.listen.host',
    );
  });

  it('in-process: startServer rejects with that line, closes what it opened, and a retry on a free port serves', async () => {
    const port = await freeSipPort();
    const held = await holdTcp(port);
    const store = join(work, 'inproc.sqlite');
    const overrides = {
      'sip.listen.host': '127.0.0.1',
      'sip.listen.port': port,
      'api.host': '127.0.0.1',
      'api.port': 0,
      'store.path': store,
      'media.bindHost': '127.0.0.1',
      'sip.drainTimeoutMs': 0,
    };
    try {
      await expect(startServer({ env: {}, logger: pino({ level: 'silent' }), overrides })).rejects.toThrow(
        `SIP cannot listen on 127.0.0.1:${port}/tcp: the port is in use`,
      );
    } finally {
      held.close();
    }
    // The same store file opens again (the failed start closed it) and the UDP half is free again.
    const other = await freeSipPort();
    const server = await startServer({
      env: {},
      logger: pino({ level: 'silent' }),
      overrides: { ...overrides, 'sip.listen.port': other },
    });
    try {
      const health = await fetch(`http://127.0.0.1:${server.apiPort}/health`);
      expect(health.status).toBe(200);
    } finally {
      await server.stop();
    }
    // The first try released its UDP port too.
    const again = await holdUdp(port);
    again.close();
  });
});
