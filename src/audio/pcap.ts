/**
 * Reads the capture files tcpdump, dumpcap and tshark write: classic pcap (either byte order,
 * µs or ns timestamps) and pcapng (sections of either byte order, interfaces with their own
 * link type and timestamp resolution, enhanced/simple/obsolete packet blocks; other blocks
 * skipped). Frames become UDP datagrams via UdpDecoder.
 *
 * Damage policy: a file that is not a capture, or whose structure is corrupt, throws
 * AudioFormatError naming the reason. A file that simply ends mid-packet (tcpdump killed
 * without flushing) yields the packets before the cut and a warning, because that is the most
 * common way a real capture is damaged and its packets are still good.
 */
import { AudioFormatError } from './audio-format-error.js';
import { readInputFile } from './load-audio.js';
import { UdpDecoder, type UdpDatagram, type UdpDecoderStats } from './udp-decoder.js';

export type { UdpDatagram } from './udp-decoder.js';

export interface Capture {
  format: 'pcap' | 'pcapng';
  /** UDP datagrams in file order. */
  datagrams: UdpDatagram[];
  stats: UdpDecoderStats;
  /** Damage that did not stop the read, one line each, fit for the user. */
  warnings: string[];
}

interface Frame {
  linkType: number;
  timeMs: number;
  data: Uint8Array;
}

/** No link layer carries frames this large; a bigger length means a corrupt record. */
const MAX_FRAME_BYTES = 1 << 20;
const MAX_OTHER_BLOCK_BYTES = 64 << 20;

const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const PCAPNG_IDB = 0x00000001;
const PCAPNG_OPB = 0x00000002;
const PCAPNG_SPB = 0x00000003;
const PCAPNG_EPB = 0x00000006;
const OPT_IF_TSRESOL = 9;

export async function readCapture(path: string): Promise<Capture> {
  const bytes = await readInputFile(path);
  try {
    return parseCapture(bytes);
  } catch (err) {
    if (err instanceof AudioFormatError) throw err.withFile(path);
    throw err;
  }
}

export function parseCapture(bytes: Uint8Array): Capture {
  const warnings: string[] = [];
  const decoder = new UdpDecoder();
  const datagrams: UdpDatagram[] = [];
  const onFrame = (f: Frame): void => {
    const d = decoder.decode(f.linkType, f.data, f.timeMs);
    if (d) datagrams.push(d);
  };
  if (bytes.length < 4) throw new AudioFormatError('not a pcap or pcapng capture (file too short)');
  const dv = view(bytes);
  const format = dv.getUint32(0, false) === PCAPNG_SHB ? 'pcapng' : 'pcap';
  if (format === 'pcapng') readPcapng(bytes, onFrame, warnings);
  else readPcap(bytes, onFrame, warnings);
  decoder.finish();
  const s = decoder.stats;
  if (s.unsupportedLinkType > 0)
    warnings.push(`${s.unsupportedLinkType} frames of an unsupported link type skipped`);
  if (s.malformed > 0) warnings.push(`${s.malformed} truncated or malformed IP/UDP packets skipped`);
  if (s.orphanFragments > 0)
    warnings.push(`${s.orphanFragments} IP fragments of incomplete datagrams skipped`);
  return { format, datagrams, stats: s, warnings };
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function readPcap(bytes: Uint8Array, onFrame: (f: Frame) => void, warnings: string[]): void {
  const dv = view(bytes);
  const magic = dv.getUint32(0, true);
  let le: boolean;
  let fracPerMs: number;
  if (magic === 0xa1b2c3d4 || magic === 0xd4c3b2a1) {
    le = magic === 0xa1b2c3d4;
    fracPerMs = 1e3;
  } else if (magic === 0xa1b23c4d || magic === 0x4d3cb2a1) {
    le = magic === 0xa1b23c4d;
    fracPerMs = 1e6;
  } else {
    throw new AudioFormatError('not a pcap or pcapng capture (unknown magic number)');
  }
  if (bytes.length < 24) throw new AudioFormatError('truncated pcap file header');
  const major = dv.getUint16(4, le);
  if (major !== 2) throw new AudioFormatError(`unsupported pcap version ${major}.${dv.getUint16(6, le)}`);
  // The upper bits of the link-type field carry FCS information (pcap-savefile(5)).
  const linkType = dv.getUint32(20, le) & 0x0fffffff;
  let off = 24;
  let count = 0;
  while (off < bytes.length) {
    if (off + 16 > bytes.length) {
      warnings.push(truncatedWarning(count));
      return;
    }
    const sec = dv.getUint32(off, le);
    const frac = dv.getUint32(off + 4, le);
    const capLen = dv.getUint32(off + 8, le);
    const origLen = dv.getUint32(off + 12, le);
    if (capLen > MAX_FRAME_BYTES || origLen < capLen) {
      throw new AudioFormatError(
        `corrupt pcap record ${count + 1} at byte ${off} (captured length ${capLen})`,
      );
    }
    if (off + 16 + capLen > bytes.length) {
      warnings.push(truncatedWarning(count));
      return;
    }
    onFrame({
      linkType,
      timeMs: sec * 1000 + frac / fracPerMs,
      data: bytes.subarray(off + 16, off + 16 + capLen),
    });
    count++;
    off += 16 + capLen;
  }
}

function truncatedWarning(packets: number): string {
  return `capture ends mid-packet (truncated file); read the ${packets} packets before the cut`;
}

interface Interface {
  linkType: number;
  snapLen: number;
  /** Timestamp units per millisecond. */
  unitsPerMs: bigint;
  /** When the resolution is not a whole divisor of 1 ms (e.g. 2^-10 s), units per second instead. */
  unitsPerSec: number;
}

function readPcapng(bytes: Uint8Array, onFrame: (f: Frame) => void, warnings: string[]): void {
  const dv = view(bytes);
  let off = 0;
  let le = true;
  let interfaces: Interface[] = [];
  let count = 0;
  let sawSection = false;
  while (off < bytes.length) {
    if (off + 12 > bytes.length) {
      if (!sawSection) throw new AudioFormatError('truncated pcapng section header');
      warnings.push(truncatedWarning(count));
      return;
    }
    const type = dv.getUint32(off, le);
    if (dv.getUint32(off, false) === PCAPNG_SHB) {
      // Each section states its own byte order.
      const bom = dv.getUint32(off + 8, true);
      if (bom === PCAPNG_BYTE_ORDER_MAGIC) le = true;
      else if (bom === 0x4d3c2b1a) le = false;
      else throw new AudioFormatError(`corrupt pcapng section header at byte ${off} (bad byte-order magic)`);
      interfaces = [];
      sawSection = true;
    } else if (!sawSection) {
      throw new AudioFormatError('not a pcapng capture (no section header)');
    }
    const len = dv.getUint32(off + 4, le);
    const isPacket = type === PCAPNG_EPB || type === PCAPNG_OPB || type === PCAPNG_SPB;
    // Other blocks (decryption secrets, custom) may legitimately be large.
    if (len < 12 || len % 4 !== 0 || len > (isPacket ? MAX_FRAME_BYTES + 1024 : MAX_OTHER_BLOCK_BYTES)) {
      throw new AudioFormatError(`corrupt pcapng block at byte ${off} (length ${len})`);
    }
    if (off + len > bytes.length) {
      if (type === PCAPNG_SHB || type === PCAPNG_IDB)
        throw new AudioFormatError('truncated pcapng header block');
      warnings.push(truncatedWarning(count));
      return;
    }
    if (dv.getUint32(off + len - 4, le) !== len) {
      throw new AudioFormatError(`corrupt pcapng block at byte ${off} (trailing length mismatch)`);
    }
    const body = off + 8;
    const bodyEnd = off + len - 4;
    if (type === PCAPNG_IDB) {
      if (bodyEnd - body < 8) throw new AudioFormatError(`corrupt pcapng interface block at byte ${off}`);
      interfaces.push(parseInterface(bytes, body, bodyEnd, le));
    } else if (type === PCAPNG_EPB || type === PCAPNG_OPB) {
      // OPB (obsolete, written by old tools) has the EPB layout with a 16-bit interface id.
      if (bodyEnd - body < 20) throw new AudioFormatError(`corrupt pcapng packet block at byte ${off}`);
      const ifId = type === PCAPNG_EPB ? dv.getUint32(body, le) : dv.getUint16(body, le);
      const iface = interfaces[ifId];
      if (!iface)
        throw new AudioFormatError(`pcapng packet block at byte ${off} names unknown interface ${ifId}`);
      const capLen = dv.getUint32(body + 12, le);
      if (body + 20 + capLen > bodyEnd)
        throw new AudioFormatError(`corrupt pcapng packet block at byte ${off}`);
      const ts = (BigInt(dv.getUint32(body + 4, le)) << 32n) | BigInt(dv.getUint32(body + 8, le));
      onFrame({
        linkType: iface.linkType,
        timeMs: toMs(ts, iface),
        data: bytes.subarray(body + 20, body + 20 + capLen),
      });
      count++;
    } else if (type === PCAPNG_SPB) {
      const iface = interfaces[0];
      if (!iface)
        throw new AudioFormatError(`pcapng simple packet block at byte ${off} before any interface`);
      const origLen = dv.getUint32(body, le);
      const capLen = Math.min(origLen, iface.snapLen || origLen, bodyEnd - body - 4);
      // A simple packet block has no timestamp.
      onFrame({ linkType: iface.linkType, timeMs: 0, data: bytes.subarray(body + 4, body + 4 + capLen) });
      count++;
    }
    // Any other block (name resolution, statistics, custom, decryption secrets...) is skipped.
    off += len;
  }
}

function parseInterface(bytes: Uint8Array, start: number, end: number, le: boolean): Interface {
  const dv = view(bytes);
  const iface: Interface = {
    linkType: dv.getUint16(start, le),
    snapLen: dv.getUint32(start + 4, le),
    unitsPerMs: 1000n,
    unitsPerSec: 1e6,
  };
  let o = start + 8;
  while (o + 4 <= end) {
    const code = dv.getUint16(o, le);
    const optLen = dv.getUint16(o + 2, le);
    if (code === 0) break;
    if (code === OPT_IF_TSRESOL && optLen >= 1 && o + 5 <= end) {
      const v = bytes[o + 4];
      const exp = v & 0x7f;
      if (v & 0x80) {
        iface.unitsPerSec = 2 ** exp;
        iface.unitsPerMs = 0n;
      } else {
        iface.unitsPerSec = 10 ** exp;
        iface.unitsPerMs = exp >= 3 ? 10n ** BigInt(exp - 3) : 0n;
      }
    }
    o += 4 + ((optLen + 3) & ~3);
  }
  return iface;
}

function toMs(ts: bigint, iface: Interface): number {
  if (iface.unitsPerMs > 0n) {
    // Integer part exactly, so ns timestamps since 1970 keep sub-ms precision.
    return Number(ts / iface.unitsPerMs) + Number(ts % iface.unitsPerMs) / Number(iface.unitsPerMs);
  }
  return (Number(ts) / iface.unitsPerSec) * 1000;
}
