import { seqDelta } from './rtp-packet.js';

/**
 * The analysis fork's jitter buffer: orders RTP payloads by sequence number (16-bit wrap),
 * drops duplicates and packets that arrive after their slot was played out, and conceals a
 * missing packet once `depthFrames` later packets are waiting behind it. Pure: the caller
 * pushes packets and receives frames through `onFrame`. It never delays the relayed packets;
 * it only sits on the copy made for analysis.
 */
export interface JitterBufferStats {
  framesOut: number;
  concealed: number;
  duplicates: number;
  late: number;
  resets: number;
}

export type FrameKind = 'packet' | 'concealed';

export class JitterBuffer {
  /** Next sequence number to play out, or null before the first packet. */
  private next: number | null = null;
  private readonly pending = new Map<number, Uint8Array>();
  private lastFrame: Uint8Array | null = null;
  private concealRun = 0;
  readonly stats: JitterBufferStats = { framesOut: 0, concealed: 0, duplicates: 0, late: 0, resets: 0 };

  constructor(
    private readonly depthFrames: number,
    private readonly silenceCode: number,
    private readonly onFrame: (payload: Uint8Array, kind: FrameKind) => void,
  ) {}

  push(seq: number, payload: Uint8Array): void {
    seq &= 0xffff;
    if (this.next === null) this.next = seq;
    const d = seqDelta(this.next, seq);
    if (d < 0) {
      // Far in the past means the sender restarted its sequence: start over rather than drop a whole stream.
      if (d < -1000) {
        this.reset(seq);
      } else {
        this.stats.late++;
        return;
      }
    } else if (d > 1000) {
      this.reset(seq);
    }
    if (this.pending.has(seq)) {
      this.stats.duplicates++;
      return;
    }
    this.pending.set(seq, payload);
    this.drain(false);
  }

  /** Play out everything still waiting, concealing gaps (end of stream / fork stop). */
  flush(): void {
    this.drain(true);
  }

  private reset(seq: number): void {
    this.drain(true);
    this.pending.clear();
    this.next = seq;
    this.stats.resets++;
  }

  private drain(all: boolean): void {
    while (this.next !== null && this.pending.size > 0) {
      const p = this.pending.get(this.next);
      if (p !== undefined) {
        this.pending.delete(this.next);
        this.emit(p, 'packet');
      } else if (all || this.pending.size > this.depthFrames) {
        this.emit(this.conceal(), 'concealed');
      } else {
        return;
      }
      this.next = (this.next + 1) & 0xffff;
    }
  }

  private conceal(): Uint8Array {
    this.stats.concealed++;
    const len = this.lastFrame?.length ?? 160;
    // One lost frame: repeat the previous one (short gaps stay inaudible to the detector's
    // spectral features); a longer gap becomes silence so repeated frames do not build a buzz.
    if (this.lastFrame && this.concealRun === 0) return this.lastFrame;
    return new Uint8Array(len).fill(this.silenceCode);
  }

  private emit(p: Uint8Array, kind: FrameKind): void {
    this.stats.framesOut++;
    if (kind === 'packet') {
      this.lastFrame = p;
      this.concealRun = 0;
    } else {
      this.concealRun++;
    }
    this.onFrame(p, kind);
  }
}
