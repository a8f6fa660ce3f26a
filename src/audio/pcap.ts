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
 *
 * Files are read in chunks (scanCapture) and parsed as they arrive (CaptureReader), so a
 * capture larger than memory can be analysed.
 */
import { AudioFormatError } from './audio-format-error.js';
import { open, type FileHandle } from 'node:fs/promises';
import { UdpDecoder, type TcpSegment, type UdpDatagram, type UdpDecoderStats } from './udp-decoder.js';

export type { TcpSegment, UdpDatagram } from './udp-decoder.js';

export interface Capture {
  format: 'pcap' | 'pcapng';
  /** UDP datagrams in file order. */
  datagrams: UdpDatagram[];
  stats: UdpDecoderStats;
  /** Damage that did not stop the read, one line each, fit for the user. */
  warnings: string[];
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

/** What a capture read reports besides its datagrams. */
export interface CaptureSummary {
  format: 'pcap' | 'pcapng';
  stats: UdpDecoderStats;
  warnings: string[];
}

/** How much of the file one read takes; a record never needs more than MAX_OTHER_BLOCK_BYTES. */
export const CAPTURE_CHUNK_BYTES = 4 << 20;

/**
 * Streams a capture file through `onDatagram` in CAPTURE_CHUNK_BYTES reads, so memory stays at
 * about one chunk plus what the consumer keeps. A datagram's payload is a view into the chunk:
 * copy what you keep. Throws AudioFormatError naming the file for a file that is not a capture.
 */
export async function scanCapture(
  path: string,
  onDatagram: (d: UdpDatagram) => void,
  opts: { chunkBytes?: number; onTcpSegment?: (s: TcpSegment) => void } = {},
): Promise<CaptureSummary> {
  const chunkBytes = opts.chunkBytes ?? CAPTURE_CHUNK_BYTES;
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AudioFormatError(`cannot read file${code ? ` (${code})` : ''}`, path, { cause: err });
  }
  try {
    const reader = new CaptureReader(onDatagram, opts.onTcpSegment);
    for (;;) {
      const chunk = Buffer.allocUnsafe(chunkBytes); // fresh each time: datagrams may still view the last one
      const { bytesRead } = await fh.read(chunk, 0, chunkBytes, null);
      if (bytesRead === 0) break;
      reader.feed(chunk.subarray(0, bytesRead));
    }
    return reader.finish();
  } catch (err) {
    if (err instanceof AudioFormatError) throw err.withFile(path);
    throw err;
  } finally {
    await fh.close();
  }
}

/** The whole capture with its datagrams in memory (tests, small files); see scanCapture. */
export async function readCapture(path: string, opts: { chunkBytes?: number } = {}): Promise<Capture> {
  const datagrams: UdpDatagram[] = [];
  const summary = await scanCapture(path, (d) => datagrams.push(d), opts);
  return { ...summary, datagrams };
}

export function parseCapture(bytes: Uint8Array): Capture {
  const datagrams: UdpDatagram[] = [];
  const reader = new CaptureReader((d) => datagrams.push(d));
  reader.feed(bytes);
  return { ...reader.finish(), datagrams };
}

/**
 * A push parser for pcap and pcapng: `feed` it the file in pieces of any size, then `finish`.
 * Records are decoded as soon as they are complete; an incomplete one waits for the next piece.
 */
export class CaptureReader {
  private readonly decoder: UdpDecoder;
  private readonly warnings: string[] = [];
  private format: 'pcap' | 'pcapng' | null = null;
  /** Bytes of an incomplete record (or header) carried over to the next feed. */
  private rest: Uint8Array = new Uint8Array(0);
  private count = 0;
  /** File offset of the first byte of the buffer being parsed (for error messages). */
  private base = 0;
  // classic pcap
  private le = true;
  private fracPerMs = 1e3;
  private linkType = 0;
  private headerDone = false;
  // pcapng
  private interfaces: Interface[] = [];
  private sawSection = false;

  constructor(
    private readonly onDatagram: (d: UdpDatagram) => void,
    onTcpSegment?: (s: TcpSegment) => void,
  ) {
    this.decoder = new UdpDecoder(onTcpSegment);
  }

  feed(piece: Uint8Array): void {
    if (piece.length === 0) return;
    let bytes = piece;
    if (this.rest.length > 0) {
      bytes = new Uint8Array(this.rest.length + piece.length);
      bytes.set(this.rest);
      bytes.set(piece, this.rest.length);
    }
    if (this.format === null) {
      if (bytes.length < 4) {
        this.rest = bytes.slice();
        return;
      }
      this.format = view(bytes).getUint32(0, false) === PCAPNG_SHB ? 'pcapng' : 'pcap';
    }
    const used = this.format === 'pcapng' ? this.pcapng(bytes) : this.pcap(bytes);
    this.rest = bytes.slice(used); // a copy: small (one record at most), and frees the piece
    this.base += used;
  }

  finish(): CaptureSummary {
    if (this.format === null) throw new AudioFormatError('not a pcap or pcapng capture (file too short)');
    if (this.rest.length > 0) {
      if (this.format === 'pcap' && !this.headerDone)
        throw new AudioFormatError('truncated pcap file header');
      if (this.format === 'pcapng') {
        if (this.rest.length < 12) {
          if (!this.sawSection) throw new AudioFormatError('truncated pcapng section header');
        } else if (
          view(this.rest).getUint32(0, false) === PCAPNG_SHB ||
          view(this.rest).getUint32(0, this.le) === PCAPNG_IDB
        ) {
          throw new AudioFormatError('truncated pcapng header block');
        }
      }
      this.warnings.push(truncatedWarning(this.count));
    }
    this.decoder.finish();
    const s = this.decoder.stats;
    const warnings = [...this.warnings];
    if (s.unsupportedLinkType > 0)
      warnings.push(`${s.unsupportedLinkType} frames of an unsupported link type skipped`);
    if (s.malformed > 0) warnings.push(`${s.malformed} truncated or malformed IP/UDP packets skipped`);
    if (s.orphanFragments > 0)
      warnings.push(`${s.orphanFragments} IP fragments of incomplete datagrams skipped`);
    return { format: this.format, stats: s, warnings };
  }

  private frame(linkType: number, timeMs: number, data: Uint8Array): void {
    const d = this.decoder.decode(linkType, data, timeMs);
    if (d) this.onDatagram(d);
    this.count++;
  }

  /** Classic pcap: parses what is complete in `bytes`, returns how many bytes it used. */
  private pcap(bytes: Uint8Array): number {
    const dv = view(bytes);
    let off = 0;
    if (!this.headerDone) {
      const magic = dv.getUint32(0, true);
      if (magic === 0xa1b2c3d4 || magic === 0xd4c3b2a1) {
        this.le = magic === 0xa1b2c3d4;
        this.fracPerMs = 1e3;
      } else if (magic === 0xa1b23c4d || magic === 0x4d3cb2a1) {
        this.le = magic === 0xa1b23c4d;
        this.fracPerMs = 1e6;
      } else {
        throw new AudioFormatError('not a pcap or pcapng capture (unknown magic number)');
      }
      if (bytes.length < 24) return 0;
      const major = dv.getUint16(4, this.le);
      if (major !== 2)
        throw new AudioFormatError(`unsupported pcap version ${major}.${dv.getUint16(6, this.le)}`);
      // The upper bits of the link-type field carry FCS information (pcap-savefile(5)).
      this.linkType = dv.getUint32(20, this.le) & 0x0fffffff;
      this.headerDone = true;
      off = 24;
    }
    const le = this.le;
    while (off + 16 <= bytes.length) {
      const sec = dv.getUint32(off, le);
      const frac = dv.getUint32(off + 4, le);
      const capLen = dv.getUint32(off + 8, le);
      const origLen = dv.getUint32(off + 12, le);
      if (capLen > MAX_FRAME_BYTES || origLen < capLen) {
        throw new AudioFormatError(
          `corrupt pcap record ${this.count + 1} at byte ${this.base + off} (captured length ${capLen})`,
        );
      }
      if (off + 16 + capLen > bytes.length) break;
      this.frame(
        this.linkType,
        sec * 1000 + frac / this.fracPerMs,
        bytes.subarray(off + 16, off + 16 + capLen),
      );
      off += 16 + capLen;
    }
    return off;
  }

  /** pcapng: parses the complete blocks in `bytes`, returns how many bytes it used. */
  private pcapng(bytes: Uint8Array): number {
    const dv = view(bytes);
    let off = 0;
    while (off + 12 <= bytes.length) {
      let le = this.le;
      const isShb = dv.getUint32(off, false) === PCAPNG_SHB;
      if (isShb) {
        // Each section states its own byte order.
        const bom = dv.getUint32(off + 8, true);
        if (bom === PCAPNG_BYTE_ORDER_MAGIC) le = true;
        else if (bom === 0x4d3c2b1a) le = false;
        else
          throw new AudioFormatError(
            `corrupt pcapng section header at byte ${this.base + off} (bad byte-order magic)`,
          );
      } else if (!this.sawSection) {
        throw new AudioFormatError('not a pcapng capture (no section header)');
      }
      const type = dv.getUint32(off, le);
      const len = dv.getUint32(off + 4, le);
      const isPacket = type === PCAPNG_EPB || type === PCAPNG_OPB || type === PCAPNG_SPB;
      // Other blocks (decryption secrets, custom) may legitimately be large.
      if (len < 12 || len % 4 !== 0 || len > (isPacket ? MAX_FRAME_BYTES + 1024 : MAX_OTHER_BLOCK_BYTES)) {
        throw new AudioFormatError(`corrupt pcapng block at byte ${this.base + off} (length ${len})`);
      }
      if (off + len > bytes.length) break;
      if (dv.getUint32(off + len - 4, le) !== len) {
        throw new AudioFormatError(
          `corrupt pcapng block at byte ${this.base + off} (trailing length mismatch)`,
        );
      }
      if (isShb) {
        this.le = le;
        this.interfaces = [];
        this.sawSection = true;
      }
      const body = off + 8;
      const bodyEnd = off + len - 4;
      if (type === PCAPNG_IDB) {
        if (bodyEnd - body < 8)
          throw new AudioFormatError(`corrupt pcapng interface block at byte ${this.base + off}`);
        this.interfaces.push(parseInterface(bytes, body, bodyEnd, le));
      } else if (type === PCAPNG_EPB || type === PCAPNG_OPB) {
        // OPB (obsolete, written by old tools) has the EPB layout with a 16-bit interface id.
        if (bodyEnd - body < 20)
          throw new AudioFormatError(`corrupt pcapng packet block at byte ${this.base + off}`);
        const ifId = type === PCAPNG_EPB ? dv.getUint32(body, le) : dv.getUint16(body, le);
        const iface = this.interfaces[ifId];
        if (!iface)
          throw new AudioFormatError(
            `pcapng packet block at byte ${this.base + off} names unknown interface ${ifId}`,
          );
        const capLen = dv.getUint32(body + 12, le);
        if (body + 20 + capLen > bodyEnd)
          throw new AudioFormatError(`corrupt pcapng packet block at byte ${this.base + off}`);
        const ts = (BigInt(dv.getUint32(body + 4, le)) << 32n) | BigInt(dv.getUint32(body + 8, le));
        this.frame(iface.linkType, toMs(ts, iface), bytes.subarray(body + 20, body + 20 + capLen));
      } else if (type === PCAPNG_SPB) {
        const iface = this.interfaces[0];
        if (!iface)
          throw new AudioFormatError(
            `pcapng simple packet block at byte ${this.base + off} before any interface`,
          );
        const origLen = dv.getUint32(body, le);
        const capLen = Math.min(origLen, iface.snapLen || origLen, bodyEnd - body - 4);
        // A simple packet block has no timestamp.
        this.frame(iface.linkType, 0, bytes.subarray(body + 4, body + 4 + capLen));
      }
      // Any other block (name resolution, statistics, custom, decryption secrets...) is skipped.
      off += len;
    }
    return off;
  }
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
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
