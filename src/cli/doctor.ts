import { loadG729 } from '../audio/g729.js';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, isIPv6 } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import Database from 'better-sqlite3';
import { ConfigError, loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import { loadModelMetadata, ModelMetadataError, type ModelMetadata } from '../detect/model-metadata.js';
import { certNotAfter, loadSipTls } from '../sip/tls-files.js';
import { ledgerPath, readLedger } from '../store/erasure-ledger.js';

/**
 * `voiceguard doctor`: checks an installation before (or instead of) starting it and says
 * what to fix, one line per check. It only reads and bind-tests; it never changes the
 * config, the database or the ports it probes.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  /** Stable check name, e.g. `sip.port`, `rtp.range`, `model`. */
  name: string;
  status: CheckStatus;
  message: string;
  /** What to do about a warn or fail. */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  configFile: string | null;
  checks: CheckResult[];
}

export interface DoctorOptions {
  configFile?: string;
  env?: NodeJS.ProcessEnv;
}

const ok = (name: string, message: string): CheckResult => ({ name, status: 'ok', message });
const warn = (name: string, message: string, fix?: string): CheckResult => ({
  name,
  status: 'warn',
  message,
  fix,
});
const fail = (name: string, message: string, fix?: string): CheckResult => ({
  name,
  status: 'fail',
  message,
  fix,
});

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const checks: CheckResult[] = [];
  let config: Config | null = null;
  let configFile: string | null = null;
  try {
    const loaded = loadConfig(opts.configFile, opts.env ?? process.env);
    config = loaded.config;
    configFile = loaded.file;
    checks.push(
      loaded.file
        ? ok('config', `${loaded.file} is valid`)
        : warn(
            'config',
            'no config file found; running on built-in defaults',
            'write /etc/voiceguard/voiceguard.yaml (see deploy/voiceguard.example.yaml) or set VOICEGUARD_CONFIG',
          ),
    );
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // One line per invalid field, as the loader reports them.
    for (const line of err.message.split('\n'))
      checks.push(
        fail(
          'config',
          line,
          'correct the key; `voiceguard config --print-defaults` lists every key and its allowed values',
        ),
      );
  }

  if (config) {
    // doctor is also run next to a live gateway (docker compose exec ... doctor): then the
    // ports are busy because voiceguard holds them, which is not a problem to fix.
    const running = await runningInstance(config);
    if (running) checks.push(ok('running', running));
    checks.push(...addressChecks(config));
    checks.push(...(await sipPortChecks(config, running !== null)));
    checks.push(await rtpRangeCheck(config, running !== null));
    checks.push(...rtpEphemeralCheck(config));
    checks.push(await apiPortCheck(config, running !== null));
    checks.push(...apiExposureCheck(config));
    checks.push(...fileChecks(config));
    checks.push(...(await modelChecks(config)));
    checks.push(storeCheck(config));
    checks.push(ledgerCheck(config));
    checks.push(...webhookErasureChecks(config));
    checks.push(...cpuChecks(config));
    checks.push(...codecChecks(config));
  }
  checks.push(clockCheck());
  checks.push(await ntpCheck());
  return { ok: checks.every((c) => c.status !== 'fail'), configFile, checks };
}

// ---------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------

type BindResult = { free: true } | { free: false; code: string; message: string };

function bindUdp(host: string, port: number): Promise<BindResult> {
  return new Promise((done) => {
    const sock = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      try {
        sock.close();
      } catch {
        // never bound: nothing to close
      }
      done({ free: false, code: err.code ?? 'ERROR', message: err.message });
    });
    sock.bind({ address: host, port, exclusive: true }, () => sock.close(() => done({ free: true })));
  });
}

function bindTcp(host: string, port: number): Promise<BindResult> {
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) =>
      done({ free: false, code: err.code ?? 'ERROR', message: err.message }),
    );
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => done({ free: true })));
  });
}

function bindProblem(what: string, r: Exclude<BindResult, { free: true }>, setting: string): CheckResult {
  const name = what.split(' ')[0]!;
  switch (r.code) {
    case 'EADDRINUSE':
      return fail(
        name,
        `${what} is in use`,
        `stop what listens there (ss -lunpt | grep ${what.split(' ')[1]!.split('/')[0]}), or if it is voiceguard itself it is already running; else change ${setting}`,
      );
    case 'EACCES':
      return fail(
        name,
        `${what}: permission denied`,
        `ports below 1024 need CAP_NET_BIND_SERVICE; use a port >= 1024 or grant the capability (see deploy/voiceguard.service)`,
      );
    case 'EADDRNOTAVAIL':
      return fail(
        name,
        `${what}: the address is not on this machine`,
        `set ${setting} to an address of this host (ip -br addr) or 0.0.0.0`,
      );
    default:
      return fail(name, `${what}: cannot bind (${r.code}: ${r.message})`, `check ${setting}`);
  }
}

/** A voiceguard already serving this config answers /health on its API port. */
async function runningInstance(c: Config): Promise<string | null> {
  if (c.api.port === 0) return null;
  const host = c.api.host === '0.0.0.0' || c.api.host === '::' ? '127.0.0.1' : c.api.host;
  const url = `${c.api.tls ? 'https' : 'http'}://${isIPv6(host) ? `[${host}]` : host}:${c.api.port}/health`;
  try {
    const { request } = c.api.tls ? await import('node:https') : await import('node:http');
    const body = await new Promise<string>((done, reject) => {
      const req = request(url, { timeout: 1500, rejectUnauthorized: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => done(text));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });
    const health = JSON.parse(body) as { status?: unknown; uptimeMs?: unknown; liveCalls?: unknown };
    if (health.status !== 'ok' || typeof health.uptimeMs !== 'number') return null;
    const up = Math.round(health.uptimeMs / 1000);
    return `voiceguard is running with this config (${url}: up ${up} s, ${String(health.liveCalls ?? 0)} live calls); its own ports count as in use by it`;
  } catch {
    return null;
  }
}

function inUseByUs(name: string, what: string): CheckResult {
  return ok(name, `${what} is in use by the running voiceguard`);
}

async function sipPortChecks(c: Config, running: boolean): Promise<CheckResult[]> {
  const { host, port, transports } = c.sip.listen;
  const out: CheckResult[] = [];
  for (const t of transports) {
    const tls = t === 'tls';
    const p = tls ? c.sip.listen.tlsPort : port;
    const what = `${p}/${t} on ${host}`;
    const setting = tls ? 'sip.listen.tlsPort / sip.listen.host' : 'sip.listen.port / sip.listen.host';
    const r = t === 'udp' ? await bindUdp(host, p) : await bindTcp(host, p);
    if (r.free) out.push(ok('sip.port', `${what} is free`));
    else if (running && r.code === 'EADDRINUSE') out.push(inUseByUs('sip.port', what));
    else out.push(bindProblem(`sip.port ${what}`, r, setting));
  }
  if (transports.includes('tls')) out.push(tlsFilesCheck(c));
  return out;
}

/** SIP over TLS: the certificate files load and go together, and the certificate is not about to expire. */
function tlsFilesCheck(c: Config): CheckResult {
  let material: ReturnType<typeof loadSipTls>;
  try {
    material = loadSipTls(c.sip);
  } catch (err) {
    return fail(
      'sip.tls',
      (err as Error).message,
      'point sip.tls.certFile/keyFile/caFile at readable PEM files that match',
    );
  }
  if (!material) return ok('sip.tls', 'SIP over TLS is off');
  const notAfter = certNotAfter(material.cert);
  if (!notAfter) return warn('sip.tls', `${c.sip.tls.certFile}: the certificate's expiry cannot be read`);
  const days = Math.floor((Date.parse(notAfter) - Date.now()) / 86_400_000);
  if (days < 0)
    return fail(
      'sip.tls',
      `${c.sip.tls.certFile} expired on ${notAfter}`,
      'renew it, then send voiceguard SIGHUP',
    );
  if (days < 21)
    return warn(
      'sip.tls',
      `${c.sip.tls.certFile} expires in ${days} day(s) (${notAfter})`,
      'renew it, then send voiceguard SIGHUP',
    );
  return ok('sip.tls', `${c.sip.tls.certFile} loads with its key; valid until ${notAfter}`);
}

async function apiPortCheck(c: Config, running: boolean): Promise<CheckResult> {
  const { host, port } = c.api;
  if (port === 0) return ok('api.port', 'api.port is 0: an ephemeral port is chosen at start');
  const what = `${port}/tcp on ${host}`;
  const r = await bindTcp(host, port);
  if (r.free) return ok('api.port', `${what} is free`);
  if (running && r.code === 'EADDRINUSE') return inUseByUs('api.port', what);
  return bindProblem(`api.port ${what}`, r, 'api.port / api.host');
}

/** Every port of the range is bind-tested (UDP), 512 at a time: 10 000 ports take about a second. */
async function rtpRangeCheck(c: Config, running: boolean): Promise<CheckResult> {
  const { bindHost, portMin, portMax } = c.media;
  const ports: number[] = [];
  for (let p = portMin; p <= portMax; p++) ports.push(p);
  const busy: number[] = [];
  let otherError: string | null = null;
  for (let i = 0; i < ports.length; i += 512) {
    const slice = ports.slice(i, i + 512);
    const results = await Promise.all(slice.map((p) => bindUdp(bindHost, p)));
    results.forEach((r, k) => {
      if (r.free) return;
      if (r.code === 'EADDRINUSE') busy.push(slice[k]!);
      else otherError ??= `${r.code}: ${r.message}`;
    });
    if (otherError) break;
  }
  const range = `${portMin}-${portMax}/udp on ${bindHost}`;
  if (otherError)
    return fail(
      'rtp.range',
      `RTP range ${range}: cannot bind (${otherError})`,
      'set media.bindHost to an address of this host or 0.0.0.0',
    );
  const free = ports.length - busy.length;
  // A call holds 4 ports (RTP+RTCP on each leg).
  const calls = Math.floor(free / 4);
  if (free < 4)
    return fail(
      'rtp.range',
      `RTP range ${range}: only ${free} of ${ports.length} ports free, not enough for one call`,
      'free the ports or move media.portMin/media.portMax',
    );
  if (busy.length > 0 && running) {
    return ok(
      'rtp.range',
      `RTP range ${range}: ${busy.length} ports in use (calls of the running voiceguard), ${free} free`,
    );
  }
  if (busy.length > 0) {
    const sample = busy.slice(0, 5).join(', ') + (busy.length > 5 ? ', ...' : '');
    return warn(
      'rtp.range',
      `RTP range ${range}: ${busy.length} of ${ports.length} ports busy (${sample}); ${free} free, room for ${calls} calls`,
      'another RTP user (PBX, media server) shares the range: give each its own range',
    );
  }
  return ok('rtp.range', `RTP range ${range}: all ${ports.length} ports free, room for ${calls} calls`);
}

/** The kernel hands out ephemeral ports for outgoing connections; an RTP range inside them collides now and then. */
function rtpEphemeralCheck(c: Config): CheckResult[] {
  let text: string;
  try {
    text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    return [];
  }
  const [lo, hi] = text.trim().split(/\s+/).map(Number);
  if (lo === undefined || hi === undefined) return [];
  const { portMin, portMax } = c.media;
  if (portMax < lo || portMin > hi)
    return [ok('rtp.ephemeral', `RTP range is outside the kernel's ephemeral ports ${lo}-${hi}`)];
  return [
    warn(
      'rtp.ephemeral',
      `RTP range ${portMin}-${portMax} overlaps the kernel's ephemeral ports ${lo}-${hi}`,
      'outgoing connections may take RTP ports; move the range, or reserve it: sysctl net.ipv4.ip_local_reserved_ports=' +
        `${portMin}-${portMax}`,
    ),
  ];
}

// ---------------------------------------------------------------------------------------
// Addresses, exposure, referenced files
// ---------------------------------------------------------------------------------------

function addressChecks(c: Config): CheckResult[] {
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  if (c.sip.publicAddress === null && wildcard(c.sip.listen.host)) {
    return [
      warn(
        'sip.address',
        'sip.publicAddress is not set and SIP listens on all addresses: Via/Contact/SDP will say 127.0.0.1',
        'set sip.publicAddress (and media.publicAddress if it differs) to the address the trunk and the PBX reach this box at',
      ),
    ];
  }
  return [ok('sip.address', `SIP and SDP advertise ${c.sip.publicAddress ?? c.sip.listen.host}`)];
}

function apiExposureCheck(c: Config): CheckResult[] {
  const loopback = c.api.host === '127.0.0.1' || c.api.host === '::1' || c.api.host === 'localhost';
  if (loopback || c.api.tls) return [];
  return [
    warn(
      'api.tls',
      `the admin API listens on ${c.api.host} without TLS: tokens cross the network in clear`,
      'set api.tls, or put a TLS reverse proxy in front, or listen on 127.0.0.1 (a container needs 0.0.0.0: publish the port on 127.0.0.1 only)',
    ),
  ];
}

function readable(file: string): string | null {
  try {
    accessSync(file, constants.R_OK);
    return statSync(file).isFile() ? null : 'not a regular file';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
  }
}

function fileChecks(c: Config): CheckResult[] {
  const files: [string, string | null][] = [
    ['actions.dropAnnouncement', c.actions.dropAnnouncement],
    ['actions.warnAnnouncement', c.actions.warnAnnouncement],
    ['policy.rulesFile', c.policy.rulesFile],
    ['api.tls.certFile', c.api.tls?.certFile ?? null],
    ['api.tls.keyFile', c.api.tls?.keyFile ?? null],
  ];
  const out: CheckResult[] = [];
  for (const [key, file] of files) {
    if (!file) continue;
    const problem = readable(file);
    out.push(
      problem
        ? fail(
            key,
            `${key}: ${resolve(file)}: ${problem}`,
            `fix the path in ${key} or make the file readable by the service user`,
          )
        : ok(key, `${file} is readable`),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------

async function modelChecks(c: Config): Promise<CheckResult[]> {
  const { modelPath, metadataPath, intraOpThreads } = c.detector;
  let metadata: ModelMetadata;
  try {
    metadata = loadModelMetadata(metadataPath);
  } catch (err) {
    const msg = err instanceof ModelMetadataError ? err.message : (err as Error).message;
    return [
      fail(
        'model.metadata',
        `${resolve(metadataPath)}: ${msg.replace(`${metadataPath}: `, '')}`,
        "set detector.metadataPath to the model's .json file (shipped next to the .onnx)",
      ),
    ];
  }
  const out: CheckResult[] = [
    ok(
      'model.metadata',
      `${metadataPath}: ${metadata.name} ${metadata.version}, window ${metadata.windowSamples} samples at ${metadata.sampleRateHz} Hz`,
    ),
  ];
  const problem = readable(modelPath);
  if (problem) {
    out.push(fail('model', `${resolve(modelPath)}: ${problem}`, 'set detector.modelPath to the .onnx file'));
    return out;
  }
  // The same loader the engine uses: it opens the session, checks the input/output names
  // against the metadata and scores one window of zeros.
  try {
    const { OnnxModelRunner } = await import('../detect/onnx-model.js');
    const started = performance.now();
    const runner = await OnnxModelRunner.create({ modelPath, metadata, intraOpThreads });
    const loadMs = performance.now() - started;
    const t0 = performance.now();
    const logits = await runner.run(new Float32Array(metadata.windowSamples), 1);
    const inferMs = performance.now() - t0;
    await runner.release();
    if (!Number.isFinite(logits[0])) {
      out.push(
        fail(
          'model',
          `${resolve(modelPath)}: a window of silence scored ${logits[0]}, not a finite number`,
          'the model file is damaged: reinstall it',
        ),
      );
    } else {
      out.push(
        ok(
          'model',
          `${modelPath} loads in onnxruntime (${loadMs.toFixed(0)} ms) and scores a test window in ${inferMs.toFixed(1)} ms`,
        ),
      );
    }
  } catch (err) {
    out.push(
      fail(
        'model',
        `${resolve(modelPath)}: ${(err as Error).message.replace(`${modelPath}: `, '')}`,
        'reinstall the model files, or point detector.modelPath at a model matching its metadata',
      ),
    );
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------

function storeCheck(c: Config): CheckResult {
  const file = resolve(c.store.path);
  const dir = dirname(file);
  if (!existsSync(dir)) {
    // The store creates its folder; the nearest existing parent must be writable for that.
    let parent = dir;
    while (!existsSync(parent)) parent = dirname(parent);
    try {
      accessSync(parent, constants.W_OK);
      return ok('store', `${dir} does not exist yet; it will be created in ${parent}`);
    } catch {
      return fail(
        'store',
        `${dir} does not exist and ${parent} is not writable`,
        `create ${dir} writable by the service user (systemd: StateDirectory=voiceguard)`,
      );
    }
  }
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    return fail(
      'store',
      `${dir} is not writable (SQLite needs it for its -wal and -shm files)`,
      `chown the folder to the service user, or set store.path elsewhere`,
    );
  }
  if (!existsSync(file)) {
    // Prove SQLite can create a database there, without creating the real one.
    const probeDir = mkdtempSync(join(dir, '.voiceguard-doctor-'));
    try {
      const db = new Database(join(probeDir, 'probe.sqlite'));
      db.pragma('journal_mode = WAL');
      db.exec('CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);');
      db.close();
      return ok('store', `${file} will be created (SQLite with WAL works in ${dir})`);
    } catch (err) {
      return fail(
        'store',
        `${dir}: SQLite cannot create a database there: ${(err as Error).message}`,
        'use a local file system (not NFS/SMB) for store.path',
      );
    } finally {
      rmSync(probeDir, { recursive: true, force: true });
    }
  }
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const check = db.pragma('quick_check', { simple: true }) as string;
      const mode = db.pragma('journal_mode', { simple: true }) as string;
      const sizeMb = statSync(file).size / 1e6;
      if (check !== 'ok')
        return fail(
          'store',
          `${file}: integrity check failed: ${check}`,
          'restore the latest backup (docs/operations.md)',
        );
      return ok('store', `${file} opens (${sizeMb.toFixed(1)} MB, journal ${mode}, integrity ok)`);
    } finally {
      db.close();
    }
  } catch (err) {
    return fail(
      'store',
      `${file}: cannot open: ${(err as Error).message}`,
      'check the file belongs to the service user and is a voiceguard database',
    );
  }
}

/**
 * The erasure ledger (store/erasure-ledger.ts): readable, and whether the database holds calls it
 * names (a backup restored since: the next start erases them again).
 */
export function ledgerCheck(c: Config): CheckResult {
  const path = ledgerPath(c.store.path, c.store.erasureLedger);
  if (!path) return ok('store.erasures', 'in-memory store: no erasure ledger');
  let read: ReturnType<typeof readLedger>;
  try {
    read = readLedger(path);
  } catch (err) {
    return fail(
      'store.erasures',
      (err as Error).message,
      'make the file readable by the service user: erasures are not re-applied after a restore until it is',
    );
  }
  if (read.bad.length)
    return warn(
      'store.erasures',
      `${path}: ${read.bad.length} line(s) are not erasure entries (first: line ${read.bad[0]!.line}, ${read.bad[0]!.error}); they are skipped`,
      'restore the file from a copy if lines were damaged; a torn last line after a crash is harmless',
    );
  const file = resolve(c.store.path);
  let present = 0;
  if (existsSync(file) && read.entries.length) {
    try {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      try {
        const there = db.prepare('SELECT 1 FROM calls WHERE call_id = ?');
        for (const e of read.entries) for (const id of e.callIds) if (there.get(id)) present++;
      } finally {
        db.close();
      }
    } catch {
      // the store check above reports a database that does not open
    }
  }
  if (present)
    return warn(
      'store.erasures',
      `${present} erased call(s) are back in ${file} (a backup restored?)`,
      'start voiceguard: it erases them again at start and logs privacy.erasure_reapplied',
    );
  return ok(
    'store.erasures',
    `${path}: ${read.entries.length} erasure(s) recorded, none of them in the database`,
  );
}

/** A webhook that receives call events but not erasures keeps calls an admin has erased. */
export function webhookErasureChecks(c: Config): CheckResult[] {
  return c.api.webhooks
    .filter((w) => !w.events.includes('erasure'))
    .map((w) =>
      warn(
        'api.webhooks',
        `${w.url} receives ${w.events.join(', ')} events but is not told of erasures`,
        "add 'erasure' to its events if the receiver keeps call events (GDPR Art. 19); it then gets calls.erased with the erased call ids",
      ),
    );
}

// ---------------------------------------------------------------------------------------
// Host
// ---------------------------------------------------------------------------------------

function cpuChecks(c: Config): CheckResult[] {
  const cpus = availableParallelism();
  const out: CheckResult[] = [];
  if (c.media.workers > cpus) {
    out.push(
      warn(
        'cpu',
        `media.workers is ${c.media.workers} but this machine has ${cpus} CPUs`,
        `set media.workers to at most ${cpus} (0 = automatic)`,
      ),
    );
  } else {
    out.push(
      ok(
        'cpu',
        `${cpus} CPUs; media.workers ${c.media.workers === 0 ? 'automatic' : c.media.workers}, detector.intraOpThreads ${c.detector.intraOpThreads}`,
      ),
    );
  }
  if (c.detector.intraOpThreads > cpus) {
    out.push(
      warn(
        'cpu',
        `detector.intraOpThreads is ${c.detector.intraOpThreads} but this machine has ${cpus} CPUs`,
        `set detector.intraOpThreads to at most ${cpus}`,
      ),
    );
  }
  return out;
}

/** media.fallbackCodecs G729 needs the bcg729 addon (native/g729): without it G.729-only calls go unanalysed. */
export function codecChecks(c: Config, path?: string): CheckResult[] {
  if (!c.media.fallbackCodecs.includes('G729')) return [];
  const { codec, error } = loadG729(path);
  if (codec) return [ok('g729', 'G.729 decoder loaded (bcg729): G.729-only callers are analysed')];
  return [
    warn(
      'g729',
      `no G.729 decoder: ${error}; G.729-only offers follow media.undecodable (${c.media.undecodable})`,
      'install libbcg729-dev and a C toolchain, then npm run build:g729 (or set media.fallbackCodecs: [] to silence this)',
    ),
  ];
}

/** The install's own files were written in the past: a clock before them is wrong. */
function clockCheck(): CheckResult {
  const now = Date.now();
  const here = fileURLToPath(import.meta.url);
  const builtMs = statSync(here).mtimeMs;
  const iso = new Date(now).toISOString();
  if (now < builtMs - 60_000) {
    return fail(
      'clock',
      `system time ${iso} is before this program was installed (${new Date(builtMs).toISOString()})`,
      'set the clock and enable NTP (timedatectl set-ntp true); call times and retention depend on it',
    );
  }
  return ok('clock', `system time ${iso}`);
}

function ntpCheck(): Promise<CheckResult> {
  return new Promise((done) => {
    execFile(
      'timedatectl',
      ['show', '-p', 'NTPSynchronized', '--value'],
      { timeout: 3000 },
      (err, stdout) => {
        if (err) {
          done(
            warn(
              'clock.ntp',
              'cannot tell whether the clock is NTP-synchronised (timedatectl unavailable, e.g. in a container)',
              'make sure the host runs NTP (chrony or systemd-timesyncd)',
            ),
          );
          return;
        }
        const v = stdout.trim();
        done(
          v === 'yes'
            ? ok('clock.ntp', 'clock is NTP-synchronised')
            : warn(
                'clock.ntp',
                `clock is not NTP-synchronised (NTPSynchronized=${v})`,
                'timedatectl set-ntp true',
              ),
        );
      },
    );
  });
}

// ---------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------

const LABEL: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

export function formatReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.map(
    (c) => `${LABEL[c.status]}  ${c.name.padEnd(width)}  ${c.message}${c.fix ? ` — fix: ${c.fix}` : ''}`,
  );
  const fails = report.checks.filter((c) => c.status === 'fail').length;
  const warns = report.checks.filter((c) => c.status === 'warn').length;
  lines.push(
    fails
      ? `doctor: ${fails} problem(s) to fix, ${warns} warning(s)`
      : `doctor: no problems, ${warns} warning(s)`,
  );
  return lines.join('\n') + '\n';
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description(
      'Check the config, ports, RTP range, model, database and clock; print what to fix (exit 1 on any FAIL)',
    )
    .option(
      '-c, --config <file>',
      'config file (default: VOICEGUARD_CONFIG, voiceguard.yaml or /etc/voiceguard/voiceguard.yaml)',
    )
    .option('--json', 'print the checks as JSON')
    .action(async (opts: { config?: string; json?: boolean }) => {
      const report = await runDoctor({ configFile: opts.config });
      process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
      process.exitCode = report.ok ? 0 : 1;
    });
}
