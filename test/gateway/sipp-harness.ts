import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { expect } from 'vitest';
import { loadAudioFile, to8k } from '../../src/audio/load-audio.js';
import { writeRtpPcap } from '../../src/audio/pcap-writer.js';
import { startServer, type RunningServer } from '../../src/cli/serve.js';
import { freeSipPort, freeUdpBlock, freeUdpPort, retryTakenPort } from '../ports.js';

/**
 * Real peers for the gateway tests: the gateway runs in-process on free ports with a real
 * SQLite store in a temp dir; sipp plays the caller (trunk) and the PBX.
 */
export const SCENARIOS = resolve('test/fixtures/sipp');

export { freeSipPort, freeUdpBlock, freeUdpPort };

/** Whether a UDP socket on this machine is bound to `port` (any address), from /proc/net/udp and udp6. */
export function udpBound(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const f of ['/proc/net/udp', '/proc/net/udp6']) {
    if (!existsSync(f)) continue;
    for (const line of readFileSync(f, 'utf8').split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      if (local?.endsWith(hex)) return true;
    }
  }
  return false;
}

/**
 * Waits until a peer (sipp) has bound its UDP port, so that nothing is sent before it listens. A
 * deadline, not a timing: on a loaded machine sipp only starts later.
 */
export async function waitUdpBound(port: number, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!udpBound(port)) {
    if (Date.now() > end) throw new Error(`nothing bound UDP port ${port} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface LogLine {
  event?: string;
  msg?: string;
  [k: string]: unknown;
}

export interface TestGateway {
  server: RunningServer;
  sipPort: number;
  pbxPort: number;
  dir: string;
  logs: LogLine[];
  events(name: string): LogLine[];
  stop(): Promise<void>;
}

export const MODEL = 'models/voiceguard-detector.onnx';

export async function startGateway(overrides: Record<string, unknown> = {}): Promise<TestGateway> {
  // A pick that a parallel test takes before the gateway binds it is picked again (retryTakenPort).
  return retryTakenPort(() => startGatewayOnce(overrides));
}

async function startGatewayOnce(overrides: Record<string, unknown>): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'vg-gw-'));
  const sipPort = await freeSipPort();
  const pbxPort = await freeSipPort();
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const haveModel = existsSync(MODEL);
  const server = await startServer({
    env: {},
    logger,
    overrides: {
      'sip.listen.host': '127.0.0.1',
      'sip.listen.port': sipPort,
      'sip.listen.transports': ['udp', 'tcp'],
      'sip.pbx': { host: '127.0.0.1', port: pbxPort, transport: 'udp' },
      'sip.drainTimeoutMs': 0,
      'api.host': '127.0.0.1',
      'api.port': 0,
      'store.path': join(dir, 'voiceguard.sqlite'),
      'media.bindHost': '127.0.0.1',
      ...(haveModel
        ? {}
        : { 'policy.defaults': { dropLlr: 4, warnLlr: 2, humanLlr: -4, maxListenMs: 8000 } }),
      ...overrides,
    },
  });
  return {
    server,
    sipPort,
    pbxPort,
    dir,
    logs,
    events: (name) => logs.filter((l) => l.event === name),
    stop: () => server.stop(),
  };
}

export interface SippResult {
  code: number | null;
  output: string;
  errors: string;
  durationMs: number;
}

export interface SippOptions {
  scenario: string;
  /** Local SIP port of this sipp instance. */
  port: number;
  /** host:port to send to (UAC); omitted for a UAS. */
  target?: string;
  calls?: number;
  rate?: number;
  /** -d: pause length in the scenario (ms). */
  pauseMs?: number;
  keys?: Record<string, string>;
  transport?: 'u1' | 't1' | 'un' | 'tn';
  /** -mp: sipp's media base port (it binds it and the next three); default a block found free. */
  mediaPort?: number;
  timeoutS?: number;
  extra?: string[];
  /** sipp's working directory (where a scenario's play_pcap_audio file lies); default a fresh temp dir. */
  cwd?: string;
}

/** Run sipp to completion; resolves with its exit code (0 = all calls succeeded). */
export function runSipp(o: SippOptions): { done: Promise<SippResult>; kill(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'vg-sipp-'));
  let child: ChildProcess | null = null;
  let killed = false;
  const done = (async (): Promise<SippResult> => {
    // The media base port was the SIP port + 2000, unchecked: in the ephemeral range, where another
    // socket of the run could hold it ("Unable to bind audio RTP socket ... errno = 98" failed a
    // clean-clone CI run). Now a block of four ports that were free a moment ago.
    const mediaPort = o.mediaPort ?? (await freeUdpBlock(4, [o.port]));
    const args = [
      '-sf',
      join(SCENARIOS, o.scenario),
      '-i',
      '127.0.0.1',
      '-p',
      String(o.port),
      '-m',
      String(o.calls ?? 1),
      '-r',
      String(o.rate ?? 10),
      '-t',
      o.transport ?? 'u1',
      '-nostdin',
      '-trace_err',
      '-error_file',
      join(dir, 'errors.log'),
      '-timeout',
      `${o.timeoutS ?? 20}s`,
      '-timeout_error',
      '-mp',
      String(mediaPort),
      '-s',
      '1000',
    ];
    if (o.pauseMs !== undefined) args.push('-d', String(o.pauseMs));
    for (const [k, v] of Object.entries(o.keys ?? {})) args.push('-key', k, v);
    if (o.extra) args.push(...o.extra);
    if (o.target) args.push(o.target);
    const started = Date.now();
    const proc = spawn('sipp', args, { cwd: o.cwd ?? dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    if (killed) proc.kill('SIGKILL');
    let output = '';
    proc.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20000)));
    proc.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20000)));
    return new Promise<SippResult>((res) => {
      proc.on('close', (code) => {
        let errors = '';
        for (const f of readdirSync(dir))
          if (f.endsWith('.log')) errors += readFileSync(join(dir, f), 'utf8');
        res({ code, output, errors: errors.slice(-8000), durationMs: Date.now() - started });
      });
    });
  })();
  return {
    done,
    kill: () => {
      killed = true;
      child?.kill('SIGKILL');
    },
  };
}

/** Both sipp peers of a callThrough completed their scenarios; a failure shows their output. */
export function expectBothPassed(r: { pbx: SippResult; caller: SippResult }): void {
  expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
  expect(r.pbx.code, r.pbx.output + r.pbx.errors).toBe(0);
}

/** A PBX scenario and a caller scenario run against one gateway; both results. */
export async function callThrough(
  gw: TestGateway,
  pbx: Omit<SippOptions, 'port'>,
  caller: Omit<SippOptions, 'port' | 'target'>,
): Promise<{ pbx: SippResult; caller: SippResult }> {
  const uas = runSipp({ ...pbx, port: gw.pbxPort });
  // Let the UAS bind; a sipp that exits first (a port in use, a scenario error) says why.
  const exited = uas.done.then((r) => {
    throw new Error(`the PBX sipp exited (${r.code}) before binding: ${r.output}${r.errors}`);
  });
  exited.catch(() => undefined);
  await Promise.race([waitUdpBound(gw.pbxPort), exited]);
  const uacPort = await freeUdpPort();
  const uac = runSipp({ ...caller, port: uacPort, target: `127.0.0.1:${gw.sipPort}` });
  const callerResult = await uac.done;
  const pbxTimer = setTimeout(() => uas.kill(), 5000);
  const pbxResult = await uas.done;
  clearTimeout(pbxTimer);
  return { pbx: pbxResult, caller: callerResult };
}

export interface Pcap {
  dir: string;
  samples: Float32Array;
  durationMs: number;
}

/** WAV → 8 kHz → PCMU RTP pcap, written as caller.pcap in a fresh sipp working directory. */
export async function makePcap(wav: string, maxSeconds: number): Promise<Pcap> {
  const all = to8k(await loadAudioFile(wav));
  const samples = all.slice(0, Math.min(all.length, Math.round(maxSeconds * 8000)));
  const dir = mkdtempSync(join(tmpdir(), 'vg-e2e-'));
  writeFileSync(
    join(dir, 'caller.pcap'),
    writeRtpPcap({ samples, codec: 'pcmu', src: '127.0.0.1:40000', dst: '127.0.0.1:6000' }),
  );
  return { dir, samples, durationMs: (samples.length / 8000) * 1000 };
}

/** A sipp PBX (UAS) and a sipp caller playing `pcap`, against one gateway. */
export async function sippCall(
  gw: TestGateway,
  pbxScenario: string,
  callerScenario: string,
  pcap: Pick<Pcap, 'dir'> | null,
  opts: {
    pauseMs?: number;
    calls?: number;
    rate?: number;
    timeoutS?: number;
    keys?: Record<string, string>;
  } = {},
) {
  const calls = opts.calls ?? 1;
  const uas = runSipp({ scenario: pbxScenario, port: gw.pbxPort, calls, timeoutS: opts.timeoutS ?? 30 });
  await waitUdpBound(gw.pbxPort); // the PBX side listens before the caller dials
  const uac = runSipp({
    scenario: callerScenario,
    port: await freeUdpPort(),
    target: `127.0.0.1:${gw.sipPort}`,
    calls,
    rate: opts.rate ?? 10,
    pauseMs: opts.pauseMs,
    timeoutS: opts.timeoutS ?? 30,
    keys: opts.keys,
    extra: calls > 1 ? ['-l', String(calls)] : [],
    ...(pcap ? { cwd: pcap.dir } : {}),
  });
  const caller = await uac.done;
  const kill = setTimeout(() => uas.kill(), 5000);
  const pbx = await uas.done;
  clearTimeout(kill);
  return { caller, pbx };
}
