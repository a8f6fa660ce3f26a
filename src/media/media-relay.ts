import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { Config } from '../config/schema.js';
import { PortPool } from './port-pool.js';
import { RelayEngine } from './relay-engine.js';
import { assertSrtpKey } from './srtp.js';
import {
  MediaError,
  PortPoolExhaustedError,
  type FromWorker,
  type LatchedEvent,
  type LocalEndpoint,
  type MediaDirection,
  type MediaLeg,
  type MediaRelayStats,
  type PayloadMap,
  type RemoteEndpoint,
  type RtpTimeoutEvent,
  type SrtpLegKeys,
  type SsrcChangeEvent,
  type ToWorker,
  type WorkerCounters,
} from './media-types.js';

export * from './media-types.js';

export interface MediaRelay {
  allocate(callId: string): Promise<MediaSession>;
  stats(): MediaRelayStats;
  close(): Promise<void>;
}

export interface MediaRelayOptions {
  /**
   * Run the relay engine in the calling thread instead of worker threads. For tests that
   * inspect timers of the process, and for tools; the gateway uses workers.
   */
  inThread?: boolean;
}

/** A relay thread as seen from the main thread: a worker, or an engine in this thread. */
interface Shard {
  send(msg: ToWorker, transfer?: ArrayBuffer[]): void;
  sessions: number;
  counters: WorkerCounters;
  stop(): Promise<void>;
}

const ZERO: WorkerCounters = {
  packetsRelayed: 0,
  packetsDropped: 0,
  forkFramesShed: 0,
  packetsReplaced: 0,
  sourceRejected: 0,
  srtpAuthFailed: 0,
};

/**
 * Anchors RTP for calls: per call, two legs ('a' = trunk/caller, 'b' = PBX), each an RTP and an
 * RTCP socket. Sessions are sharded over worker threads (media.callsPerWorker each, up to
 * media.workers or the CPU count); each worker owns its sockets, this class owns the port pool
 * and talks to the workers by message.
 */
export async function createMediaRelay(
  cfg: Config['media'],
  logger: Logger,
  opts: MediaRelayOptions = {},
): Promise<MediaRelay> {
  return new TsMediaRelay(cfg, logger, opts);
}

type Pending = { resolve: () => void; reject: (e: Error) => void; failedPort?: number; failMessage?: string };

export class TsMediaRelay implements MediaRelay {
  private readonly pool: PortPool;
  private readonly shards: Shard[] = [];
  private readonly sessions = new Map<number, MediaSession>();
  private readonly opening = new Map<number, Pending>();
  private readonly closing = new Map<number, () => void>();
  private readonly injects = new Map<string, { resolve: () => void; reject: (e: Error) => void }>();
  private readonly maxShards: number;
  private nextId = 1;
  private nextReq = 1;
  private closedCounters: WorkerCounters = { ...ZERO };
  private closed = false;

  constructor(
    private readonly cfg: Config['media'],
    private readonly logger: Logger,
    private readonly opts: MediaRelayOptions,
  ) {
    this.pool = new PortPool(cfg.portMin, cfg.portMax);
    this.maxShards = opts.inThread ? 1 : cfg.workers > 0 ? cfg.workers : Math.max(1, availableParallelism());
  }

  stats(): MediaRelayStats {
    const sum = { ...this.closedCounters };
    for (const sh of this.shards) {
      for (const k of Object.keys(sum) as (keyof WorkerCounters)[]) sum[k] += sh.counters[k];
    }
    return {
      sessions: this.sessions.size,
      portsInUse: this.pool.pairsInUse * 2,
      workers: this.shards.length,
      ...sum,
    };
  }

  async allocate(callId: string): Promise<MediaSession> {
    if (this.closed) throw new MediaError('MEDIA_RELAY_CLOSED', 'media relay is closed');
    const shard = this.pickShard();
    // Pairs that failed to bind are held until the allocation ends, so the retry moves on.
    const skipped: number[] = [];
    try {
      for (let attempt = 0; ; attempt++) {
        const a = this.pool.acquire();
        let b: number;
        try {
          b = this.pool.acquire();
        } catch (err) {
          this.pool.release(a);
          throw err;
        }
        const id = this.nextId++;
        const ok = await new Promise<boolean>((resolve, reject) => {
          this.opening.set(id, {
            resolve: () => resolve(true),
            reject: (e) => (e instanceof BindFailure ? resolve(false) : reject(e)),
          });
          shard.send({
            t: 'open',
            id,
            bindHost: this.cfg.bindHost,
            ports: { a: { rtp: a, rtcp: a + 1 }, b: { rtp: b, rtcp: b + 1 } },
          });
        });
        if (ok) {
          shard.sessions++;
          const s = new MediaSession(
            callId,
            id,
            this,
            shard,
            { a, b },
            this.cfg,
            this.logger.child({ callId }),
          );
          this.sessions.set(id, s);
          return s;
        }
        this.logger.debug(
          { event: 'media.port_busy', ports: [a, b] },
          'RTP port pair in use by another program; trying the next',
        );
        skipped.push(a, b);
        if (attempt > this.pool.capacity)
          throw new PortPoolExhaustedError(this.cfg.portMin, this.cfg.portMax);
      }
    } catch (err) {
      if (err instanceof PortPoolExhaustedError) {
        this.logger.warn(
          { event: 'media.ports_exhausted', portMin: this.cfg.portMin, portMax: this.cfg.portMax },
          err.message,
        );
      }
      throw err;
    } finally {
      for (const p of skipped) this.pool.release(p);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
    await Promise.all(this.shards.map((sh) => sh.stop()));
    for (const sh of this.shards) {
      for (const k of Object.keys(this.closedCounters) as (keyof WorkerCounters)[])
        this.closedCounters[k] += sh.counters[k];
    }
    this.shards.length = 0;
  }

  // ---- used by MediaSession ------------------------------------------------------------

  /** @internal */
  requestClose(s: MediaSession, shard: Shard): Promise<void> {
    return new Promise((resolve) => {
      this.closing.set(s.id, resolve);
      shard.send({ t: 'close', id: s.id });
    });
  }

  /** @internal */
  finishClose(s: MediaSession, shard: Shard, ports: Record<MediaLeg, number>): void {
    this.sessions.delete(s.id);
    shard.sessions--;
    this.pool.release(ports.a);
    this.pool.release(ports.b);
  }

  /** @internal */
  requestInject(s: MediaSession, shard: Shard, toward: MediaLeg, pcm: Float32Array): Promise<void> {
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.injects.set(`${s.id}:${req}`, { resolve, reject });
      const copy = new Float32Array(pcm);
      shard.send({ t: 'inject', id: s.id, req, toward, pcm: copy }, [copy.buffer as ArrayBuffer]);
    });
  }

  private pickShard(): Shard {
    let best: Shard | null = null;
    for (const sh of this.shards) if (!best || sh.sessions < best.sessions) best = sh;
    if (best && (best.sessions < this.cfg.callsPerWorker || this.shards.length >= this.maxShards))
      return best;
    const sh = this.opts.inThread ? this.inThreadShard() : this.workerShard();
    this.shards.push(sh);
    return sh;
  }

  private engineOptions() {
    return { rtpTimeoutMs: this.cfg.rtpTimeoutMs, jitterBufferMs: this.cfg.jitterBufferMs };
  }

  private inThreadShard(): Shard {
    const shard: Shard = {
      sessions: 0,
      counters: { ...ZERO },
      send: (msg) => engine.handle(msg),
      stop: async () => engine.shutdown(),
    };
    // Replies are delivered asynchronously, like worker messages, so callers see one behaviour.
    const engine = new RelayEngine(this.engineOptions(), (msg) =>
      queueMicrotask(() => this.onMessage(shard, msg)),
    );
    shard.counters = engine.counters;
    return shard;
  }

  private workerShard(): Shard {
    // Workers always run compiled JS. From dist/ that is the neighbouring file; from the .ts
    // sources (vitest, tsx) it is the build output, because Node 20 does not apply loader
    // hooks (tsx) to a worker's entry module. `npm test` builds first (pretest).
    const isTs = import.meta.url.endsWith('.ts');
    const url = new URL(isTs ? '../../dist/src/media/relay-worker.js' : './relay-worker.js', import.meta.url);
    if (isTs && !existsSync(url)) {
      throw new MediaError(
        'MEDIA_WORKER_FAILED',
        `relay worker not built: ${url.pathname} missing (run npm run build)`,
      );
    }
    const worker = new Worker(url, { workerData: { ...this.engineOptions(), statsEveryMs: 250 } });
    let exited = false;
    const exitedP = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const shard: Shard = {
      sessions: 0,
      counters: { ...ZERO },
      send: (msg, transfer) => {
        if (!exited) worker.postMessage(msg, transfer ?? []);
      },
      stop: async () => {
        if (exited) return;
        worker.postMessage({ t: 'shutdown' });
        const t = setTimeout(() => void worker.terminate(), 2000);
        await exitedP;
        clearTimeout(t);
      },
    };
    worker.on('message', (msg: FromWorker) => this.onMessage(shard, msg));
    worker.on('error', (err) => {
      this.logger.error({ event: 'media.worker_error', err: err.message }, 'relay worker failed');
    });
    worker.once('exit', (code) => {
      exited = true;
      const i = this.shards.indexOf(shard);
      if (i >= 0) this.shards.splice(i, 1);
      for (const k of Object.keys(this.closedCounters) as (keyof WorkerCounters)[])
        this.closedCounters[k] += shard.counters[k];
      shard.counters = { ...ZERO };
      // Fail everything that lived on this worker: its sockets are gone.
      for (const s of [...this.sessions.values()])
        if (s.shard === shard) s.workerLost(`relay worker exited (${code})`);
      for (const [id, p] of this.opening) {
        this.opening.delete(id);
        p.reject(new MediaError('MEDIA_WORKER_FAILED', `relay worker exited (${code})`));
      }
    });
    return shard;
  }

  private onMessage(shard: Shard, msg: FromWorker): void {
    switch (msg.t) {
      case 'stats':
        shard.counters = msg.counters;
        return;
      case 'opened': {
        const p = this.opening.get(msg.id);
        this.opening.delete(msg.id);
        p?.resolve();
        return;
      }
      case 'open-failed': {
        const p = this.opening.get(msg.id);
        this.opening.delete(msg.id);
        p?.reject(new BindFailure(msg.port, msg.message));
        return;
      }
      case 'closed': {
        if (!this.opts.inThread) shard.counters = msg.counters;
        const done = this.closing.get(msg.id);
        this.closing.delete(msg.id);
        done?.();
        return;
      }
      case 'inject-done': {
        const key = `${msg.id}:${msg.req}`;
        const p = this.injects.get(key);
        this.injects.delete(key);
        if (!p) return;
        if (msg.error === null) p.resolve();
        else
          p.reject(
            new MediaError(
              msg.error === 'session closed' ? 'MEDIA_SESSION_CLOSED' : 'MEDIA_NO_REMOTE',
              msg.error,
            ),
          );
        return;
      }
    }
    const s = this.sessions.get(msg.id);
    if (!s) return;
    switch (msg.t) {
      case 'audio':
        s.deliverAudio(msg.pcm);
        return;
      case 'latched':
        s.logger.info({ event: 'media.latched', ...msg.ev }, 'RTP source latched');
        s.emit('latched', msg.ev);
        return;
      case 'ssrc-change':
        s.logger.info({ event: 'media.ssrc_change', ...msg.ev }, 'RTP SSRC changed');
        s.emit('ssrc-change', msg.ev);
        return;
      case 'source-rejected':
        s.logger.warn({ event: 'media.source_rejected', ...msg.ev }, 'RTP from an unexpected source dropped');
        return;
      case 'rtp-timeout':
        s.logger.warn({ event: 'media.rtp_timeout', ...msg.ev }, 'no RTP in either direction');
        s.emit('rtp-timeout', msg.ev);
        return;
    }
  }
}

class BindFailure extends Error {
  constructor(
    readonly port: number,
    message: string,
  ) {
    super(message);
  }
}

export interface MediaSessionEvents {
  latched: [LatchedEvent];
  'ssrc-change': [SsrcChangeEvent];
  'rtp-timeout': [RtpTimeoutEvent];
  closed: [];
}

/**
 * One call's media: two legs in a relay worker. Explicit lifecycle: `closed`, idempotent
 * `close()` that frees ports, sockets, timers and worker state, and a 'closed' event.
 */
export class MediaSession extends EventEmitter<MediaSessionEvents> {
  private _closed = false;
  private closing: Promise<void> | null = null;
  private onAudio: ((pcm8k: Float32Array) => void) | null = null;

  constructor(
    readonly callId: string,
    /** @internal */ readonly id: number,
    private readonly relay: TsMediaRelay,
    /** @internal */ readonly shard: Shard,
    private readonly ports: Record<MediaLeg, number>,
    private readonly cfg: Config['media'],
    /** @internal */ readonly logger: Logger,
  ) {
    super();
  }

  get closed(): boolean {
    return this._closed;
  }

  local(leg: MediaLeg): LocalEndpoint {
    const host =
      this.cfg.bindHost === '0.0.0.0' || this.cfg.bindHost === '::' ? '127.0.0.1' : this.cfg.bindHost;
    return {
      address: this.cfg.publicAddress ?? host,
      rtpPort: this.ports[leg],
      rtcpPort: this.ports[leg] + 1,
    };
  }

  setRemote(leg: MediaLeg, remote: RemoteEndpoint): void {
    if (this._closed) return;
    this.shard.send({ t: 'remote', id: this.id, leg, remote: { ...remote } });
  }

  setPayloadMap(leg: MediaLeg, map: PayloadMap): void {
    if (this._closed) return;
    this.shard.send({ t: 'pmap', id: this.id, leg, map: { ...map } });
  }

  setDirection(leg: MediaLeg, dir: MediaDirection): void {
    if (this._closed) return;
    this.shard.send({ t: 'dir', id: this.id, leg, dir });
  }

  /**
   * SRTP on a leg (SDES keys), or plain RTP again with null. Keys are checked here, in the caller's
   * thread, so that a bad one is an SrtpError for this call and never reaches the relay thread,
   * where it would take every call on that thread down.
   */
  setSrtp(leg: MediaLeg, keys: SrtpLegKeys | null): void {
    if (this._closed) return;
    if (keys) for (const k of [keys.remote, keys.local]) assertSrtpKey(k.suite, k.keySalt);
    this.shard.send({ t: 'srtp', id: this.id, leg, keys });
  }

  startFork(onAudio: (pcm8k: Float32Array) => void): void {
    if (this._closed) return;
    const wasOn = this.onAudio !== null;
    this.onAudio = onAudio;
    if (!wasOn) this.shard.send({ t: 'fork', id: this.id, on: true });
  }

  stopFork(): void {
    if (this._closed || this.onAudio === null) return;
    this.onAudio = null;
    this.shard.send({ t: 'fork', id: this.id, on: false });
  }

  inject(toward: MediaLeg, pcm8k: Float32Array): Promise<void> {
    if (this._closed)
      return Promise.reject(new MediaError('MEDIA_SESSION_CLOSED', `media session ${this.callId} is closed`));
    return this.relay.requestInject(this, this.shard, toward, pcm8k);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this._closed = true;
    this.onAudio = null;
    this.closing = this.relay.requestClose(this, this.shard).then(() => this.finish());
    return this.closing;
  }

  /** @internal */
  deliverAudio(pcm: Float32Array): void {
    const cb = this.onAudio;
    if (cb) {
      try {
        cb(pcm);
      } catch (err) {
        this.logger.error(
          { event: 'media.fork_consumer_error', err: (err as Error).message },
          'fork consumer threw',
        );
      }
    }
    // Acknowledged after the consumer returns: a blocked consumer makes the worker shed.
    if (!this._closed) this.shard.send({ t: 'fork-ack', id: this.id });
  }

  /** @internal */
  workerLost(reason: string): void {
    if (this.closing) return;
    this._closed = true;
    this.onAudio = null;
    this.logger.error({ event: 'media.session_lost', reason }, 'media session lost with its relay worker');
    this.closing = Promise.resolve().then(() => this.finish());
  }

  private finish(): void {
    this.relay.finishClose(this, this.shard, this.ports);
    this.logger.debug({ event: 'media.closed' }, 'media session closed');
    this.emit('closed');
    this.removeAllListeners();
  }
}
