/**
 * Whole-gateway benchmark (`npm run bench:gateway`): what one voiceguard process costs per call on
 * this machine, SIP, relay and detector together.
 *
 * A real gateway runs as a child process (`dist/src/cli/main.js serve`, its own SQLite store in a
 * temp dir, log level info to a file). This process plays the trunk and the PBX over UDP on
 * 127.0.0.1 with hand-written SIP: it keeps BENCH_CALLS calls up at all times, each held
 * BENCH_HOLD_S seconds and then replaced by a new one (BYE, then INVITE), so calls arrive at
 * BENCH_CALLS / BENCH_HOLD_S per second and every new call is analysed from its first second. The
 * caller side of each call plays the committed test fixtures (3 human, 3 synthetic clips, looped)
 * as PCMU at 50 packets/s; the PBX side sends PCMU silence back. BENCH_CODEC=g729 makes both sides
 * offer and send G.729 instead (the clips encoded with bcg729, native/g729), which the gateway
 * decodes for the detector.
 *
 * Two runs of the same load, one after the other:
 * - baseline: analysis off (`policy.defaults.analyse: false`): SIP + relay only;
 * - analysed: the default detector path (VAD, windows, ONNX, SPRT), policy actions set to `log`
 *   so no tone is injected (injection renumbers the stream that the latency is measured on).
 * It first measures the idle gateway for 3 s, then starts the calls spread over one hold time and
 * measures BENCH_SECONDS: the gateway's CPU time (all its threads, from /proc; per call after the
 * idle share is taken off; calls per core at 80 % = (800 ms - idle) / that), its peak RSS, relay
 * latency and loss in both directions, calls set up and failed, verdicts and their decision time
 * (from its log), and detector windows and fork frames shed (from its /metrics).
 * It also reports the RSS at the start and end of the window and the growth per call in between:
 * a soak run (BENCH_SECONDS=600, BENCH_HOLD_S=6: about 10,000 calls) shows whether memory levels off.
 * Env: BENCH_CALLS (default 100), BENCH_HOLD_S (default 12), BENCH_SECONDS (default 20),
 * BENCH_MODES (default "baseline,analysed"), BENCH_CODEC (pcmu or g729, default pcmu).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { encodeMuLaw } from '../src/audio/g711.js';
import { loadG729 } from '../src/audio/g729.js';
import { decodeWav } from '../src/audio/wav.js';
import { audioSdp, G729, headerLines, headerValue, PCMU, sdpAudioPort } from './sip-text.js';

export type Mode = 'baseline' | 'analysed';

const FIXTURES = [
  'human-librispeech-1.wav',
  'human-librispeech-2.wav',
  'human-fsdd-1.wav',
  'synthetic-tortoise-1.wav',
  'synthetic-mandarin-fastspeech2-vocgan-1.wav',
  'synthetic-mimic3-1.wav',
];
const FRAME = 160; // 20 ms of 8 kHz audio
const CODEC = process.env.BENCH_CODEC === 'g729' ? 'g729' : 'pcmu';
const SDP_CODEC = CODEC === 'g729' ? G729 : PCMU;
const CLK_TCK = 100; // Linux USER_HZ for /proc/<pid>/stat

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function bindUdp(port = 0): Promise<dgram.Socket> {
  return new Promise((res, rej) => {
    const s = dgram.createSocket('udp4');
    s.once('error', rej);
    s.bind(port, '127.0.0.1', () => res(s));
  });
}

async function freePort(): Promise<number> {
  const s = await bindUdp();
  const p = s.address().port;
  s.close();
  return p;
}

/** utime + stime of a process, all threads, in ms. */
function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function procRssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** 20 ms of 8 kHz 16-bit audio as one RTP payload in CODEC (PCMU: 160 bytes; G.729: 20). */
function encoder(): (pcm: Int16Array) => Uint8Array {
  if (CODEC === 'pcmu') return encodeMuLaw;
  const { codec, error } = loadG729();
  if (!codec) throw new Error(`BENCH_CODEC=g729 needs the G.729 codec: ${error}`);
  const enc = new codec.G729Encoder();
  return (pcm) => enc.encode(pcm);
}

/** The committed fixtures as RTP payloads in CODEC, one array of 20 ms frames per clip. */
function loadAudio(): Buffer[][] {
  const encode = encoder();
  return FIXTURES.map((f) => {
    const a = decodeWav(readFileSync(resolve('test/fixtures', f)));
    const pcm = new Int16Array(a.samples.length);
    for (let i = 0; i < pcm.length; i++)
      pcm[i] = Math.max(-32768, Math.min(32767, Math.round((a.samples[i] ?? 0) * 32767)));
    const frames: Buffer[] = [];
    for (let o = 0; o + FRAME <= pcm.length; o += FRAME)
      frames.push(Buffer.from(encode(pcm.subarray(o, o + FRAME))));
    return frames;
  });
}

/** Sum of the samples of one metric in the gateway's /metrics. */
async function metric(apiPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name} `)) sum += Number(line.split(' ')[1]);
  return sum;
}

function message(startLine: string, headers: string[], body = ''): Buffer {
  const ct = body ? ['Content-Type: application/sdp'] : [];
  return Buffer.from(
    [startLine, ...headers, ...ct, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join('\r\n'),
  );
}

interface Leg {
  sock: dgram.Socket;
  /** The gateway's RTP port for this leg (from its SDP), once known. */
  remote: number | null;
  ssrc: number;
  seq: number;
  ts: number;
  /** Send time per sequence number, for the latency on the opposite leg. */
  sentAt: Float64Array;
}

interface Slot {
  index: number;
  caller: Leg;
  pbx: Leg;
  generation: number;
  callId: string | null;
  state: 'idle' | 'inviting' | 'up' | 'ending';
  fromTag: string;
  toTag: string | null;
  gwContact: string | null;
  answeredAtMs: number;
  clip: number;
  frame: number;
  cseq: number;
}

/** One mode's figures, as the JSON on stdout gives them (`results`). */
export interface RunResult {
  mode: Mode;
  calls: number;
  holdS: number;
  seconds: number;
  callsSetUp: number;
  callsFailed: number;
  gatewayCpuPct: number;
  /** The gateway's CPU before any call, % of one core. */
  idleCpuPct: number;
  /** (CPU in the window - idle CPU) per call and second of wall time, ms. */
  cpuMsPerCallSecond: number;
  rssMb: number;
  /**
   * Memory over the measured window: mean RSS of its first and last fifth (sampled each second), and
   * the growth per call set up in between. A leak shows as growth that does not level off on a
   * long run (BENCH_SECONDS=600); short runs include the heap's warm-up.
   */
  rssStartMb: number;
  rssEndMb: number;
  rssGrowthKbPerCall: number;
  /** Mean RSS of each tenth of the window, MB: levels off, or keeps climbing. */
  rssTimelineMb: number[];
  packetsSent: number;
  packetsReceived: number;
  lossPct: number;
  latencyMsP50: number;
  latencyMsP99: number;
  verdicts: Record<string, number>;
  /** The codec each verdict's log line names (the one the caller's audio was decoded from). */
  verdictCodecs: Record<string, number>;
  /** Over the whole run, not only the measured window: detector windows scored, calls answered in the codec. */
  windowsScored: number;
  answeredInCodec: number;
  decisionMsP50: number;
  decisionMsP90: number;
  /** Detector windows plus fork frames shed in the window (overload: analysis skipped, calls go on). */
  windowsShed: number;
  generatorCpuPct: number;
}

async function run(
  mode: Mode,
  calls: number,
  holdS: number,
  seconds: number,
  audio: Buffer[][],
): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'vg-bench-gw-'));
  const uac = await bindUdp();
  const uas = await bindUdp();
  const slots: Slot[] = [];
  // Generator sockets are bound before the gateway starts, so its port pool skips them.
  for (let i = 0; i < calls; i++) {
    const mk = async (): Promise<Leg> => ({
      sock: await bindUdp(),
      remote: null,
      ssrc: 0,
      seq: 0,
      ts: 0,
      sentAt: new Float64Array(65536),
    });
    slots.push({
      index: i,
      caller: await mk(),
      pbx: await mk(),
      generation: 0,
      callId: null,
      state: 'idle',
      fromTag: '',
      toTag: null,
      gwContact: null,
      answeredAtMs: 0,
      clip: i % audio.length,
      frame: 0,
      cseq: 1,
    });
  }
  const sipPort = await freePort();
  const apiPort = await freePort();
  const cfg = {
    sip: {
      listen: { host: '127.0.0.1', port: sipPort, transports: ['udp'] },
      pbx: { host: '127.0.0.1', port: uas.address().port, transport: 'udp' },
      drainTimeoutMs: 0,
    },
    media: { bindHost: '127.0.0.1', portMin: 40000, portMax: 44999 },
    api: { host: '127.0.0.1', port: apiPort },
    store: { path: join(dir, 'voiceguard.sqlite') },
    log: { level: 'info' },
    policy: {
      // Only log: an action (a warn tone, a drop) would change the load being measured. The callers
      // loop six clips, so the repeated-audio check finds repeats and does its full work.
      defaults: {
        analyse: mode === 'analysed',
        onSynthetic: 'log',
        onUnsure: 'log',
        onError: 'log',
        onRepeat: 'log',
      },
    },
  };
  const cfgPath = join(dir, 'voiceguard.json');
  writeFileSync(cfgPath, JSON.stringify(cfg));
  const logPath = join(dir, 'gateway.log');
  const logFd = openSync(logPath, 'w');
  const child: ChildProcess = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', '-c', cfgPath], {
    stdio: ['ignore', logFd, logFd],
  });
  const pid = child.pid!;
  const started = Date.now();
  while (!readFileSync(logPath, 'utf8').includes('"event":"sip.listening"')) {
    if (child.exitCode !== null || Date.now() - started > 30_000)
      throw new Error(`gateway did not start:\n${readFileSync(logPath, 'utf8').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  let measuring = false;
  let sent = 0;
  let received = 0;
  let setUp = 0;
  let failed = 0;
  const latencies: number[] = [];
  const byCallId = new Map<string, Slot>();
  const gw = `127.0.0.1:${sipPort}`;
  const uacAddr = `127.0.0.1:${uac.address().port}`;
  const uasAddr = `127.0.0.1:${uas.address().port}`;

  const onRtp = (slot: Slot, leg: 'caller' | 'pbx') => (msg: Buffer) => {
    if (!measuring || msg.length < 12) return;
    // What arrives at the caller was sent by the PBX side, and the other way round.
    const from = leg === 'caller' ? slot.pbx : slot.caller;
    const t = from.sentAt[msg.readUInt16BE(2)] ?? 0;
    received++;
    if (t > 0) latencies.push(performance.now() - t);
  };
  for (const s of slots) {
    s.caller.sock.on('message', onRtp(s, 'caller'));
    s.pbx.sock.on('message', onRtp(s, 'pbx'));
  }

  let stopped = false;
  const invite = (s: Slot) => {
    if (stopped) return;
    s.generation++;
    s.callId = `bench-${mode}-${s.index}-${s.generation}`;
    s.fromTag = `f${s.index}g${s.generation}`;
    s.toTag = null;
    s.state = 'inviting';
    s.cseq = 1;
    s.caller.remote = null;
    s.pbx.remote = null;
    s.caller.ssrc = (s.index * 1000 + s.generation * 2 + 1) >>> 0;
    s.pbx.ssrc = (s.index * 1000 + s.generation * 2 + 2) >>> 0;
    s.clip = (s.clip + 1) % audio.length;
    s.frame = 0;
    byCallId.set(s.callId, s);
    uac.send(
      message(
        `INVITE sip:1000@${gw} SIP/2.0`,
        [
          `Via: SIP/2.0/UDP ${uacAddr};branch=z9hG4bK-${s.callId};rport`,
          `From: <sip:+4930555${String(s.index).padStart(4, '0')}@127.0.0.1>;tag=${s.fromTag}`,
          `To: <sip:1000@127.0.0.1>`,
          `Call-ID: ${s.callId}`,
          'CSeq: 1 INVITE',
          `Contact: <sip:caller@${uacAddr}>`,
          'Max-Forwards: 70',
        ],
        audioSdp(s.caller.sock.address().port, 'bench', s.index, SDP_CODEC),
      ),
      sipPort,
      '127.0.0.1',
    );
    const gen = s.generation;
    setTimeout(() => {
      if (s.generation === gen && s.state === 'inviting') {
        failed++;
        s.state = 'idle';
        invite(s);
      }
    }, 5000).unref();
  };

  const bye = (s: Slot) => {
    if (stopped || s.state !== 'up' || !s.gwContact) return;
    s.state = 'ending';
    s.cseq++;
    uac.send(
      message(`BYE ${s.gwContact} SIP/2.0`, [
        `Via: SIP/2.0/UDP ${uacAddr};branch=z9hG4bK-${s.callId}-bye;rport`,
        `From: <sip:+4930555${String(s.index).padStart(4, '0')}@127.0.0.1>;tag=${s.fromTag}`,
        `To: <sip:1000@127.0.0.1>;tag=${s.toTag ?? ''}`,
        `Call-ID: ${s.callId}`,
        `CSeq: ${s.cseq} BYE`,
        'Max-Forwards: 70',
      ]),
      sipPort,
      '127.0.0.1',
    );
  };

  // The trunk side: responses to our INVITEs and BYEs; a BYE from the gateway is answered.
  uac.on('message', (buf) => {
    const msg = buf.toString();
    const callId = headerValue(msg, ['call-id']) ?? '';
    const s = byCallId.get(callId);
    if (msg.startsWith('SIP/2.0 ')) {
      const status = Number(msg.slice(8, 11));
      const cseq = headerValue(msg, ['cseq']) ?? '';
      if (!s) return;
      if (cseq.endsWith('INVITE') && status >= 200) {
        const to = headerValue(msg, ['to']) ?? '';
        const contact = /<([^>]+)>/.exec(headerValue(msg, ['contact']) ?? '')?.[1] ?? null;
        if (status < 300) {
          s.toTag = /;tag=([^;>\s]+)/.exec(to)?.[1] ?? null;
          s.gwContact = contact;
          uac.send(
            message(`ACK ${contact ?? `sip:1000@${gw}`} SIP/2.0`, [
              `Via: SIP/2.0/UDP ${uacAddr};branch=z9hG4bK-${callId}-ack;rport`,
              `From: <sip:+4930555${String(s.index).padStart(4, '0')}@127.0.0.1>;tag=${s.fromTag}`,
              `To: ${to}`,
              `Call-ID: ${callId}`,
              'CSeq: 1 ACK',
              'Max-Forwards: 70',
            ]),
            sipPort,
            '127.0.0.1',
          );
          if (s.state === 'inviting') {
            s.caller.remote = sdpAudioPort(msg);
            s.state = 'up';
            s.answeredAtMs = performance.now();
            if (measuring) setUp++;
            const gen = s.generation;
            setTimeout(() => {
              if (s.generation === gen) bye(s);
            }, holdS * 1000).unref();
          }
        } else if (s.state === 'inviting') {
          if (measuring) failed++;
          s.state = 'idle';
          setTimeout(() => invite(s), 100).unref();
        }
      } else if (cseq.endsWith('BYE') && status >= 200 && s.state === 'ending') {
        byCallId.delete(callId);
        s.state = 'idle';
        invite(s);
      }
      return;
    }
    if (msg.startsWith('BYE ')) {
      uac.send(
        message('SIP/2.0 200 OK', [
          ...headerLines(msg, ['via']),
          `From: ${headerValue(msg, ['from'])}`,
          `To: ${headerValue(msg, ['to'])}`,
          `Call-ID: ${callId}`,
          `CSeq: ${headerValue(msg, ['cseq'])}`,
        ]),
        sipPort,
        '127.0.0.1',
      );
      if (s && s.state !== 'idle') {
        if (measuring) failed++;
        byCallId.delete(callId);
        s.state = 'idle';
        invite(s);
      }
    }
  });

  // The PBX side: answer the gateway's INVITE at once with our RTP port; answer BYEs.
  const pbxCalls = new Map<string, Slot>();
  uas.on('message', (buf, rinfo) => {
    const msg = buf.toString();
    if (msg.startsWith('SIP/2.0 ')) return;
    const method = msg.slice(0, msg.indexOf(' '));
    const callId = headerValue(msg, ['call-id']) ?? '';
    const from = headerValue(msg, ['from']) ?? '';
    let to = headerValue(msg, ['to']) ?? '';
    const reply = (status: string, extra: string[] = [], body = '') =>
      uas.send(
        message(
          `SIP/2.0 ${status}`,
          [
            ...headerLines(msg, ['via']),
            `From: ${from}`,
            `To: ${to}`,
            `Call-ID: ${callId}`,
            `CSeq: ${headerValue(msg, ['cseq'])}`,
            ...extra,
          ],
          body,
        ),
        rinfo.port,
        rinfo.address,
      );
    if (method === 'INVITE') {
      const m = /\+4930555(\d{4})/.exec(from);
      const s = m ? slots[Number(m[1])] : undefined;
      if (!s) return reply('404 Not Found');
      pbxCalls.set(callId, s);
      s.pbx.remote = sdpAudioPort(msg);
      if (!/;tag=/.test(to)) to = `${to};tag=pbx${s.index}g${s.generation}`;
      reply(
        '200 OK',
        [`Contact: <sip:pbx@${uasAddr}>`],
        audioSdp(s.pbx.sock.address().port, 'bench', s.index, SDP_CODEC),
      );
    } else if (method === 'BYE' || method === 'CANCEL') {
      pbxCalls.delete(callId);
      reply('200 OK');
    } else if (method !== 'ACK') {
      reply('200 OK');
    }
  });

  const silence = Buffer.from(encoder()(new Int16Array(FRAME)));
  const sendRtp = (leg: Leg, payload: Buffer) => {
    if (leg.remote === null) return;
    leg.seq = (leg.seq + 1) & 0xffff;
    leg.ts = (leg.ts + FRAME) >>> 0;
    const p = Buffer.allocUnsafe(12 + payload.length);
    p[0] = 0x80;
    p[1] = SDP_CODEC.pt;
    p.writeUInt16BE(leg.seq, 2);
    p.writeUInt32BE(leg.ts, 4);
    p.writeUInt32BE(leg.ssrc, 8);
    payload.copy(p, 12);
    leg.sentAt[leg.seq] = performance.now();
    leg.sock.send(p, leg.remote, '127.0.0.1');
    if (measuring) sent++;
  };
  const timer = setInterval(() => {
    for (const s of slots) {
      if (s.state !== 'up') continue;
      const clip = audio[s.clip] ?? [];
      sendRtp(s.caller, clip[s.frame % clip.length] ?? silence);
      s.frame++;
      sendRtp(s.pbx, silence);
    }
  }, 20);

  // The gateway's own CPU with no calls (timers, store, GC), to separate it from the per-call cost.
  await new Promise((r) => setTimeout(r, 1000));
  const idle0 = procCpuMs(pid);
  const idleT0 = performance.now();
  await new Promise((r) => setTimeout(r, 3000));
  const idlePct = (100 * (procCpuMs(pid) - idle0)) / (performance.now() - idleT0);
  // Start the calls spread over one hold time, so their ends are spread too.
  for (const s of slots) {
    invite(s);
    await new Promise((r) => setTimeout(r, (holdS * 1000) / calls));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const logBefore = readFileSync(logPath, 'utf8').length;
  const shed0 =
    (await metric(apiPort, 'voiceguard_detector_windows_shed_total')) +
    (await metric(apiPort, 'voiceguard_fork_frames_shed_total'));
  const cpu0 = procCpuMs(pid);
  const gen0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  let rssMax = 0;
  const rssSamples: { rss: number; setUp: number }[] = [];
  const rssTimer = setInterval(() => {
    const rss = procRssMb(pid);
    rssMax = Math.max(rssMax, rss);
    rssSamples.push({ rss, setUp });
  }, 1000);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  clearInterval(rssTimer);
  const wallMs = performance.now() - t0;
  const cpuMs = procCpuMs(pid) - cpu0;
  const genCpu = process.cpuUsage(gen0);
  rssMax = Math.max(rssMax, procRssMb(pid));
  const fifth = Math.max(1, Math.floor(rssSamples.length / 5));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const head = rssSamples.slice(0, fifth);
  const tail = rssSamples.slice(-fifth);
  const rssStartMb = mean(head.map((x) => x.rss));
  const rssEndMb = mean(tail.map((x) => x.rss));
  const callsBetween = mean(tail.map((x) => x.setUp)) - mean(head.map((x) => x.setUp));
  clearInterval(timer);
  const logText = readFileSync(logPath, 'utf8').slice(logBefore);
  const shed =
    (await metric(apiPort, 'voiceguard_detector_windows_shed_total')) +
    (await metric(apiPort, 'voiceguard_fork_frames_shed_total')) -
    shed0;
  // Over the whole run (the gateway is started for it): detector windows scored, calls answered in CODEC.
  const windowsScored = await metric(apiPort, 'voiceguard_detector_windows_scored_total');
  const answeredInCodec = await metric(apiPort, `voiceguard_calls_answered_total{codec="${CODEC}"}`);
  // Hang up what is left (no new calls), then stop the gateway.
  for (const s of slots) bye(s);
  stopped = true;
  await new Promise((r) => setTimeout(r, 1000));
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  closeSync(logFd);
  uac.close();
  uas.close();
  for (const s of slots) {
    s.caller.sock.close();
    s.pbx.sock.close();
  }
  const verdicts: Record<string, number> = {};
  const verdictCodecs: Record<string, number> = {};
  const decisions: number[] = [];
  for (const line of logText.split('\n')) {
    if (!line.startsWith('{')) continue;
    let o: { event?: string; verdict?: string; decisionMs?: number; codec?: string | null };
    try {
      o = JSON.parse(line) as typeof o;
    } catch {
      continue;
    }
    if (o.event === 'call.verdict' && o.verdict) {
      verdicts[o.verdict] = (verdicts[o.verdict] ?? 0) + 1;
      const codec = String(o.codec ?? 'none');
      verdictCodecs[codec] = (verdictCodecs[codec] ?? 0) + 1;
      if (typeof o.decisionMs === 'number') decisions.push(o.decisionMs);
    }
  }
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((x, y) => x - y);
  decisions.sort((x, y) => x - y);
  return {
    mode,
    calls,
    holdS,
    seconds,
    callsSetUp: setUp,
    callsFailed: failed,
    gatewayCpuPct: (100 * cpuMs) / wallMs,
    idleCpuPct: idlePct,
    cpuMsPerCallSecond: Math.max(0, cpuMs - (idlePct / 100) * wallMs) / ((calls * wallMs) / 1000),
    rssMb: rssMax,
    rssStartMb,
    rssEndMb,
    rssGrowthKbPerCall: callsBetween > 0 ? ((rssEndMb - rssStartMb) * 1024) / callsBetween : NaN,
    rssTimelineMb: Array.from({ length: 10 }, (_, k) =>
      Math.round(
        mean(
          rssSamples
            .slice(Math.floor((k * rssSamples.length) / 10), Math.floor(((k + 1) * rssSamples.length) / 10))
            .map((x) => x.rss),
        ),
      ),
    ),
    packetsSent: sent,
    packetsReceived: received,
    lossPct: sent === 0 ? NaN : Math.max(0, (100 * (sent - received)) / sent),
    latencyMsP50: pct(latencies, 50),
    latencyMsP99: pct(latencies, 99),
    verdicts,
    verdictCodecs,
    windowsScored,
    answeredInCodec,
    decisionMsP50: pct(decisions, 50),
    decisionMsP90: pct(decisions, 90),
    windowsShed: shed,
    generatorCpuPct: (100 * (genCpu.user + genCpu.system)) / 1000 / wallMs,
  };
}

async function main(): Promise<void> {
  const calls = Number(process.env.BENCH_CALLS ?? 100);
  const holdS = Number(process.env.BENCH_HOLD_S ?? 12);
  const seconds = Number(process.env.BENCH_SECONDS ?? 20);
  const modes = (process.env.BENCH_MODES ?? 'baseline,analysed').split(',') as Mode[];
  if (!(calls >= 1 && calls <= 2000) || !(holdS >= 2) || !(seconds >= 1))
    throw new Error('BENCH_CALLS must be 1-2000, BENCH_HOLD_S at least 2, BENCH_SECONDS at least 1');
  const audio = loadAudio();
  const results: RunResult[] = [];
  for (const m of modes) results.push(await run(m, calls, holdS, seconds, audio));
  const base = results.find((r) => r.mode === 'baseline');
  const an = results.find((r) => r.mode === 'analysed');
  console.log(
    JSON.stringify(
      {
        bench: 'gateway',
        node: process.version,
        codec: CODEC,
        results,
        ...(base && an
          ? {
              detectorCpuMsPerCallSecond: an.cpuMsPerCallSecond - base.cpuMsPerCallSecond,
              cpuRatioVsBaseline: an.cpuMsPerCallSecond / base.cpuMsPerCallSecond,
              addedLatencyMsP99: an.latencyMsP99 - base.latencyMsP99,
            }
          : {}),
      },
      null,
      2,
    ),
  );
  const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  console.log(
    '\nmode      calls  cps   set up  failed  idle cpu%  gw cpu%  cpu ms/call-s  calls/core@80%  rss MB  loss%  p50 ms  p99 ms  verdicts (s/h/u)  decision p50/p90 s  shed',
  );
  for (const r of results) {
    const v = `${r.verdicts.synthetic ?? 0}/${r.verdicts.human ?? 0}/${r.verdicts.unsure ?? 0}`;
    console.log(
      [
        r.mode.padEnd(8),
        String(r.calls).padStart(6),
        f(r.calls / r.holdS, 1).padStart(5),
        String(r.callsSetUp).padStart(7),
        String(r.callsFailed).padStart(7),
        f(r.idleCpuPct, 1).padStart(10),
        f(r.gatewayCpuPct, 1).padStart(8),
        f(r.cpuMsPerCallSecond, 3).padStart(14),
        String(Math.floor((800 - 10 * r.idleCpuPct) / r.cpuMsPerCallSecond)).padStart(15),
        f(r.rssMb, 0).padStart(7),
        f(r.lossPct).padStart(6),
        f(r.latencyMsP50, 2).padStart(7),
        f(r.latencyMsP99, 2).padStart(7),
        v.padStart(17),
        `${f(r.decisionMsP50 / 1000, 1)}/${f(r.decisionMsP90 / 1000, 1)}`.padStart(19),
        String(r.windowsShed).padStart(5),
      ].join(' '),
    );
  }
  console.log(
    `\nMemory over the measured ${seconds} s (mean RSS of its first and last fifth; growth per call set up between): ${results
      .map(
        (r) =>
          `${r.mode} ${f(r.rssStartMb, 0)} -> ${f(r.rssEndMb, 0)} MB, ${f(r.rssGrowthKbPerCall, 2)} KB per call (by tenths: ${r.rssTimelineMb.join(' ')})`,
      )
      .join('; ')}.`,
  );
  console.log(
    `\nGenerator (this process) CPU: ${results.map((r) => `${r.mode} ${f(r.generatorCpuPct, 1)}%`).join(', ')}; on a 2-core machine it competes with the gateway.`,
  );
}

await main();
