import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encodeG711FromFloat } from '../src/audio/g711.js';
import { buildUdpFrame } from '../src/audio/pcap-writer.js';
import { parseCapture, scanCapture } from '../src/audio/pcap.js';
import { extractRtpStreams, RtpStreamCollector, type RtpStreamInfo } from '../src/audio/rtp-streams.js';
import { serializeRtp } from '../src/media/rtp-packet.js';

/**
 * Peak memory of turning a capture into RTP streams (what `voiceguard analyze FILE.pcap` does
 * before the detector runs), each way in a fresh process:
 *
 *  - streamed: scanCapture reads the file in 4 MiB chunks and RtpStreamCollector keeps the audio
 *    payloads of the caller's stream only, once the first INVITE's offer and that stream name it;
 *    only the caller's stream is decoded (what analyze does);
 *  - streamed, all kept: every stream's payloads in per-stream pools, the caller decoded (what
 *    analyze did before it dropped the other streams; what it still does without SIP or behind NAT);
 *  - streamed, every stream decoded (analyze --all-streams);
 *  - baseline, whole file: readFile + parseCapture (every datagram in memory at once) +
 *    extractRtpStreams, every stream decoded, as analyze did before.
 *
 * The capture is one SIP INVITE, then CALLS calls of SECONDS seconds, both directions, 20 ms PCMU,
 * interleaved in time as a trunk capture would be. The decoded 8 kHz float audio of every stream (4 bytes per
 * payload byte) is part of both figures.
 */
const CALLS = Number(process.env.VG_BENCH_CALLS ?? 20);
const SECONDS = Number(process.env.VG_BENCH_SECONDS ?? 180);

export interface CaptureBenchChild {
  mode: 'streamed' | 'streamed-keep' | 'streamed-all' | 'whole' | 'idle';
  maxRssMb: number;
  ms: number;
  streams: number;
  samples: number;
}

export interface CaptureBenchResult {
  fileMb: number;
  packets: number;
  idle: CaptureBenchChild;
  streamed: CaptureBenchChild;
  streamedKeep: CaptureBenchChild;
  streamedAll: CaptureBenchChild;
  baselineWhole: CaptureBenchChild;
}

/** Writes the capture record by record (never all in memory); returns the packet count. */
export function writeCapture(path: string): number {
  const fd = openSync(path, 'w');
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(65535, 16);
  header.writeUInt32LE(1, 20);
  writeSync(fd, header);
  const t0 = 1_700_000_000_000;
  const payloads = Array.from({ length: 50 }, (_, k) => {
    const x = new Float32Array(160);
    for (let i = 0; i < 160; i++) x[i] = 0.3 * Math.sin((2 * Math.PI * (200 + 20 * k) * i) / 8000);
    return encodeG711FromFloat('pcmu', x);
  });
  // The first call's INVITE, as a trunk capture starts: its SDP names call 0's caller stream.
  const sdp =
    'v=0\r\no=- 1 1 IN IP4 10.0.0.0\r\ns=-\r\nc=IN IP4 10.0.0.0\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n';
  const invite = Buffer.from(
    `INVITE sip:100@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.0:5060;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:100@192.0.2.1>\r\nCall-ID: bench-0\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`,
  );
  const sipFrame = buildUdpFrame(
    { address: '10.0.0.0', port: 5060 },
    { address: '192.0.2.1', port: 5060 },
    invite,
  );
  const sipRec = Buffer.alloc(16);
  sipRec.writeUInt32LE(Math.floor(t0 / 1000) - 1, 0);
  sipRec.writeUInt32LE(sipFrame.length, 8);
  sipRec.writeUInt32LE(sipFrame.length, 12);
  writeSync(fd, Buffer.concat([sipRec, Buffer.from(sipFrame)]));
  let packets = 0;
  const batch: Buffer[] = [];
  const flush = (): void => {
    if (batch.length > 0) writeSync(fd, Buffer.concat(batch.splice(0)));
  };
  for (let k = 0; k < (SECONDS * 1000) / 20; k++) {
    for (let c = 0; c < CALLS; c++) {
      for (const dir of [0, 1]) {
        const rtp = serializeRtp({
          version: 2,
          padding: false,
          extension: false,
          marker: k === 0,
          payloadType: 0,
          sequenceNumber: k & 0xffff,
          timestamp: (k * 160) >>> 0,
          ssrc: (0x10000 + c * 2 + dir) >>> 0,
          csrc: [],
          payload: payloads[(k + c) % payloads.length]!,
        });
        const a = { address: `10.0.${c >> 8}.${c & 255}`, port: 20000 + c * 2 };
        const b = { address: '192.0.2.1', port: 40000 + c * 2 };
        const frame = buildUdpFrame(dir === 0 ? a : b, dir === 0 ? b : a, rtp);
        const rec = Buffer.alloc(16);
        const t = t0 + k * 20 + c * 0.01;
        rec.writeUInt32LE(Math.floor(t / 1000), 0);
        rec.writeUInt32LE(Math.round((t % 1000) * 1000), 4);
        rec.writeUInt32LE(frame.length, 8);
        rec.writeUInt32LE(frame.length, 12);
        batch.push(rec, Buffer.from(frame));
        packets++;
      }
    }
    if (batch.length > 20_000) flush();
  }
  flush();
  closeSync(fd);
  return packets;
}

async function child(mode: CaptureBenchChild['mode'], file: string): Promise<CaptureBenchChild> {
  const t = performance.now();
  let streams: RtpStreamInfo[] = [];
  let decoded: RtpStreamInfo[] = [];
  if (mode === 'streamed' || mode === 'streamed-keep' || mode === 'streamed-all') {
    const collector = new RtpStreamCollector({ audio: mode === 'streamed' ? 'caller' : 'all' });
    await scanCapture(file, (d) => collector.add(d));
    streams = collector.finish();
    decoded = mode === 'streamed-all' ? streams : streams.filter((s) => s.isCaller);
  } else if (mode === 'whole') {
    streams = extractRtpStreams(parseCapture(readFileSync(file)));
    decoded = streams;
  }
  const samples = decoded.reduce((n, s) => n + s.samples8k.length, 0);
  return {
    mode,
    maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
    ms: Math.round(performance.now() - t),
    streams: streams.length,
    samples,
  };
}

function runChild(mode: CaptureBenchChild['mode'], file: string): CaptureBenchChild {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', mode, file], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as CaptureBenchChild;
}

export function runCaptureBench(): CaptureBenchResult {
  const dir = mkdtempSync(join(tmpdir(), 'vg-capture-bench-'));
  try {
    const file = join(dir, 'trunk.pcap');
    const packets = writeCapture(file);
    return {
      fileMb: Math.round(statSync(file).size / 1e5) / 10,
      packets,
      idle: runChild('idle', file),
      streamed: runChild('streamed', file),
      streamedKeep: runChild('streamed-keep', file),
      streamedAll: runChild('streamed-all', file),
      baselineWhole: runChild('whole', file),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--child');
  if (i > 0) {
    const r = await child(process.argv[i + 1] as CaptureBenchChild['mode'], process.argv[i + 2]!);
    console.log(JSON.stringify(r));
  } else {
    const r = runCaptureBench();
    console.log(JSON.stringify(r));
    const line = (name: string, c: CaptureBenchChild) =>
      `  ${name.padEnd(34)} peak RSS ${String(c.maxRssMb).padStart(5)} MB (${(c.maxRssMb / r.fileMb).toFixed(1)}x the file), ${c.ms} ms, ${c.streams} streams, ${Math.round(c.samples / 8000)} s decoded`;
    console.log(
      [
        `capture bench: ${CALLS} calls x ${SECONDS} s, both directions, ${r.packets} packets, ${r.fileMb} MB pcap`,
        line('node + modules only', r.idle),
        line('streamed, caller kept (analyze)', r.streamed),
        line('streamed, all kept, caller decoded', r.streamedKeep),
        line('streamed, all decoded', r.streamedAll),
        line('baseline: whole file', r.baselineWhole),
      ].join('\n'),
    );
  }
}
