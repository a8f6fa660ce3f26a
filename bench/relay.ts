/**
 * RTP relay benchmark (`npm run bench:relay`): N concurrent calls, 50 packets/s each way, on
 * 127.0.0.1. The relay under test runs in a child process (one relay thread, in-thread mode),
 * so its CPU time is measured alone; the generator and sinks run here. Baseline in the same
 * run: a bare dgram forwarder (connected sockets, no latching, stats, fork or inject logic).
 * Third row: the relay terminating SRTP on every caller leg (decrypt what the caller sends,
 * encrypt what goes to it; media.srtp: terminate), the generator speaking SRTP on that side, in
 * AES_CM_128_HMAC_SHA1_80; fourth row: the same in AEAD_AES_128_GCM (RFC 7714); fifth row: plain
 * RTP in G.729 (20-byte payloads, two frames per packet), whose fork (BENCH_FORK=1) decodes it
 * through bcg729 (native/g729) instead of the G.711 table.
 * Env: BENCH_CALLS (default 100), BENCH_SECONDS (default 10), BENCH_FORK=1 (fork every call).
 */
import dgram from 'node:dgram';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigSchema } from '../src/config/schema.js';
import { silentLogger } from '../src/log.js';
import { createMediaRelay } from '../src/media/media-relay.js';
import { SrtpContext, srtpKeySaltBytes, type SrtpKey } from '../src/media/srtp.js';

type Mode = 'bare' | 'relay' | 'srtp' | 'srtp-gcm' | 'g729';
/** The generator's and the relay's SRTP keys for the caller leg (the same for every call), per mode. */
function srtpKeys(mode: Mode): { caller: SrtpKey; relay: SrtpKey } | null {
  if (mode !== 'srtp' && mode !== 'srtp-gcm') return null;
  const suite = mode === 'srtp' ? 'AES_CM_128_HMAC_SHA1_80' : 'AEAD_AES_128_GCM';
  const n = srtpKeySaltBytes(suite);
  return { caller: { suite, keySalt: Buffer.alloc(n, 7) }, relay: { suite, keySalt: Buffer.alloc(n, 9) } };
}
interface ChildReady {
  t: 'ready';
  /** Per call: the ports the a-side and b-side generators send to. */
  ports: { a: number; b: number }[];
}
interface ChildCpu {
  t: 'cpu';
  userUs: number;
  systemUs: number;
}

const PKT = 172; // 12-byte header + 160 bytes of G.711
const PKT_G729 = 32; // 12-byte header + two 10-byte G.729 frames
const packetBytes = (mode: Mode) => (mode === 'g729' ? PKT_G729 : PKT);

async function child(mode: Mode): Promise<void> {
  const send = (m: unknown) => process.send!(m);
  let cpu0 = process.cpuUsage();
  process.on(
    'message',
    async (m: { t: string; calls?: number; sinks?: { a: number; b: number }[]; fork?: boolean }) => {
      if (m.t === 'start' && m.sinks) {
        const ports: { a: number; b: number }[] = [];
        if (mode !== 'bare') {
          const cfg = ConfigSchema.parse({
            media: {
              bindHost: '127.0.0.1',
              portMin: 46000,
              portMax: 49999,
              workers: 1,
              callsPerWorker: 100_000,
            },
          }).media;
          const relay = await createMediaRelay(cfg, silentLogger, { inThread: true });
          for (const sink of m.sinks) {
            const s = await relay.allocate('bench');
            const pmap: Record<number, string> = mode === 'g729' ? { 18: 'g729' } : { 0: 'pcmu' };
            s.setPayloadMap('a', pmap);
            s.setPayloadMap('b', pmap);
            s.setRemote('a', { address: '127.0.0.1', rtpPort: sink.a });
            s.setRemote('b', { address: '127.0.0.1', rtpPort: sink.b });
            const keys = srtpKeys(mode);
            if (keys) s.setSrtp('a', { remote: keys.caller, local: keys.relay });
            if (m.fork) s.startFork(() => undefined);
            ports.push({ a: s.local('a').rtpPort, b: s.local('b').rtpPort });
          }
        } else {
          const bind = () =>
            new Promise<dgram.Socket>((resolve) => {
              const sock = dgram.createSocket('udp4');
              sock.bind(0, '127.0.0.1', () => resolve(sock));
            });
          for (const sink of m.sinks) {
            const sa = await bind();
            const sb = await bind();
            // Bare forwarder: what arrives on sa goes out of sb to the b peer, and back.
            await new Promise<void>((r) => sa.connect(sink.a, '127.0.0.1', () => r()));
            await new Promise<void>((r) => sb.connect(sink.b, '127.0.0.1', () => r()));
            sa.on('message', (msg) => sb.send(msg));
            sb.on('message', (msg) => sa.send(msg));
            ports.push({ a: sa.address().port, b: sb.address().port });
          }
        }
        send({ t: 'ready', ports } satisfies ChildReady);
      } else if (m.t === 'cpu-start') {
        cpu0 = process.cpuUsage();
        send({ t: 'cpu-started' });
      } else if (m.t === 'cpu-stop') {
        const d = process.cpuUsage(cpu0);
        send({ t: 'cpu', userUs: d.user, systemUs: d.system } satisfies ChildCpu);
      } else if (m.t === 'exit') {
        process.exit(0);
      }
    },
  );
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function run(mode: Mode, calls: number, seconds: number, forkOn: boolean) {
  const proc = fork(fileURLToPath(import.meta.url), ['--child', mode], { stdio: 'inherit' });
  const ask = <T>(msg: unknown, t: string) =>
    new Promise<T>((resolve) => {
      const on = (m: { t: string }) => {
        if (m.t === t) {
          proc.off('message', on);
          resolve(m as T);
        }
      };
      proc.on('message', on);
      proc.send(msg as object);
    });
  const bind = () =>
    new Promise<dgram.Socket>((resolve) => {
      const sock = dgram.createSocket('udp4');
      sock.bind(0, '127.0.0.1', () => resolve(sock));
    });
  const gens: { a: dgram.Socket; b: dgram.Socket }[] = [];
  for (let i = 0; i < calls; i++) gens.push({ a: await bind(), b: await bind() });
  const ready = await ask<ChildReady>(
    { t: 'start', sinks: gens.map((g) => ({ a: g.a.address().port, b: g.b.address().port })), fork: forkOn },
    'ready',
  );
  const latencies: number[] = [];
  let received = 0;
  let sent = 0;
  let measuring = false;
  const onMsg = (msg: Buffer) => {
    if (!measuring || msg.length < packetBytes(mode)) return;
    received++;
    latencies.push(performance.now() - msg.readDoubleLE(12));
  };
  // The caller side speaks SRTP in the srtp mode: one context per call and direction.
  const keys = srtpKeys(mode);
  const srtp = keys !== null;
  const callerTx = keys ? gens.map(() => new SrtpContext(keys.caller)) : [];
  const callerRx = keys ? gens.map(() => new SrtpContext(keys.relay)) : [];
  gens.forEach((g, i) => {
    g.a.on('message', (msg: Buffer) => {
      if (!srtp) return onMsg(msg);
      const plain = callerRx[i]!.unprotectRtp(msg);
      if (plain) onMsg(plain);
    });
    g.b.on('message', onMsg);
  });
  for (let i = 0; i < calls; i++) {
    await new Promise<void>((r) => gens[i].a.connect(ready.ports[i].a, '127.0.0.1', () => r()));
    await new Promise<void>((r) => gens[i].b.connect(ready.ports[i].b, '127.0.0.1', () => r()));
  }
  let seq = 0;
  const pkt = Buffer.alloc(packetBytes(mode), 0xff);
  pkt[0] = 0x80;
  if (mode === 'g729') pkt[1] = 18;
  const tick = () => {
    seq = (seq + 1) & 0xffff;
    for (let i = 0; i < calls; i++) {
      for (const [side, sock] of [
        ['a', gens[i].a],
        ['b', gens[i].b],
      ] as const) {
        const p = Buffer.from(pkt);
        p.writeUInt16BE(seq, 2);
        p.writeUInt32BE(seq * 160, 4);
        p.writeUInt32BE(side === 'a' ? i * 2 + 1 : i * 2 + 2, 8);
        p.writeDoubleLE(performance.now(), 12);
        sock.send(srtp && side === 'a' ? callerTx[i]!.protectRtp(p) : p);
        if (measuring) sent++;
      }
    }
  };
  const timer = setInterval(tick, 20);
  await new Promise((r) => setTimeout(r, 1000)); // warm-up: latching, JIT
  await ask({ t: 'cpu-start' }, 'cpu-started');
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const wallMs = performance.now() - t0;
  const cpu = await ask<ChildCpu>({ t: 'cpu-stop' }, 'cpu');
  clearInterval(timer);
  await new Promise((r) => setTimeout(r, 200));
  proc.send({ t: 'exit' });
  for (const g of gens) {
    g.a.close();
    g.b.close();
  }
  latencies.sort((x, y) => x - y);
  const cpuUs = cpu.userUs + cpu.systemUs;
  const usPerPacket = cpuUs / Math.max(1, received);
  const cpuShare = cpuUs / (wallMs * 1000);
  return {
    mode,
    calls,
    seconds,
    fork: forkOn,
    packetsSent: sent,
    packetsReceived: received,
    lossPct: sent === 0 ? NaN : Math.max(0, (100 * (sent - received)) / sent),
    cpuSharePct: 100 * cpuShare,
    cpuUsPerPacket: usPerPacket,
    // One thread at 80 % busy; each call is 100 relayed packets per second (50 each way).
    maxCallsPerThreadAt80Pct: Math.floor((0.8 * 1e6) / (usPerPacket * 100)),
    latencyMsP50: pct(latencies, 50),
    latencyMsP99: pct(latencies, 99),
  };
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--child');
  if (i >= 0) return child(process.argv[i + 1] as Mode);
  const calls = Number(process.env.BENCH_CALLS ?? 100);
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const forkOn = process.env.BENCH_FORK === '1';
  const baseline = await run('bare', calls, seconds, false);
  const relay = await run('relay', calls, seconds, forkOn);
  const srtpRelay = await run('srtp', calls, seconds, forkOn);
  const gcmRelay = await run('srtp-gcm', calls, seconds, forkOn);
  const g729Relay = await run('g729', calls, seconds, forkOn);
  const result = {
    bench: 'relay',
    node: process.version,
    baseline,
    relay,
    addedLatencyMsP50: relay.latencyMsP50 - baseline.latencyMsP50,
    addedLatencyMsP99: relay.latencyMsP99 - baseline.latencyMsP99,
    cpuRatioVsBaseline: relay.cpuUsPerPacket / baseline.cpuUsPerPacket,
    srtp: srtpRelay,
    srtpCpuRatioVsRelay: srtpRelay.cpuUsPerPacket / relay.cpuUsPerPacket,
    srtpGcm: gcmRelay,
    srtpGcmCpuRatioVsRelay: gcmRelay.cpuUsPerPacket / relay.cpuUsPerPacket,
    g729: g729Relay,
    g729CpuRatioVsRelay: g729Relay.cpuUsPerPacket / relay.cpuUsPerPacket,
  };
  console.log(JSON.stringify(result, null, 2));
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  console.log('\nmode     calls  sent     recv     loss%  cpu%   us/pkt  calls/thread@80%  p50ms  p99ms');
  for (const r of [baseline, relay, srtpRelay, gcmRelay, g729Relay]) {
    console.log(
      `${r.mode.padEnd(8)} ${String(r.calls).padStart(5)}  ${String(r.packetsSent).padStart(7)}  ${String(r.packetsReceived).padStart(7)}  ${f(r.lossPct).padStart(5)}  ${f(r.cpuSharePct, 1).padStart(5)}  ${f(r.cpuUsPerPacket).padStart(6)}  ${String(r.maxCallsPerThreadAt80Pct).padStart(16)}  ${f(r.latencyMsP50, 3).padStart(5)}  ${f(r.latencyMsP99, 3).padStart(5)}`,
    );
  }
}

await main();
