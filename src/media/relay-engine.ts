import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import { isRtcp } from './rtp-packet.js';
import { SrtpContext, type SrtpKey } from './srtp.js';
import { JitterBuffer } from './jitter-buffer.js';
import { decodeG711ToFloat, encodeG711FromFloat, g711SilenceCode, type G711Law } from '../audio/g711.js';
import {
  decodeOrConceal,
  G729_FRAME_BYTES,
  G729_FRAME_SAMPLES,
  loadG729,
  toInt16,
  type G729Decoder,
  type G729Encoder,
} from '../audio/g729.js';
import type {
  FromWorker,
  LegPorts,
  MediaDirection,
  MediaLeg,
  PayloadMap,
  RemoteEndpoint,
  SrtpLegKeys,
  ToWorker,
  WorkerCounters,
} from './media-types.js';

/**
 * The relay of one thread: owns the UDP sockets of its sessions and moves packets between
 * the two legs. Driven by ToWorker messages, reports FromWorker messages through `post`, so
 * the same code runs inside a worker thread or in the main thread (tests, tiny installs).
 *
 * Hot path per RTP packet: a few byte reads, a latch check, one send on a connected socket.
 * Everything else (fork copy, stats) happens after the send.
 */
export interface RelayEngineOptions {
  rtpTimeoutMs: number;
  jitterBufferMs: number;
  /** Fork batches sent to the main thread per message. */
  forkBatchMs?: number;
  /** Unacknowledged fork batches beyond which analysis frames are shed. */
  forkMaxOutstanding?: number;
}

const FRAME_SAMPLES = 160; // 20 ms at 8 kHz
const FRAME_MS = 20;
const REJECT_LOG_INTERVAL_MS = 5000;

interface Endpoint {
  address: string;
  port: number;
}

interface OutStream {
  /** Offsets added to relayed packets after an injection, so seq/ts continue from it. */
  seqOffset: number;
  tsOffset: number;
  lastSeq: number;
  lastTs: number;
  ssrc: number | null;
  pt: number;
  lastAtMs: number;
  resync: boolean;
  injecting: boolean;
}

interface Leg {
  name: MediaLeg;
  rtp: dgram.Socket;
  rtcp: dgram.Socket;
  sdp: RemoteEndpoint | null;
  /** Where RTP toward this leg goes: the latched source, else the SDP address. */
  rtpDest: Endpoint | null;
  rtcpDest: Endpoint | null;
  rtpLatched: boolean;
  rtcpLatched: boolean;
  rtpConnected: boolean;
  ssrc: number | null;
  dir: MediaDirection;
  pmap: PayloadMap;
  /** The stream we send toward this leg. */
  out: OutStream;
  rejected: number;
  rejectLoggedAtMs: number;
  /** SRTP on this leg: `rx` unprotects what the leg sends, `tx` protects what goes to it. */
  srtp: { rx: SrtpContext; tx: SrtpContext } | null;
}

interface Session {
  id: number;
  legs: Record<MediaLeg, Leg>;
  lastRxMs: number;
  timedOut: boolean;
  closed: boolean;
  fork: Fork | null;
  injectTimers: Set<NodeJS.Timeout>;
  injectDone: Set<() => void>;
}

/** Codecs the fork decodes: G.711 always, G.729 when the native decoder is built (src/audio/g729.ts). */
export type ForkCodec = G711Law | 'g729';

interface Fork {
  jb: JitterBuffer;
  /** The codec of the last packet pushed: what a concealed frame without its own is decoded as. */
  codec: ForkCodec;
  /** Each buffered payload's codec, so a switch (a re-INVITE) never decodes a packet as the other codec. */
  codecOf: WeakMap<Uint8Array, ForkCodec>;
  /** One G.729 decoder channel for the fork's life (its state carries across packets). */
  g729: G729Decoder | null;
  chunks: Float32Array[];
  samples: number;
  frames: number;
  outstanding: number;
}

function toKey(k: SrtpLegKeys['remote']): SrtpKey {
  return { suite: k.suite, keySalt: Buffer.from(k.keySalt) };
}

function other(leg: MediaLeg): MediaLeg {
  return leg === 'a' ? 'b' : 'a';
}

function sends(dir: MediaDirection): boolean {
  return dir === 'sendrecv' || dir === 'sendonly';
}
function receives(dir: MediaDirection): boolean {
  return dir === 'sendrecv' || dir === 'recvonly';
}

/** Static payload types (RFC 3551) of the codecs the relay can decode, for streams without an rtpmap. */
const STATIC_PT: Record<number, string> = { 0: 'pcmu', 8: 'pcma', 18: 'g729' };

/**
 * The codec the fork decodes (and injection encodes) for this payload type, named by the first map
 * that has it or else statically, or null (telephone-event, CN, codecs without a decoder).
 */
export function forkCodecOf(pt: number, ...maps: PayloadMap[]): ForkCodec | null {
  const name = (maps.find((m) => m[pt] !== undefined)?.[pt] ?? STATIC_PT[pt])?.toLowerCase();
  if (name === 'pcmu' || name === 'pcma') return name;
  return name === 'g729' && loadG729().codec ? 'g729' : null;
}

function newOut(): OutStream {
  return {
    seqOffset: 0,
    tsOffset: 0,
    lastSeq: 0,
    lastTs: 0,
    ssrc: null,
    pt: 0,
    lastAtMs: 0,
    resync: false,
    injecting: false,
  };
}

export class RelayEngine {
  private readonly sessions = new Map<number, Session>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  readonly counters: WorkerCounters = {
    packetsRelayed: 0,
    packetsDropped: 0,
    forkFramesShed: 0,
    packetsReplaced: 0,
    sourceRejected: 0,
    srtpAuthFailed: 0,
  };
  private readonly forkBatchSamples: number;
  private readonly forkMaxOutstanding: number;
  private readonly jbFrames: number;

  constructor(
    private readonly opts: RelayEngineOptions,
    private readonly post: (msg: FromWorker, transfer?: ArrayBuffer[]) => void,
  ) {
    this.forkBatchSamples = Math.round(((opts.forkBatchMs ?? 60) * 8000) / 1000);
    this.forkMaxOutstanding = opts.forkMaxOutstanding ?? 25;
    this.jbFrames = Math.max(0, Math.ceil(opts.jitterBufferMs / FRAME_MS));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  handle(msg: ToWorker): void {
    switch (msg.t) {
      case 'open':
        void this.open(msg.id, msg.bindHost, msg.ports);
        return;
      case 'close':
        this.close(msg.id);
        return;
    }
    const s = this.sessions.get(msg.id);
    if (!s) {
      if (msg.t === 'inject')
        this.post({ t: 'inject-done', id: msg.id, req: msg.req, error: 'session closed' });
      return;
    }
    switch (msg.t) {
      case 'remote':
        this.setRemote(s, msg.leg, msg.remote);
        return;
      case 'pmap':
        s.legs[msg.leg].pmap = msg.map;
        return;
      case 'dir':
        s.legs[msg.leg].dir = msg.dir;
        return;
      case 'srtp':
        this.setSrtp(s, msg.leg, msg.keys);
        return;
      case 'fork':
        this.setFork(s, msg.on);
        return;
      case 'fork-ack':
        if (s.fork && s.fork.outstanding > 0) s.fork.outstanding--;
        return;
      case 'inject':
        this.inject(s, msg.req, msg.toward, msg.pcm);
        return;
    }
  }

  /** Close every session (thread shutdown). */
  shutdown(): void {
    for (const id of [...this.sessions.keys()]) this.close(id);
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
  }

  private async open(id: number, bindHost: string, ports: Record<MediaLeg, LegPorts>): Promise<void> {
    const type = isIP(bindHost) === 6 ? 'udp6' : 'udp4';
    const bound: dgram.Socket[] = [];
    const bind = (port: number): Promise<dgram.Socket> =>
      new Promise((resolve, reject) => {
        const sock = dgram.createSocket({ type, reuseAddr: false });
        sock.once('error', (err) => {
          sock.close();
          reject(Object.assign(err, { port }));
        });
        sock.bind({ port, address: bindHost, exclusive: true }, () => {
          sock.removeAllListeners('error');
          bound.push(sock);
          resolve(sock);
        });
      });
    try {
      const a = { rtp: await bind(ports.a.rtp), rtcp: await bind(ports.a.rtcp) };
      const b = { rtp: await bind(ports.b.rtp), rtcp: await bind(ports.b.rtcp) };
      const s: Session = {
        id,
        legs: { a: this.newLeg('a', a.rtp, a.rtcp), b: this.newLeg('b', b.rtp, b.rtcp) },
        lastRxMs: Date.now(),
        timedOut: false,
        closed: false,
        fork: null,
        injectTimers: new Set(),
        injectDone: new Set(),
      };
      this.sessions.set(id, s);
      this.wire(s, 'a');
      this.wire(s, 'b');
      this.ensureTimers();
      this.post({ t: 'opened', id });
    } catch (err) {
      for (const sock of bound) sock.close();
      const e = err as Error & { port?: number };
      this.post({ t: 'open-failed', id, port: e.port ?? 0, message: e.message });
    }
  }

  private newLeg(name: MediaLeg, rtp: dgram.Socket, rtcp: dgram.Socket): Leg {
    return {
      name,
      rtp,
      rtcp,
      sdp: null,
      rtpDest: null,
      rtcpDest: null,
      rtpLatched: false,
      rtcpLatched: false,
      rtpConnected: false,
      ssrc: null,
      dir: 'sendrecv',
      pmap: {},
      out: newOut(),
      rejected: 0,
      rejectLoggedAtMs: 0,
      srtp: null,
    };
  }

  private wire(s: Session, name: MediaLeg): void {
    const leg = s.legs[name];
    const peer = s.legs[other(name)];
    // ICMP port-unreachable on a connected socket surfaces as an 'error' event: a fact of the
    // network, not a reason to end the call.
    leg.rtp.on('error', () => this.counters.packetsDropped++);
    leg.rtcp.on('error', () => this.counters.packetsDropped++);
    leg.rtp.on('message', (msg, rinfo) => this.onRtp(s, leg, peer, msg, rinfo));
    leg.rtcp.on('message', (msg, rinfo) => this.onRtcp(s, leg, peer, msg, rinfo));
  }

  private setRemote(s: Session, name: MediaLeg, remote: RemoteEndpoint): void {
    const leg = s.legs[name];
    leg.sdp = remote;
    if (!leg.rtpLatched) leg.rtpDest = { address: remote.address, port: remote.rtpPort };
    if (!leg.rtcpLatched)
      leg.rtcpDest = { address: remote.address, port: remote.rtcpPort ?? remote.rtpPort + 1 };
    // The RTP timeout counts from the moment media is expected.
    s.lastRxMs = Math.max(s.lastRxMs, Date.now());
  }

  /**
   * SRTP keys for a leg (null: plain RTP again). Contexts are rebuilt only when a key changes, so a
   * re-INVITE that repeats the keys keeps the rollover counters.
   */
  private setSrtp(s: Session, name: MediaLeg, keys: SrtpLegKeys | null): void {
    const leg = s.legs[name];
    if (!keys) {
      leg.srtp = null;
      return;
    }
    const same = (c: SrtpContext | undefined, k: SrtpLegKeys['remote']) =>
      c !== undefined && c.key.suite === k.suite && c.key.keySalt.equals(k.keySalt);
    const rx = same(leg.srtp?.rx, keys.remote) ? leg.srtp!.rx : new SrtpContext(toKey(keys.remote));
    const tx = same(leg.srtp?.tx, keys.local) ? leg.srtp!.tx : new SrtpContext(toKey(keys.local));
    leg.srtp = { rx, tx };
  }

  private onRtp(s: Session, leg: Leg, peer: Leg, raw: Buffer, rinfo: dgram.RemoteInfo): void {
    if (raw.length < 12 || raw[0] >> 6 !== 2) {
      this.counters.packetsDropped++;
      return;
    }
    // Only authentic packets latch or count as media: a forged or replayed one is dropped here.
    const msg = this.unprotect(leg, raw, isRtcp(raw));
    if (!msg) return;
    const now = Date.now();
    if (!leg.rtpLatched) {
      this.latchRtp(s, leg, rinfo);
    } else if (!leg.rtpConnected) {
      const d = leg.rtpDest!;
      if (rinfo.port !== d.port || rinfo.address !== d.address) {
        this.reject(s, leg, rinfo);
        return;
      }
    }
    s.lastRxMs = now;
    if (isRtcp(msg)) {
      // rtcp-mux peer: pass it on unchanged on the RTP path.
      if (peer.rtpDest) this.sendRtp(peer, msg, true);
      return;
    }
    const ssrc = msg.readUInt32BE(8);
    if (leg.ssrc !== ssrc) {
      if (leg.ssrc !== null) this.ssrcChanged(s, leg, peer, ssrc);
      leg.ssrc = ssrc;
    }
    if (sends(leg.dir) && receives(peer.dir) && peer.rtpDest) {
      const out = peer.out;
      if (out.injecting) {
        this.counters.packetsReplaced++;
      } else {
        let seq = msg.readUInt16BE(2);
        let ts = msg.readUInt32BE(4);
        if (out.resync) {
          // First packet after an injection with the same SSRC: continue its numbering.
          out.resync = false;
          const gap = Math.max(1, Math.round((now - out.lastAtMs) / FRAME_MS));
          out.seqOffset = (out.lastSeq + 1 - seq) & 0xffff;
          out.tsOffset = (out.lastTs + gap * FRAME_SAMPLES - ts) >>> 0;
        }
        if (out.seqOffset !== 0 || out.tsOffset !== 0) {
          seq = (seq + out.seqOffset) & 0xffff;
          ts = (ts + out.tsOffset) >>> 0;
          msg.writeUInt16BE(seq, 2);
          msg.writeUInt32BE(ts, 4);
        }
        this.sendRtp(peer, msg);
        this.counters.packetsRelayed++;
        out.lastSeq = seq;
        out.lastTs = ts;
        out.ssrc = ssrc;
        out.pt = msg[1] & 0x7f;
        out.lastAtMs = now;
      }
    } else {
      this.counters.packetsDropped++;
    }
    // Analysis copy after the relay send: the fork never delays or drops a relayed packet.
    if (s.fork && leg.name === 'a') this.forkPacket(s, s.fork, msg);
  }

  private sendRtp(leg: Leg, plain: Buffer, rtcp = false): void {
    const msg = this.protect(leg, plain, rtcp);
    if (!msg) return;
    if (leg.rtpConnected) leg.rtp.send(msg);
    else if (leg.rtpDest) leg.rtp.send(msg, leg.rtpDest.port, leg.rtpDest.address);
  }

  /** What a leg sent, decrypted when the leg is SRTP; null (dropped, counted) when not authentic. */
  private unprotect(leg: Leg, raw: Buffer, rtcp: boolean): Buffer | null {
    if (!leg.srtp) return raw;
    const plain = rtcp ? leg.srtp.rx.unprotectRtcp(raw) : leg.srtp.rx.unprotectRtp(raw);
    // Answer the peer's SRTCP in the tag length it uses (libre's _32 suites send 32-bit tags).
    if (plain && rtcp) leg.srtp.tx.rtcpTagBytes = leg.srtp.rx.rtcpTagBytes;
    if (!plain) {
      this.counters.packetsDropped++;
      this.counters.srtpAuthFailed++;
    }
    return plain;
  }

  /** What goes to a leg, encrypted when the leg is SRTP; null (dropped, counted) when it cannot be. */
  private protect(leg: Leg, plain: Buffer, rtcp: boolean): Buffer | null {
    if (!leg.srtp) return plain;
    try {
      return rtcp ? leg.srtp.tx.protectRtcp(plain) : leg.srtp.tx.protectRtp(plain);
    } catch {
      this.counters.packetsDropped++;
      return null;
    }
  }

  private latchRtp(s: Session, leg: Leg, rinfo: dgram.RemoteInfo): void {
    leg.rtpLatched = true;
    leg.rtpDest = { address: rinfo.address, port: rinfo.port };
    // A connected socket lets the kernel do strict source filtering and makes send() cheaper.
    leg.rtp.connect(rinfo.port, rinfo.address, () => {
      if (!s.closed) leg.rtpConnected = true;
    });
    this.post({
      t: 'latched',
      id: s.id,
      ev: {
        leg: leg.name,
        kind: 'rtp',
        address: rinfo.address,
        port: rinfo.port,
        sdpAddress: leg.sdp?.address ?? null,
        sdpPort: leg.sdp?.rtpPort ?? null,
      },
    });
  }

  private reject(s: Session, leg: Leg, rinfo: dgram.RemoteInfo): void {
    this.counters.sourceRejected++;
    this.counters.packetsDropped++;
    leg.rejected++;
    const now = Date.now();
    if (now - leg.rejectLoggedAtMs >= REJECT_LOG_INTERVAL_MS) {
      leg.rejectLoggedAtMs = now;
      this.post({
        t: 'source-rejected',
        id: s.id,
        ev: { leg: leg.name, address: rinfo.address, port: rinfo.port, count: leg.rejected },
      });
    }
  }

  private ssrcChanged(s: Session, leg: Leg, peer: Leg, ssrc: number): void {
    // Re-latch policy: the source is already latched (and the socket connected), so a new SSRC
    // from it is the same peer restarting its stream (re-INVITE, transfer, PBX media change).
    // Numbering offsets from an earlier injection belong to the old stream.
    this.post({ t: 'ssrc-change', id: s.id, ev: { leg: leg.name, oldSsrc: leg.ssrc!, newSsrc: ssrc } });
    peer.out.seqOffset = 0;
    peer.out.tsOffset = 0;
    peer.out.resync = false;
    if (s.fork && leg.name === 'a') s.fork.jb.flush();
  }

  private onRtcp(s: Session, leg: Leg, peer: Leg, raw: Buffer, rinfo: dgram.RemoteInfo): void {
    if (raw.length < 4 || raw[0] >> 6 !== 2) {
      this.counters.packetsDropped++;
      return;
    }
    const msg = this.unprotect(leg, raw, true);
    if (!msg) return;
    if (!leg.rtcpLatched) {
      leg.rtcpLatched = true;
      leg.rtcpDest = { address: rinfo.address, port: rinfo.port };
      this.post({
        t: 'latched',
        id: s.id,
        ev: {
          leg: leg.name,
          kind: 'rtcp',
          address: rinfo.address,
          port: rinfo.port,
          sdpAddress: leg.sdp?.address ?? null,
          sdpPort: leg.sdp ? (leg.sdp.rtcpPort ?? leg.sdp.rtpPort + 1) : null,
        },
      });
    } else if (rinfo.port !== leg.rtcpDest!.port || rinfo.address !== leg.rtcpDest!.address) {
      this.reject(s, leg, rinfo);
      return;
    }
    s.lastRxMs = Date.now();
    const d = peer.rtcpDest;
    if (d) {
      const out = this.protect(peer, msg, true);
      if (!out) return;
      peer.rtcp.send(out, d.port, d.address);
      this.counters.packetsRelayed++;
    } else {
      this.counters.packetsDropped++;
    }
  }

  // ---- fork -------------------------------------------------------------------------

  private setFork(s: Session, on: boolean): void {
    if (!on) {
      if (s.fork) {
        s.fork.jb.flush();
        this.flushFork(s, s.fork);
        s.fork.g729?.close();
      }
      s.fork = null;
      return;
    }
    if (s.fork) return;
    const fork: Fork = {
      codec: 'pcmu',
      codecOf: new WeakMap(),
      g729: null,
      chunks: [],
      samples: 0,
      frames: 0,
      outstanding: 0,
      jb: null as unknown as JitterBuffer,
    };
    fork.jb = new JitterBuffer(this.jbFrames, g711SilenceCode('pcmu'), (payload, kind) => {
      const known = fork.codecOf.get(payload);
      const codec = known ?? fork.codec;
      // A payload of no packet is the buffer's own stand-in for a gap: silence, whatever the G.711 law.
      const pcm =
        codec === 'g729'
          ? this.decodeG729(fork, payload, kind)
          : known === undefined
            ? new Float32Array(payload.length)
            : decodeG711ToFloat(codec, payload);
      fork.chunks.push(pcm);
      fork.samples += pcm.length;
      fork.frames++;
      if (fork.samples >= this.forkBatchSamples) this.flushFork(s, fork);
    });
    s.fork = fork;
  }

  private forkPacket(s: Session, fork: Fork, msg: Buffer): void {
    const pt = msg[1] & 0x7f;
    const a = s.legs.a;
    const codec = forkCodecOf(pt, a.pmap, s.legs.b.pmap);
    if (codec === null) return; // telephone-event, comfort noise, codecs we cannot decode
    fork.codec = codec;
    const cc = msg[0] & 0x0f;
    let off = 12 + cc * 4;
    if (msg[0] & 0x10) {
      if (off + 4 > msg.length) return;
      off += 4 + msg.readUInt16BE(off + 2) * 4;
    }
    let end = msg.length;
    if (msg[0] & 0x20) end -= msg[msg.length - 1];
    if (off >= end) return;
    // Copy: the packet buffer was handed to the socket.
    const payload = Uint8Array.prototype.slice.call(msg, off, end);
    fork.codecOf.set(payload, codec);
    fork.jb.push(msg.readUInt16BE(2), payload);
  }

  /**
   * A G.729 payload (or a concealed one: the jitter buffer's stand-in for a lost packet) to samples.
   * A payload that is not whole G.729 frames (a mislabelled stream) is concealed too, never thrown.
   */
  private decodeG729(fork: Fork, payload: Uint8Array, kind: 'packet' | 'concealed'): Float32Array {
    const frames = Math.max(1, Math.min(100, Math.round(payload.length / G729_FRAME_BYTES)));
    let dec: G729Decoder;
    try {
      dec = fork.g729 ??= new (loadG729().codec!.G729Decoder)();
    } catch {
      return new Float32Array(frames * G729_FRAME_SAMPLES); // no channel (out of memory): silence, the call goes on
    }
    return kind === 'packet' ? decodeOrConceal(dec, payload, frames) : dec.conceal(frames);
  }

  private flushFork(s: Session, fork: Fork): void {
    if (fork.samples === 0) return;
    const frames = fork.frames;
    const pcm = new Float32Array(fork.samples);
    let o = 0;
    for (const c of fork.chunks) {
      pcm.set(c, o);
      o += c.length;
    }
    fork.chunks = [];
    fork.samples = 0;
    fork.frames = 0;
    if (fork.outstanding >= this.forkMaxOutstanding) {
      // The consumer (detector) is behind: shed analysis audio, keep relaying.
      this.counters.forkFramesShed += frames;
      return;
    }
    fork.outstanding++;
    this.post({ t: 'audio', id: s.id, pcm }, [pcm.buffer as ArrayBuffer]);
  }

  // ---- inject -----------------------------------------------------------------------

  private inject(s: Session, req: number, toward: MediaLeg, pcm: Float32Array): void {
    const leg = s.legs[toward];
    const src = s.legs[other(toward)];
    const out = leg.out;
    if (!leg.rtpDest) {
      this.post({ t: 'inject-done', id: s.id, req, error: `no remote address for leg ${toward}` });
      return;
    }
    if (out.injecting) {
      this.post({
        t: 'inject-done',
        id: s.id,
        req,
        error: `an injection toward leg ${toward} is already playing`,
      });
      return;
    }
    // Injected audio is G.711, or G.729 when the native codec is built: under the payload type
    // flowing, or another one negotiated (the last packet relayed may have been a telephone-event),
    // G.711 first. A stream in a codec the relay cannot encode (Opus, G.722, or G.729 without the
    // native codec: media.undecodable relay) gets nothing rather than noise.
    const injectPt = (): number | null => {
      for (const g711 of [true, false])
        for (const m of [leg.pmap, src.pmap]) {
          const found = Object.keys(m).find((pt) => {
            const c = forkCodecOf(Number(pt), m);
            return c !== null && (c !== 'g729') === g711;
          });
          if (found !== undefined) return Number(found);
        }
      const audio = [...Object.values(leg.pmap), ...Object.values(src.pmap)].filter(
        (n) => n.toLowerCase() !== 'telephone-event',
      );
      return audio.length === 0 ? 0 : null;
    };
    const now = Date.now();
    let ssrc: number;
    let seq: number;
    let ts: number;
    let pt: number | null;
    const flowing = out.ssrc !== null && now - out.lastAtMs < 1000;
    if (flowing) {
      ssrc = out.ssrc!;
      pt = forkCodecOf(out.pt, src.pmap, leg.pmap) !== null ? out.pt : injectPt();
      seq = out.lastSeq;
      ts =
        (out.lastTs + (Math.max(1, Math.round((now - out.lastAtMs) / FRAME_MS)) - 1) * FRAME_SAMPLES) >>> 0;
    } else {
      // Nothing flows toward this leg: a stream of our own.
      ssrc = randomInt(1, 0xffffffff);
      seq = randomInt(0, 0xffff);
      ts = randomInt(0, 0x7fffffff);
      pt = injectPt();
    }
    if (pt === null) {
      const codecs = [...new Set([...Object.values(leg.pmap), ...Object.values(src.pmap)])];
      this.post({
        t: 'inject-done',
        id: s.id,
        req,
        error: `the media toward leg ${toward} is neither G.711 nor G.729 with its codec built (${codecs.join(', ')}): nothing injected`,
      });
      return;
    }
    const codec = forkCodecOf(pt, src.pmap, leg.pmap) ?? 'pcmu';
    const frames = Math.ceil(pcm.length / FRAME_SAMPLES);
    let codes: Uint8Array;
    let bytesPerPacket: number;
    if (codec === 'g729') {
      const samples = toInt16(pcm, frames * FRAME_SAMPLES);
      let enc: G729Encoder | null = null;
      try {
        enc = new (loadG729().codec!.G729Encoder)();
        codes = enc.encode(samples);
      } catch (err) {
        this.post({ t: 'inject-done', id: s.id, req, error: `G.729 encoder: ${(err as Error).message}` });
        return;
      } finally {
        enc?.close();
      }
      bytesPerPacket = (FRAME_SAMPLES / G729_FRAME_SAMPLES) * G729_FRAME_BYTES;
    } else {
      codes = new Uint8Array(frames * FRAME_SAMPLES).fill(g711SilenceCode(codec));
      encodeG711FromFloat(codec, pcm, codes.subarray(0, pcm.length));
      bytesPerPacket = FRAME_SAMPLES;
    }
    out.injecting = true;
    out.resync = false;
    const startMs = now;
    let i = 0;
    const finish = (error: string | null): void => {
      s.injectDone.delete(onClose);
      out.injecting = false;
      if (flowing && error === null) {
        // Relayed packets continue the injected numbering.
        out.resync = true;
      } else if (!flowing) {
        out.seqOffset = 0;
        out.tsOffset = 0;
      }
      out.lastSeq = seq;
      out.lastTs = ts;
      out.ssrc = ssrc;
      out.pt = pt;
      out.lastAtMs = Date.now();
      this.post({ t: 'inject-done', id: s.id, req, error });
    };
    const onClose = (): void => finish('session closed');
    s.injectDone.add(onClose);
    const tick = (): void => {
      if (s.closed) return;
      // Catch up if the timer ran late, so the stream keeps real time.
      const due = Math.min(frames, Math.floor((Date.now() - startMs) / FRAME_MS) + 1);
      while (i < due) {
        seq = (seq + 1) & 0xffff;
        ts = (ts + FRAME_SAMPLES) >>> 0;
        const pkt = Buffer.allocUnsafe(12 + bytesPerPacket);
        pkt[0] = 0x80;
        pkt[1] = (i === 0 && !flowing ? 0x80 : 0) | pt;
        pkt.writeUInt16BE(seq, 2);
        pkt.writeUInt32BE(ts, 4);
        pkt.writeUInt32BE(ssrc >>> 0, 8);
        pkt.set(codes.subarray(i * bytesPerPacket, (i + 1) * bytesPerPacket), 12);
        if (receives(leg.dir)) this.sendRtp(leg, pkt);
        i++;
      }
      if (i >= frames) {
        finish(null);
        return;
      }
      const t = setTimeout(
        () => {
          s.injectTimers.delete(t);
          tick();
        },
        Math.max(1, startMs + i * FRAME_MS - Date.now()),
      );
      s.injectTimers.add(t);
    };
    tick();
  }

  // ---- lifecycle ----------------------------------------------------------------------

  private close(id: number): void {
    const s = this.sessions.get(id);
    if (!s) {
      this.post({ t: 'closed', id, counters: { ...this.counters } });
      return;
    }
    s.closed = true;
    this.sessions.delete(id);
    for (const t of s.injectTimers) clearTimeout(t);
    s.injectTimers.clear();
    for (const done of [...s.injectDone]) done();
    if (s.fork) {
      s.fork.jb.flush();
      this.flushFork(s, s.fork);
      s.fork.g729?.close();
      s.fork = null;
    }
    for (const leg of [s.legs.a, s.legs.b]) {
      leg.rtp.close();
      leg.rtcp.close();
    }
    if (this.sessions.size === 0 && this.sweepTimer) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
    this.post({ t: 'closed', id, counters: { ...this.counters } });
  }

  private ensureTimers(): void {
    if (!this.sweepTimer) {
      const every = Math.min(1000, Math.max(50, Math.floor(this.opts.rtpTimeoutMs / 4)));
      this.sweepTimer = setInterval(() => this.sweep(), every);
    }
  }

  startStatsReports(everyMs: number): void {
    if (this.statsTimer) return;
    this.statsTimer = setInterval(() => this.post({ t: 'stats', counters: { ...this.counters } }), everyMs);
    this.statsTimer.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const s of this.sessions.values()) {
      if (s.timedOut) continue;
      const a = s.legs.a;
      const b = s.legs.b;
      const expecting = (a.sdp !== null || b.sdp !== null) && !(a.dir === 'inactive' && b.dir === 'inactive');
      if (!expecting) continue;
      const silentMs = now - s.lastRxMs;
      if (silentMs >= this.opts.rtpTimeoutMs) {
        s.timedOut = true;
        this.post({ t: 'rtp-timeout', id: s.id, ev: { silentMs } });
      }
    }
  }
}
