import { PortPoolExhaustedError } from './media-types.js';

/**
 * RTP port pairs (even RTP port, RTP+1 for RTCP) from [portMin, portMax]. Pure bookkeeping:
 * binding happens in the relay worker, and a pair that fails to bind (used by another
 * program) is handed back with `release` and skipped by the round-robin cursor, which also
 * keeps a just-freed pair from being reused at once (late packets of the old call).
 */
export class PortPool {
  private readonly first: number;
  private readonly pairs: number;
  private readonly used: Uint8Array;
  private cursor = 0;
  private inUseCount = 0;

  constructor(
    readonly portMin: number,
    readonly portMax: number,
  ) {
    this.first = portMin % 2 === 0 ? portMin : portMin + 1;
    this.pairs = Math.max(0, Math.floor((portMax - this.first + 1) / 2));
    this.used = new Uint8Array(this.pairs);
  }

  /** Number of RTP+RTCP port pairs currently handed out. */
  get pairsInUse(): number {
    return this.inUseCount;
  }

  get capacity(): number {
    return this.pairs;
  }

  /** The next free pair's RTP port; throws PortPoolExhaustedError when none is free. */
  acquire(): number {
    for (let i = 0; i < this.pairs; i++) {
      const idx = (this.cursor + i) % this.pairs;
      if (this.used[idx] === 0) {
        this.used[idx] = 1;
        this.inUseCount++;
        this.cursor = (idx + 1) % this.pairs;
        return this.first + idx * 2;
      }
    }
    throw new PortPoolExhaustedError(this.portMin, this.portMax);
  }

  release(rtpPort: number): void {
    const idx = (rtpPort - this.first) / 2;
    if (!Number.isInteger(idx) || idx < 0 || idx >= this.pairs || this.used[idx] === 0) return;
    this.used[idx] = 0;
    this.inUseCount--;
  }
}
