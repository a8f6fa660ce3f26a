import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AudioFormatError } from '../../src/audio/audio-format-error.js';
import { buildUdpFrame, writeRtpPcap } from '../../src/audio/pcap-writer.js';
import { parseCapture, readCapture, type Capture } from '../../src/audio/pcap.js';
import { extractRtpStreams } from '../../src/audio/rtp-streams.js';
import { rng } from '../detect/helpers.js';
import {
  fragmentIpv4,
  ipOf,
  ipv6Frame,
  pcapngSection,
  pcapRecords,
  rtpFrame,
  save,
  testSignal,
  throughG711,
  toBigEndianPcap,
  tool,
  tsharkRtp,
  withLinkHeader,
  writePcap,
} from './capture-helpers.js';

/**
 * The capture reader against files written or rewritten by the real tools (editcap, tshark),
 * with tshark as the referee for packet counts and SSRCs.
 */

const PORT = 20000;
const SSRC = 0x5eed0001;
let dir: string;
let base: Buffer;
let basePath: string;
let expectedAudio: Float32Array;
const signal = testSignal(8000 * 2 + 37); // not a whole number of packets

function onlyStream(c: Capture) {
  const streams = extractRtpStreams(c);
  expect(streams).toHaveLength(1);
  return streams[0];
}

function agreesWithTshark(file: string, packets: number): void {
  const rows = tsharkRtp(file, PORT);
  expect(rows).toHaveLength(packets);
  expect(new Set(rows.map((r) => r.ssrc))).toEqual(new Set([SSRC]));
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-pcap-'));
  base = writeRtpPcap({
    samples: signal,
    codec: 'pcma',
    src: '192.0.2.10:40000',
    dst: `198.51.100.5:${PORT}`,
    ssrc: SSRC,
    startTimeMs: 1_700_000_000_000,
  });
  basePath = save(dir, 'base.pcap', base);
  expectedAudio = throughG711('pcma', signal);
});

describe('readCapture: containers written by the real tools', () => {
  const converted = (name: string, cmd: string, args: (out: string) => string[]): string => {
    const out = join(dir, name);
    tool(cmd, args(out));
    return out;
  };
  const variants: Array<[string, () => string, 'pcap' | 'pcapng']> = [
    ['classic pcap (wav2pcap writer)', () => basePath, 'pcap'],
    [
      'editcap -F nsecpcap (ns magic)',
      () => converted('ns.pcap', 'editcap', (o) => ['-F', 'nsecpcap', basePath, o]),
      'pcap',
    ],
    [
      'editcap -F pcapng',
      () => converted('e.pcapng', 'editcap', (o) => ['-F', 'pcapng', basePath, o]),
      'pcapng',
    ],
    [
      'tshark -w -F pcapng',
      () => converted('t.pcapng', 'tshark', (o) => ['-r', basePath, '-w', o, '-F', 'pcapng']),
      'pcapng',
    ],
  ];
  for (const [name, make, format] of variants) {
    it(`${name}: every packet, sample-exact audio, tshark agrees`, async () => {
      const file = make();
      const c = await readCapture(file);
      expect(c.format).toBe(format);
      expect(c.warnings).toEqual([]);
      const s = onlyStream(c);
      expect(s).toMatchObject({
        ssrc: SSRC,
        src: '192.0.2.10:40000',
        dst: `198.51.100.5:${PORT}`,
        codec: 'pcma',
        payloadType: 8,
      });
      expect(s).toMatchObject({
        packetCount: 101,
        lostCount: 0,
        duplicateCount: 0,
        reorderedCount: 0,
        isCaller: true,
      });
      expect(s.firstTimeMs).toBeCloseTo(1_700_000_000_000, 3);
      expect(s.samples8k).toEqual(expectedAudio);
      agreesWithTshark(file, s.packetCount);
    });
  }

  it('big-endian classic pcap', () => {
    const be = save(dir, 'be.pcap', toBigEndianPcap(base));
    expect(readFileSync(be).readUInt32BE(0)).toBe(0xa1b2c3d4);
    const s = onlyStream(parseCapture(readFileSync(be)));
    expect(s.samples8k).toEqual(expectedAudio);
    agreesWithTshark(be, 101);
  });

  it('big-endian pcapng with ns if_tsresol, plus a second little-endian section (cat of two files)', async () => {
    const records = pcapRecords(base);
    const beSection = pcapngSection(records.slice(0, 50), {
      bigEndian: true,
      interfaces: [{ linkType: 1, tsresolExp10: 9 }],
    });
    const leSection = pcapngSection(records.slice(50), {
      bigEndian: false,
      interfaces: [{ linkType: 1, tsresolExp10: 3 }],
    });
    const file = save(dir, 'sections.pcapng', Buffer.concat([beSection, leSection]));
    const c = await readCapture(file);
    expect(c.format).toBe('pcapng');
    expect(c.datagrams[0].timeMs).toBeCloseTo(1_700_000_000_000, 6);
    expect(c.datagrams[60].timeMs).toBeCloseTo(1_700_000_000_000 + 60 * 20, 6);
    const s = onlyStream(c);
    expect(s.samples8k).toEqual(expectedAudio);
    agreesWithTshark(file, 101);
    const tsharkTimes = tool('tshark', ['-r', file, '-T', 'fields', '-e', 'frame.time_epoch'])
      .trim()
      .split('\n')
      .map(Number);
    c.datagrams.forEach((d, i) => expect(d.timeMs / 1000).toBeCloseTo(tsharkTimes[i], 5));
  });

  it('pcapng with two interfaces of different link types, skipping name-resolution and local blocks', () => {
    const records = pcapRecords(base).map((r, k) =>
      k % 2 === 0 ? r : { timeMs: r.timeMs, frame: withLinkHeader('sll2', r.frame), iface: 1 },
    );
    const interfaces = [{ linkType: 1 }, { linkType: 276, tsresolExp10: 9 }];
    for (const packetBlock of ['epb', 'opb'] as const) {
      const file = save(
        dir,
        `two-if-${packetBlock}.pcapng`,
        pcapngSection(records, {
          bigEndian: packetBlock === 'opb',
          interfaces,
          packetBlock,
          otherBlocks: true,
        }),
      );
      const c = parseCapture(readFileSync(file));
      expect(c.warnings).toEqual([]);
      expect(c.datagrams[1].timeMs).toBeCloseTo(1_700_000_000_020, 6);
      expect(onlyStream(c).samples8k).toEqual(expectedAudio);
      agreesWithTshark(file, 101);
    }
  });

  it('pcapng simple packet blocks', () => {
    const file = save(
      dir,
      'spb.pcapng',
      pcapngSection(pcapRecords(base), {
        bigEndian: false,
        interfaces: [{ linkType: 1 }],
        packetBlock: 'spb',
      }),
    );
    const s = onlyStream(parseCapture(readFileSync(file)));
    expect(s.samples8k).toEqual(expectedAudio);
    agreesWithTshark(file, 101);
  });
});

describe('readCapture: link types and IP', () => {
  const cases: Array<[string, number, (f: Uint8Array) => Uint8Array]> = [
    ['Linux cooked SLL (113)', 113, (f) => withLinkHeader('sll', f)],
    ['Linux cooked SLL2 (276)', 276, (f) => withLinkHeader('sll2', f)],
    ['BSD null (0)', 0, (f) => withLinkHeader('null', f)],
    ['OpenBSD loop (108)', 108, (f) => withLinkHeader('loop', f)],
    ['raw IP (101)', 101, (f) => ipOf(f)],
    ['raw IPv4 (228)', 228, (f) => ipOf(f)],
    ['Ethernet 802.1Q', 1, (f) => withLinkHeader('vlan', f)],
    ['Ethernet QinQ', 1, (f) => withLinkHeader('qinq', f)],
  ];
  for (const [name, linkType, wrap] of cases) {
    it(name, () => {
      const records = pcapRecords(base).map((r) => ({ timeMs: r.timeMs, frame: wrap(r.frame) }));
      const file = save(dir, `link-${linkType}-${name.length}.pcap`, writePcap(records, linkType));
      const c = parseCapture(readFileSync(file));
      expect(c.stats.udp).toBe(101);
      expect(onlyStream(c).samples8k).toEqual(expectedAudio);
      agreesWithTshark(file, 101);
    });
  }

  it('reassembles IPv4 fragments, in either order', () => {
    const records = pcapRecords(base).flatMap((r, k) => {
      const [a, b] = fragmentIpv4(r.frame, 96);
      const pair = k % 3 === 0 ? [b, a] : [a, b];
      return pair.map((frame) => ({ timeMs: r.timeMs, frame }));
    });
    const file = save(dir, 'frag.pcap', writePcap(records, 1));
    const c = parseCapture(readFileSync(file));
    expect(c.stats.reassembled).toBe(101);
    expect(c.warnings).toEqual([]);
    expect(onlyStream(c).samples8k).toEqual(expectedAudio);
    agreesWithTshark(file, 101);
  });

  it('counts a fragment whose partner never came, and warns', () => {
    const records = pcapRecords(base);
    const [first] = fragmentIpv4(records[5].frame, 96);
    const frames = [...records.slice(0, 5), { timeMs: records[5].timeMs, frame: first }, ...records.slice(6)];
    const c = parseCapture(writePcap(frames, 1));
    expect(c.stats.orphanFragments).toBe(1);
    expect(c.warnings.join('\n')).toMatch(/1 IP fragments of incomplete datagrams/);
    expect(onlyStream(c).lostCount).toBe(1);
  });

  it('IPv6, with and without a hop-by-hop header, over Ethernet and raw IPv6 (229)', () => {
    const src = '2001:db8::10';
    const dst = '2001:db8:0:1::5';
    const rtps = pcapRecords(base).map((r) => ({
      timeMs: r.timeMs,
      rtp: Buffer.from(r.frame.subarray(14 + 28)),
    }));
    const eth = rtps.map((r, k) => ({
      timeMs: r.timeMs,
      frame: ipv6Frame(src, dst, 40000, PORT, r.rtp, k % 2 === 1),
    }));
    for (const [linkType, frames] of [
      [1, eth],
      [229, eth.map((r) => ({ timeMs: r.timeMs, frame: r.frame.subarray(14) }))],
    ] as const) {
      const file = save(dir, `v6-${linkType}.pcap`, writePcap([...frames], linkType));
      const s = onlyStream(parseCapture(readFileSync(file)));
      expect(s.src).toBe('[2001:db8::10]:40000');
      expect(s.dst).toBe(`[2001:db8:0:1::5]:${PORT}`);
      expect(s.samples8k).toEqual(expectedAudio);
      agreesWithTshark(file, 101);
    }
  });

  it('skips frames snapped short by the capture (editcap -s), with a warning', () => {
    const file = join(dir, 'snapped.pcap');
    tool('editcap', ['-s', '100', basePath, file]);
    const c = parseCapture(readFileSync(file));
    expect(c.stats.malformed).toBe(101);
    expect(c.warnings.join('\n')).toMatch(/101 truncated or malformed/);
    expect(extractRtpStreams(c)).toEqual([]);
  });
});

describe('readCapture: damaged files', () => {
  it('a pcap cut mid-packet yields the packets before the cut and a warning', async () => {
    const cut = base.subarray(0, 24 + 40 * (16 + 214) + 100);
    const file = save(dir, 'cut.pcap', cut);
    const c = await readCapture(file);
    expect(c.warnings).toEqual([
      'capture ends mid-packet (truncated file); read the 40 packets before the cut',
    ]);
    const s = onlyStream(c);
    expect(s.packetCount).toBe(40);
    expect(s.samples8k).toEqual(expectedAudio.subarray(0, 40 * 160));
    // tshark reads the same 40 and reports the cut too.
    const t = tsharkRtp(file, PORT);
    expect(t).toHaveLength(40);
    expect(t.stderr).toMatch(/cut short in the middle of a packet/);
  });

  it('a pcapng cut mid-block (editcap output, truncated) likewise', () => {
    const ng = join(dir, 'cut-src.pcapng');
    tool('editcap', ['-F', 'pcapng', basePath, ng]);
    const bytes = readFileSync(ng);
    const c = parseCapture(bytes.subarray(0, bytes.length - 150));
    expect(c.warnings[0]).toMatch(/ends mid-packet.*100 packets/);
    expect(onlyStream(c).packetCount).toBe(100);
  });

  it('garbage, empty and corrupt files throw AudioFormatError naming the reason and the file', async () => {
    const garbage = save(dir, 'garbage.pcap', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await expect(readCapture(garbage)).rejects.toThrow(AudioFormatError);
    await expect(readCapture(garbage)).rejects.toThrow(
      `${garbage}: not a pcap or pcapng capture (unknown magic number)`,
    );
    expect(() => parseCapture(Buffer.alloc(0))).toThrow(/file too short/);
    expect(() => parseCapture(base.subarray(0, 20))).toThrow(/truncated pcap file header/);
    const corrupt = Buffer.from(base);
    corrupt.writeUInt32LE(0x7fffffff, 24 + 3 * (16 + 214) + 8); // captured length of record 4
    expect(() => parseCapture(corrupt)).toThrow(/corrupt pcap record 4/);
    const ng = join(dir, 'corrupt-src.pcapng');
    tool('editcap', ['-F', 'pcapng', basePath, ng]);
    const badNg = Buffer.from(readFileSync(ng));
    badNg.writeUInt32LE(0x12345678, 8); // byte-order magic
    expect(() => parseCapture(badNg)).toThrow(/bad byte-order magic/);
    await expect(readCapture(join(dir, 'missing.pcap'))).rejects.toThrow(/cannot read file \(ENOENT\)/);
  });

  it('ignores RTCP and non-RTP UDP on the same ports', () => {
    const records = pcapRecords(base);
    const rtcp = Buffer.from([0x80, 200, 0, 6, ...Array<number>(24).fill(1)]);
    const dns = Buffer.from('1234abcd0100000100000000', 'hex');
    const a = { address: '192.0.2.10', port: 40000 };
    const b = { address: '198.51.100.5', port: PORT };
    const noise = [
      { timeMs: records[3].timeMs, frame: buildUdpFrame(a, { ...b, port: PORT + 1 }, rtcp) },
      { timeMs: records[4].timeMs, frame: buildUdpFrame(a, b, dns) },
      // An RTP-shaped packet of another SSRC, alone: taken for noise, not a stream.
      {
        timeMs: records[5].timeMs,
        frame: rtpFrame(a, b, { seq: 1, ts: 1, ssrc: 9 }),
      },
    ];
    const s = onlyStream(parseCapture(writePcap([...records, ...noise], 1)));
    expect(s.ssrc).toBe(SSRC);
    expect(s.samples8k).toEqual(expectedAudio);
  });
});

describe('readCapture: damaged input never escapes as anything but AudioFormatError', () => {
  it('survives 3000 random corruptions of pcap and pcapng files (byte flips and cuts)', () => {
    const ng = join(dir, 'fuzz-src.pcapng');
    tool('editcap', ['-F', 'pcapng', basePath, ng]);
    const sources = [base.subarray(0, 24 + 12 * 230), readFileSync(ng).subarray(0, 3000)];
    const rand = rng(7);
    let thrown = 0;
    let read = 0;
    for (let i = 0; i < 3000; i++) {
      const src = sources[i % 2];
      const bytes = Buffer.from(src.subarray(0, rand() < 0.3 ? Math.floor(rand() * src.length) : src.length));
      for (let k = 0, n = 1 + Math.floor(rand() * 8); k < n && bytes.length > 0; k++) {
        bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
      }
      try {
        const c = parseCapture(bytes);
        extractRtpStreams(c);
        read++;
      } catch (err) {
        if (!(err instanceof AudioFormatError)) throw err;
        expect(err.message.length).toBeGreaterThan(5);
        thrown++;
      }
    }
    // Both outcomes happen: most damage is survivable, some is fatal.
    expect(read).toBeGreaterThan(100);
    expect(thrown).toBeGreaterThan(100);
  });
});

describe('scanCapture: reading in chunks changes nothing', () => {
  const summary = (c: Capture) => ({
    format: c.format,
    warnings: c.warnings,
    datagrams: c.datagrams.map((d) => ({ ...d, payload: Buffer.from(d.payload).toString('hex') })),
  });
  const files = (): Array<[string, Buffer]> => {
    const ng = join(dir, 'chunks.pcapng');
    tool('editcap', ['-F', 'pcapng', basePath, ng]);
    const ngBytes = readFileSync(ng);
    const records = pcapRecords(base);
    const sections = Buffer.concat([
      pcapngSection(records.slice(0, 50), {
        bigEndian: true,
        interfaces: [{ linkType: 1, tsresolExp10: 9 }],
      }),
      pcapngSection(records.slice(50), { bigEndian: false, interfaces: [{ linkType: 1, tsresolExp10: 3 }] }),
    ]);
    const fragments = records.flatMap((r, k) => {
      const [x, y] = fragmentIpv4(r.frame, 96);
      return (k % 3 === 0 ? [y, x] : [x, y]).map((frame) => ({ timeMs: r.timeMs, frame }));
    });
    return [
      ['classic pcap', base],
      ['pcapng (editcap)', ngBytes],
      ['two pcapng sections, big- then little-endian', sections],
      ['pcap cut mid-packet', base.subarray(0, base.length - 99)],
      ['pcapng cut mid-block', ngBytes.subarray(0, ngBytes.length - 150)],
      ['IPv4 fragments, some out of order', writePcap(fragments, 1)],
    ];
  };

  it('every chunk size, 1 byte to 1 MiB, gives the same datagrams, warnings and streams as one read', async () => {
    for (const [name, bytes] of files()) {
      const whole = parseCapture(bytes);
      const file = save(dir, 'chunked.bin', bytes);
      for (const chunkBytes of [1, 3, 7, 64, 229, 4093, 1 << 20]) {
        const c = await readCapture(file, { chunkBytes });
        expect(summary(c), `${name}, ${chunkBytes}-byte chunks`).toEqual(summary(whole));
        expect(extractRtpStreams(c), `${name}, ${chunkBytes}-byte chunks`).toEqual(extractRtpStreams(whole));
      }
    }
  });

  it('a corrupt or truncated header fails the same way in any chunk size', async () => {
    const corrupt = Buffer.from(base);
    corrupt.writeUInt32LE(0x7fffffff, 24 + 3 * (16 + 214) + 8); // record 4's captured length
    const cases: Array<[Buffer, RegExp]> = [
      [corrupt, /corrupt pcap record 4 at byte 714 \(captured length 2147483647\)/],
      [base.subarray(0, 20), /truncated pcap file header/],
      [Buffer.alloc(2), /file too short/],
    ];
    for (const [bytes, message] of cases) {
      expect(() => parseCapture(bytes)).toThrow(message);
      const file = save(dir, 'bad.bin', bytes);
      for (const chunkBytes of [1, 5, 4096]) {
        await expect(readCapture(file, { chunkBytes })).rejects.toThrow(message);
      }
    }
  });
});
