import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { writeRtpPcap } from '../../src/audio/pcap-writer.js';
import { readCapture } from '../../src/audio/pcap.js';
import { extractRtpStreams } from '../../src/audio/rtp-streams.js';
import { pcapRecords, testSignal, throughG711, tsharkRtp } from './capture-helpers.js';

/**
 * Captures made by the capture tools themselves, of real RTP sent over 127.0.0.1: dumpcap on
 * the "any" device (Linux cooked v2, pcapng), and tcpdump killed without flushing (classic
 * pcap cut mid-packet, the way real captures get damaged).
 */

const signal = testSignal(8000 * 3, 3);
const expected = throughG711('pcmu', signal);
let dir: string;
let rtpPayloads: Buffer[];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-live-'));
  // The RTP packets of wav2pcap's writer, sent for real instead of written to a file.
  const pcap = writeRtpPcap({
    samples: signal,
    codec: 'pcmu',
    src: '127.0.0.1:1',
    dst: '127.0.0.1:2',
    ssrc: 0xabc00001,
  });
  rtpPayloads = pcapRecords(pcap).map((r) => Buffer.from(r.frame.subarray(14 + 28)));
});

/** Starts a capture tool and resolves once it says it is listening. */
function startCapture(cmd: string, args: string[], ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${err}`)), 15_000);
    p.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (ready.test(err)) {
        clearTimeout(timer);
        resolve(p);
      }
    });
    p.on('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${err}`)));
  });
}

async function sendRtp(srcPort: number, dstPort: number): Promise<void> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(srcPort, '127.0.0.1', r));
  for (const [i, p] of rtpPayloads.entries()) {
    await new Promise<void>((r, j) => sock.send(p, dstPort, '127.0.0.1', (e) => (e ? j(e) : r())));
    // A little pacing, so the capture buffers never drop.
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 2));
  }
  sock.close();
}

function stopped(p: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((r) => {
    p.removeAllListeners('exit');
    p.on('exit', () => r());
    p.kill(signal);
  });
}

describe('captures written by dumpcap and tcpdump', () => {
  it('dumpcap -i any (Linux cooked v2, pcapng): the whole stream, sample-exact', async () => {
    const file = join(dir, 'any.pcapng');
    const cap = await startCapture(
      'dumpcap',
      ['-i', 'any', '-y', 'LINUX_SLL2', '-f', 'udp port 47062', '-w', file],
      /Capturing on/,
    );
    // "Capturing on" comes a moment before the filter is live; and the last packets sit in
    // libpcap's buffer for up to its 1 s timeout. Give both time.
    await new Promise((r) => setTimeout(r, 500));
    await sendRtp(47061, 47062);
    await new Promise((r) => setTimeout(r, 1500));
    await stopped(cap, 'SIGINT');
    const c = await readCapture(file);
    expect(c.format).toBe('pcapng');
    expect(c.warnings).toEqual([]);
    const streams = extractRtpStreams(c);
    expect(streams).toHaveLength(1);
    expect(streams[0]).toMatchObject({
      src: '127.0.0.1:47061',
      dst: '127.0.0.1:47062',
      packetCount: 150,
      lostCount: 0,
    });
    expect(streams[0].samples8k).toEqual(expected);
    expect(tsharkRtp(file, 47062)).toHaveLength(150);
  });

  it('tcpdump killed with unflushed buffers: the packets before the cut, and a warning', async () => {
    const file = join(dir, 'killed.pcap');
    // -Z root: stay root so it can write into the private temp dir; no -U, so it writes in 4 KiB blocks.
    const cap = await startCapture(
      'tcpdump',
      ['-i', 'lo', '-n', '-Z', 'root', '-w', file, 'udp port 47064'],
      /listening on/,
    );
    await new Promise((r) => setTimeout(r, 500));
    await sendRtp(47063, 47064);
    // Past libpcap's 1 s buffer timeout, so tcpdump has the packets in its own stdio buffer.
    await new Promise((r) => setTimeout(r, 1500));
    await stopped(cap, 'SIGKILL');
    const bytes = readFileSync(file);
    expect(bytes.length % 4096, 'tcpdump writes whole buffers').toBe(0);
    const c = await readCapture(file);
    expect(c.warnings).toHaveLength(1);
    expect(c.warnings[0]).toMatch(
      /capture ends mid-packet \(truncated file\); read the \d+ packets before the cut/,
    );
    const [s] = extractRtpStreams(c);
    const n = s.packetCount;
    expect(n).toBeGreaterThan(10);
    expect(n).toBeLessThan(150);
    expect(s.samples8k).toEqual(expected.subarray(0, n * 160));
    // tshark reads exactly as many before complaining about the cut.
    const t = tsharkRtp(file, 47064);
    expect(t).toHaveLength(n);
    expect(t.stderr).toMatch(/cut short in the middle of a packet/);
  });
});
