import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import type {
  CallActionEvent,
  CallAnsweredEvent,
  CallRuleEvent,
  CallAudioEvent,
  CallDetectorErrorEvent,
  CallRepeatEvent,
  CallEndedEvent,
  CallEventBus,
  CallScoreEvent,
  CallStartedEvent,
  CallVerdictEvent,
} from '../call-events.js';
import type { Config, PolicyAction } from '../config/schema.js';
import type { RepeatEntry } from '../detect/repeat-index.js';
import type { Logger } from '../log.js';
import type { CallerHistory } from '../policy/known-callers.js';
import type { DefaultsOverride, ListEntry, ListKind, PolicyRule } from '../policy/policy-types.js';
import { Checkpointer } from './checkpointer.js';
import { appendLedger, ledgerPath, readLedger } from './erasure-ledger.js';
import { migrate } from './migrations.js';
import { isPseudonym, pseudonymise } from './pseudonym.js';
import type {
  AuditRecord,
  CallDetail,
  CallFilter,
  CodecFilter,
  CallPage,
  CallSummary,
  Label,
  LabelRecord,
  Role,
  StoreStats,
  TokenRecord,
  TuningRow,
  FalseDropCaller,
} from './store-types.js';

export type StoreConfig = Config['store'] & { privacy: Config['privacy'] };

type Op =
  | { t: 'started'; e: CallStartedEvent }
  | { t: 'answered'; e: CallAnsweredEvent }
  | { t: 'rule'; e: CallRuleEvent }
  | { t: 'score'; e: CallScoreEvent }
  | { t: 'verdict'; e: CallVerdictEvent }
  | { t: 'action'; e: CallActionEvent }
  | { t: 'error'; e: CallDetectorErrorEvent }
  | { t: 'repeat'; e: CallRepeatEvent }
  | { t: 'ended'; e: CallEndedEvent }
  | { t: 'audio'; e: CallAudioEvent }
  | { t: 'fingerprint'; e: RepeatEntry; keep: FingerprintKeep };

/** Which stored fingerprints are still wanted: those since `sinceMs`, the newest `calls` of them. */
export interface FingerprintKeep {
  sinceMs: number;
  calls: number;
}

const MAX_FLUSH_ATTEMPTS = 5;

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

export class InvalidCursorError extends StoreError {
  constructor() {
    super('cursor is not a value returned by this API');
    this.name = 'InvalidCursorError';
  }
}

/** SHA-256 of an API token. Tokens are 256-bit random values, so a fast hash is not guessable. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * The embedded store: one SQLite file in WAL mode.
 *
 * Call events are only queued by the bus listeners; a timer writes the queue in one
 * transaction every flushIntervalMs (earlier at flushMaxRows). WAL with synchronous=NORMAL
 * means a commit is an append to the WAL in the OS page cache (fsync happens at checkpoints),
 * so a flush costs microseconds per row and never waits for the disk; a process crash loses
 * at most the unflushed queue, and SQLite's journaling keeps the file consistent.
 * Admin writes (rules, labels, tokens) are rare and go straight through.
 */
export class Store {
  readonly db: Database.Database;
  private queue: Op[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;
  private earlyFlush = false;
  private failedFlushes = 0;
  private droppedScores = 0;
  private closedFlag = false;
  private readonly pseudonymKey: string;
  /** The erasure ledger's file; null for an in-memory database. */
  readonly ledger: string | null;
  private readonly stmts: ReturnType<Store['prepare']>;
  /** Null for an in-memory database. */
  readonly checkpointer: Checkpointer | null;
  private workerClosed: Promise<void> = Promise.resolve();

  static open(
    cfg: StoreConfig,
    logger: Logger,
    opts: { nowMs?: () => number; maxQueuedRows?: number } = {},
  ): Store {
    if (cfg.path !== ':memory:') mkdirSync(dirname(cfg.path), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(cfg.path);
    } catch (err) {
      throw new StoreError(`cannot open store ${cfg.path}: ${(err as Error).message}`);
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = OFF');
      // Checkpoints (the only fsyncs) run in the Checkpointer worker, never on this thread.
      if (cfg.path !== ':memory:') db.pragma('wal_autocheckpoint = 0');
      db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
      const applied = migrate(db);
      if (applied.length)
        logger.info({ event: 'store.migrated', path: cfg.path, versions: applied }, 'store schema migrated');
    } catch (err) {
      db.close();
      throw err instanceof Error && err.name === 'StoreSchemaError'
        ? err
        : new StoreError(`cannot prepare store ${cfg.path}: ${(err as Error).message}`);
    }
    return new Store(db, cfg, logger, opts);
  }

  private constructor(
    db: Database.Database,
    readonly cfg: StoreConfig,
    private readonly logger: Logger,
    private readonly opts: { nowMs?: () => number; maxQueuedRows?: number },
  ) {
    this.db = db;
    this.stmts = this.prepare();
    this.checkpointer =
      cfg.path === ':memory:' ? null : new Checkpointer(cfg.path, cfg.checkpointIntervalMs, logger);
    this.pseudonymKey =
      cfg.privacy.pseudonymKey ??
      this.settingOrCreate('pseudonym_key', () => randomBytes(32).toString('hex'));
    this.ledger = ledgerPath(cfg.path, cfg.erasureLedger);
    this.reapplyErasures();
    this.flushTimer = setInterval(() => this.flushSafely(), cfg.flushIntervalMs);
    this.flushTimer.unref();
    this.pruneTimer = setInterval(() => this.pruneSafely(), cfg.pruneIntervalMs);
    this.pruneTimer.unref();
    this.pruneSafely();
  }

  private now(): number {
    return this.opts.nowMs ? this.opts.nowMs() : Date.now();
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Rows waiting for the next flush. */
  get queued(): number {
    return this.queue.length;
  }

  pseudonym(number: string): string {
    return pseudonymise(this.pseudonymKey, number);
  }

  private prepare() {
    const db = this.db;
    return {
      insertCall: db.prepare(
        `INSERT OR IGNORE INTO calls (call_id, sip_call_id, direction, trunk, source_address, from_number, to_number,
           from_pseudonym, to_pseudonym, rule_id, treatment, started_ms, known_calls, known_last_call_id)
         VALUES (@callId, @sipCallId, @direction, @trunk, @sourceAddress, @fromNumber, @toNumber,
           @fromPseudonym, @toPseudonym, @ruleId, @treatment, @atMs, @knownCalls, @knownLastCallId)`,
      ),
      answered: db.prepare('UPDATE calls SET answered_ms = ?, codec = ? WHERE call_id = ?'),
      rule: db.prepare('UPDATE calls SET rule_id = ?, treatment = ? WHERE call_id = ?'),
      insertScore: db.prepare(
        'INSERT INTO scores (call_id, at_ms, t_ms, llr, cum_llr) VALUES (?, ?, ?, ?, ?)',
      ),
      scoreAgg: db.prepare(
        `UPDATE calls SET score_count = score_count + 1, final_llr = @cum,
           max_llr = CASE WHEN max_llr IS NULL OR @cum > max_llr THEN @cum ELSE max_llr END,
           max_window_llr = CASE WHEN max_window_llr IS NULL OR @llr > max_window_llr THEN @llr ELSE max_window_llr END
         WHERE call_id = @callId`,
      ),
      insertVerdict: db.prepare(
        'INSERT INTO verdicts (call_id, at_ms, verdict, decision_ms, cum_llr) VALUES (?, ?, ?, ?, ?)',
      ),
      verdict: db.prepare('UPDATE calls SET verdict = ?, decision_ms = ?, verdict_llr = ? WHERE call_id = ?'),
      insertAction: db.prepare('INSERT INTO actions (call_id, at_ms, action, reason) VALUES (?, ?, ?, ?)'),
      action: db.prepare(
        "UPDATE calls SET actions = actions || ? || ',' WHERE call_id = ? AND instr(actions, ',' || ? || ',') = 0",
      ),
      detectorError: db.prepare('UPDATE calls SET detector_error = ? WHERE call_id = ?'),
      repeat: db.prepare(
        'UPDATE calls SET repeat_calls = ?, repeat_callers = ?, repeat_first_call_id = ? WHERE call_id = ?',
      ),
      ended: db.prepare('UPDATE calls SET ended_ms = ?, end_reason = ?, sip_status = ? WHERE call_id = ?'),
      insertAudio: db.prepare(
        'INSERT OR REPLACE INTO audio (call_id, at_ms, sample_rate_hz, pcm) VALUES (?, ?, ?, ?)',
      ),
      hasAudio: db.prepare('UPDATE calls SET has_audio = 1 WHERE call_id = ?'),
      insertFingerprint: db.prepare(
        'INSERT OR REPLACE INTO fingerprints (call_id, caller_key, at_ms, bits, audible) VALUES (?, ?, ?, ?, ?)',
      ),
      trimFingerprintsBefore: db.prepare('DELETE FROM fingerprints WHERE at_ms < ?'),
      // Rows older than the newest `calls` (given as calls - 1: the offset of the oldest row kept).
      trimFingerprintsBeyond: db.prepare(
        `DELETE FROM fingerprints WHERE at_ms < (SELECT at_ms FROM fingerprints ORDER BY at_ms DESC LIMIT 1 OFFSET ?)`,
      ),
      // Read at every analysed INVITE (policy.knownCallers): prepared once.
      callerHistory: db.prepare(
        `WITH c AS (
             SELECT call_id, rowid, started_ms, label,
               coalesce(ended_ms - answered_ms >= @minTalk, 0) AND coalesce(verdict, '') <> 'synthetic'
                 AND instr(actions, ',drop,') = 0 AND repeat_calls IS NULL AS ok
             FROM calls WHERE from_pseudonym = @p AND started_ms >= @since AND direction = 'inbound')
           SELECT coalesce(sum(label IS NULL AND ok), 0) AS conversations,
             coalesce(sum(label = 'human'), 0) AS humanLabels,
             coalesce(sum(label = 'robot'), 0) AS robotLabels,
             (SELECT call_id FROM c WHERE label = 'human' OR (label IS NULL AND ok)
              ORDER BY started_ms DESC, rowid DESC LIMIT 1) AS lastCallId
           FROM c`,
      ),
    };
  }

  // ---- writing call events -------------------------------------------------------------

  /** Queues every call event of the bus; returns a function that stops listening. */
  subscribe(bus: CallEventBus): () => void {
    const on = {
      'call.started': (e: CallStartedEvent) => this.enqueue({ t: 'started', e }),
      'call.answered': (e: CallAnsweredEvent) => this.enqueue({ t: 'answered', e }),
      'call.rule': (e: CallRuleEvent) => this.enqueue({ t: 'rule', e }),
      'call.score': (e: CallScoreEvent) => this.enqueue({ t: 'score', e }),
      'call.verdict': (e: CallVerdictEvent) => this.enqueue({ t: 'verdict', e }),
      'call.action': (e: CallActionEvent) => this.enqueue({ t: 'action', e }),
      'call.detector_error': (e: CallDetectorErrorEvent) => this.enqueue({ t: 'error', e }),
      'call.repeat': (e: CallRepeatEvent) => this.enqueue({ t: 'repeat', e }),
      'call.ended': (e: CallEndedEvent) => this.enqueue({ t: 'ended', e }),
      'call.audio': (e: CallAudioEvent) => this.enqueue({ t: 'audio', e }),
    };
    bus.on('call.started', on['call.started']);
    bus.on('call.answered', on['call.answered']);
    bus.on('call.rule', on['call.rule']);
    bus.on('call.score', on['call.score']);
    bus.on('call.verdict', on['call.verdict']);
    bus.on('call.action', on['call.action']);
    bus.on('call.detector_error', on['call.detector_error']);
    bus.on('call.repeat', on['call.repeat']);
    bus.on('call.ended', on['call.ended']);
    bus.on('call.audio', on['call.audio']);
    return () => {
      bus.off('call.started', on['call.started']);
      bus.off('call.answered', on['call.answered']);
      bus.off('call.rule', on['call.rule']);
      bus.off('call.score', on['call.score']);
      bus.off('call.verdict', on['call.verdict']);
      bus.off('call.action', on['call.action']);
      bus.off('call.detector_error', on['call.detector_error']);
      bus.off('call.repeat', on['call.repeat']);
      bus.off('call.ended', on['call.ended']);
      bus.off('call.audio', on['call.audio']);
    };
  }

  /** Adds one event to the write queue. Never throws, never touches the disk. */
  enqueue(op: Op): void {
    if (this.closedFlag) return;
    const max = this.opts.maxQueuedRows ?? this.cfg.maxQueuedRows;
    if (this.queue.length >= max && op.t === 'score') {
      // A stalled disk must not grow memory without bound: shed the timeline detail first,
      // keep the call lifecycle, verdicts and actions.
      this.droppedScores++;
      return;
    }
    this.queue.push(op);
    if (this.queue.length >= this.cfg.flushMaxRows && !this.earlyFlush) {
      this.earlyFlush = true;
      setImmediate(() => {
        this.earlyFlush = false;
        this.flushSafely();
      });
    }
  }

  private flushSafely(): void {
    try {
      this.flush();
    } catch (err) {
      this.logger.error(
        { event: 'store.flush_error', err: (err as Error).message, queued: this.queue.length },
        'store flush failed; will retry',
      );
    }
  }

  /** Writes the queue in one transaction; returns the number of events written. */
  flush(): number {
    if (this.closedFlag || this.queue.length === 0) return 0;
    const batch = this.queue;
    this.queue = [];
    const s = this.stmts;
    const clear = this.cfg.privacy.storeClearNumbers;
    const startedAt = performance.now();
    try {
      this.db.transaction(() => {
        let keep: FingerprintKeep | null = null;
        for (const op of batch) {
          switch (op.t) {
            case 'started': {
              const e = op.e;
              const fromP = this.pseudonym(e.fromNumber);
              const toP = this.pseudonym(e.toNumber);
              s.insertCall.run({
                callId: e.callId,
                sipCallId: e.sipCallId,
                direction: e.direction,
                trunk: e.trunk,
                sourceAddress: e.sourceAddress,
                fromNumber: clear ? e.fromNumber : fromP,
                toNumber: clear ? e.toNumber : toP,
                fromPseudonym: fromP,
                toPseudonym: toP,
                ruleId: e.ruleId,
                treatment: e.treatment,
                atMs: Math.round(e.atMs),
                knownCalls: e.knownCaller?.calls ?? null,
                knownLastCallId: e.knownCaller?.lastCallId ?? null,
              });
              break;
            }
            case 'answered':
              s.answered.run(Math.round(op.e.atMs), op.e.codec, op.e.callId);
              break;
            case 'rule':
              s.rule.run(op.e.ruleId, op.e.treatment, op.e.callId);
              break;
            case 'score':
              s.insertScore.run(
                op.e.callId,
                Math.round(op.e.atMs),
                Math.round(op.e.tMs),
                op.e.llr,
                op.e.cumulativeLlr,
              );
              s.scoreAgg.run({ callId: op.e.callId, cum: op.e.cumulativeLlr, llr: op.e.llr });
              break;
            case 'verdict':
              s.insertVerdict.run(
                op.e.callId,
                Math.round(op.e.atMs),
                op.e.verdict,
                op.e.decisionMs,
                op.e.cumulativeLlr,
              );
              s.verdict.run(op.e.verdict, op.e.decisionMs, op.e.cumulativeLlr, op.e.callId);
              break;
            case 'action':
              s.insertAction.run(op.e.callId, Math.round(op.e.atMs), op.e.action, op.e.reason);
              s.action.run(op.e.action, op.e.callId, op.e.action);
              break;
            case 'error':
              s.detectorError.run(op.e.message, op.e.callId);
              break;
            case 'repeat':
              s.repeat.run(op.e.matchedCalls, op.e.otherCallers, op.e.firstCallId, op.e.callId);
              break;
            case 'ended':
              s.ended.run(Math.round(op.e.atMs), op.e.reason, op.e.sipStatus, op.e.callId);
              break;
            case 'audio': {
              const pcm = op.e.pcm;
              s.insertAudio.run(
                op.e.callId,
                Math.round(op.e.atMs),
                op.e.sampleRateHz,
                Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength),
              );
              s.hasAudio.run(op.e.callId);
              break;
            }
            case 'fingerprint': {
              const { bits, audible } = op.e.fingerprint;
              s.insertFingerprint.run(
                op.e.callId,
                op.e.callerKey,
                Math.round(op.e.atMs),
                Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength),
                Buffer.from(audible.buffer, audible.byteOffset, audible.byteLength),
              );
              keep = op.keep;
              break;
            }
          }
        }
        // Once per flush, what the index can no longer hold goes (the newest request decides).
        if (keep) {
          s.trimFingerprintsBefore.run(Math.round(keep.sinceMs));
          s.trimFingerprintsBeyond.run(Math.max(0, keep.calls - 1));
        }
      })();
    } catch (err) {
      // Put the batch back in front so a transient error (SQLITE_BUSY, disk full) loses nothing;
      // a batch that keeps failing is given up so it cannot hold memory and block later rows.
      this.failedFlushes++;
      if (this.failedFlushes >= MAX_FLUSH_ATTEMPTS) {
        this.failedFlushes = 0;
        this.logger.error(
          { event: 'store.batch_dropped', rows: batch.length, err: (err as Error).message },
          `store batch dropped after ${MAX_FLUSH_ATTEMPTS} failed flushes`,
        );
      } else {
        this.queue = batch.concat(this.queue);
      }
      throw err;
    }
    this.failedFlushes = 0;
    const ms = performance.now() - startedAt;
    if (this.droppedScores > 0) {
      this.logger.warn(
        { event: 'store.queue_overflow', droppedScores: this.droppedScores },
        'store queue full; score rows shed',
      );
      this.droppedScores = 0;
    }
    if (ms > 200)
      this.logger.warn(
        { event: 'store.slow_flush', rows: batch.length, ms: Math.round(ms) },
        'slow store flush',
      );
    return batch.length;
  }

  // ---- repeated-audio fingerprints (detector.repeat.persist) ------------------------------

  /**
   * Queues a call's fingerprint, written at the next flush with the call events; rows outside
   * `keep` are deleted then. Never throws, never touches the disk.
   */
  saveFingerprint(entry: RepeatEntry, keep: FingerprintKeep): void {
    this.enqueue({ t: 'fingerprint', e: entry, keep });
  }

  /**
   * The newest `limit` fingerprints since `sinceMs`, oldest first. Flushes the queue first, so a
   * rebuilt index sees the calls of the last flush interval too; deletes the rows before `sinceMs`.
   */
  recentFingerprints(sinceMs: number, limit: number): RepeatEntry[] {
    this.flush();
    this.stmts.trimFingerprintsBefore.run(Math.round(sinceMs));
    const rows = this.db
      .prepare(
        `SELECT call_id, caller_key, at_ms, bits, audible FROM fingerprints
         WHERE at_ms >= ? ORDER BY at_ms DESC LIMIT ?`,
      )
      .all(Math.round(sinceMs), limit) as {
      call_id: string;
      caller_key: string;
      at_ms: number;
      bits: Buffer;
      audible: Buffer;
    }[];
    const out: RepeatEntry[] = [];
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i]!;
      // A row whose blobs disagree (written by something else) is skipped, not trusted.
      if (r.bits.length % 4 !== 0 || r.bits.length / 4 !== r.audible.length) continue;
      // Copies: a Buffer from SQLite need not be 4-byte aligned for a Uint32Array view.
      const bits = new Uint32Array(r.bits.length / 4);
      new Uint8Array(bits.buffer).set(r.bits);
      out.push({
        callId: r.call_id,
        callerKey: r.caller_key,
        atMs: r.at_ms,
        fingerprint: { bits, audible: new Uint8Array(r.audible) },
      });
    }
    return out;
  }

  /** Deletes every stored fingerprint (persistence or the check turned off); returns how many. */
  deleteFingerprints(): number {
    this.queue = this.queue.filter((op) => op.t !== 'fingerprint');
    return this.db.prepare('DELETE FROM fingerprints').run().changes;
  }

  // ---- erasure (data subject requests) ---------------------------------------------------

  /**
   * The ids of every call from or to `number`: a clear number, or a `p:` pseudonym as the store
   * keeps it (privacy.storeClearNumbers false). Matched by pseudonym, so both storage modes find them.
   */
  callIdsOfNumber(number: string): string[] {
    const p = isPseudonym(number.trim()) ? number.trim() : this.pseudonym(number.trim());
    return (
      this.db
        .prepare('SELECT call_id FROM calls WHERE from_pseudonym = ? OR to_pseudonym = ? ORDER BY started_ms')
        .all(p, p) as { call_id: string }[]
    ).map((r) => r.call_id);
  }

  /** The exact list entries (allow/deny) whose pattern is `number` or its pseudonym. */
  listEntriesNaming(number: string): { id: string; kind: string; pattern: string }[] {
    const n = number.trim();
    const p = isPseudonym(n) ? n : this.pseudonym(n);
    return this.db
      .prepare(
        'SELECT id, kind, pattern FROM policy_lists WHERE pattern = ? OR pattern = ? ORDER BY kind, id',
      )
      .all(n, p) as { id: string; kind: string; pattern: string }[];
  }

  /**
   * Deletes calls and everything that hangs off them (scores, verdicts, actions, labels, review
   * audio, fingerprints, the audit entries about them) and, for each of `terms` (a number and its
   * pseudonym), the audit entries of list changes whose pattern is it or whose note mentions it. Queued events are written first so
   * that none of them brings a call back. What is deleted is first recorded in the erasure ledger
   * (ids only: erasure-ledger.ts), so that a restored backup is erased again at the next start;
   * `ledgerWritten` is false when that failed (the erasure is still done, and logged as an error),
   * null when there was nothing to record or the store is in memory. Deleted content is overwritten (secure_delete) and the
   * WAL is truncated afterwards, so the data does not linger in the files; `walTruncated` is false
   * when a reader kept the WAL from being truncated (its frames are overwritten by later writes).
   */
  eraseCalls(
    ids: readonly string[],
    terms: readonly string[] = [],
  ): { calls: number; auditEntries: number; walTruncated: boolean; ledgerWritten: boolean | null } {
    this.flush();
    const auditOfCall = this.db.prepare('SELECT id, at_ms AS atMs FROM audit WHERE target = ?');
    const auditOfTerm = this.db.prepare(
      `SELECT id, at_ms AS atMs FROM audit WHERE action LIKE 'policy.list_entry_%'
         AND (json_extract(detail, '$.pattern') = @t OR instr(coalesce(json_extract(detail, '$.note'), ''), @t) > 0)`,
    );
    let ledgerWritten: boolean | null = null;
    const r = this.deleteErased(() => {
      const audit = new Map<number, number>();
      for (const id of ids)
        for (const a of auditOfCall.all(id) as { id: number; atMs: number }[]) audit.set(a.id, a.atMs);
      for (const t of terms)
        if (t)
          for (const a of auditOfTerm.all({ t }) as { id: number; atMs: number }[]) audit.set(a.id, a.atMs);
      const auditRows = [...audit].map(([id, atMs]) => ({ id, atMs }));
      if (this.ledger && (ids.length || auditRows.length)) {
        try {
          appendLedger(this.ledger, { atMs: this.now(), callIds: [...ids], audit: auditRows });
          ledgerWritten = true;
        } catch (err) {
          ledgerWritten = false;
          this.logger.error(
            { event: 'privacy.ledger_write_failed', path: this.ledger, err: (err as Error).message },
            'erasure not recorded in the ledger: a restored backup would bring these calls back',
          );
        }
      }
      return { callIds: ids, auditIds: auditRows.map((a) => a.id) };
    });
    return { ...r, ledgerWritten };
  }

  /**
   * The deletion behind eraseCalls and reapplyErasures: `pick` runs inside the transaction and
   * names the calls and audit rows; they are deleted with secure_delete on, then the WAL is truncated.
   */
  private deleteErased(pick: () => { callIds: readonly string[]; auditIds: readonly number[] }): {
    calls: number;
    auditEntries: number;
    walTruncated: boolean;
  } {
    const del = ['scores', 'verdicts', 'actions', 'labels', 'audio', 'fingerprints'].map((t) =>
      this.db.prepare(`DELETE FROM ${t} WHERE call_id = ?`),
    );
    const delCall = this.db.prepare('DELETE FROM calls WHERE call_id = ?');
    const delAudit = this.db.prepare('DELETE FROM audit WHERE id = ?');
    this.db.pragma('secure_delete = ON');
    let result: { calls: number; auditEntries: number };
    try {
      result = this.db.transaction(() => {
        const { callIds, auditIds } = pick();
        let calls = 0;
        let auditEntries = 0;
        for (const id of callIds) {
          for (const d of del) d.run(id);
          calls += delCall.run(id).changes;
        }
        for (const id of auditIds) auditEntries += delAudit.run(id).changes;
        return { calls, auditEntries };
      })();
    } finally {
      this.db.pragma('secure_delete = OFF');
    }
    let walTruncated = true;
    if (this.cfg.path !== ':memory:') {
      try {
        const [row] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
        walTruncated = row?.busy === 0;
      } catch {
        walTruncated = false;
      }
    }
    return { ...result, walTruncated };
  }

  /**
   * Erases again what the erasure ledger names and the database still holds: after a backup
   * taken before an erasure was restored. Runs once at open, before anything reads the calls
   * (the gateway's repeated-audio index loads its fingerprints later). An unreadable ledger or
   * a bad line is logged and skipped: the gateway still starts (calls must go on), and
   * `voiceguard doctor` shows the problem.
   */
  private reapplyErasures(): void {
    if (!this.ledger) return;
    let read: ReturnType<typeof readLedger>;
    try {
      read = readLedger(this.ledger);
    } catch (err) {
      this.logger.error(
        { event: 'privacy.ledger_unreadable', path: this.ledger, err: (err as Error).message },
        'erasure ledger unreadable: erasures are not re-applied',
      );
      return;
    }
    for (const bad of read.bad)
      this.logger.warn(
        { event: 'privacy.ledger_bad_line', path: this.ledger, line: bad.line, err: bad.error },
        'erasure ledger line skipped',
      );
    if (read.entries.length === 0) return;
    const callThere = this.db.prepare('SELECT 1 FROM calls WHERE call_id = ?');
    const auditThere = this.db.prepare('SELECT 1 FROM audit WHERE id = ? AND at_ms = ?');
    const callIds = new Set<string>();
    const auditIds = new Set<number>();
    for (const e of read.entries) {
      for (const id of e.callIds) if (callThere.get(id)) callIds.add(id);
      for (const a of e.audit) if (auditThere.get(a.id, a.atMs)) auditIds.add(a.id);
    }
    if (callIds.size === 0 && auditIds.size === 0) return;
    const r = this.deleteErased(() => ({ callIds: [...callIds], auditIds: [...auditIds] }));
    this.audit('voiceguard', 'privacy.erasure_reapplied', '', {
      calls: r.calls,
      auditEntries: r.auditEntries,
    });
    this.logger.warn(
      {
        event: 'privacy.erasure_reapplied',
        path: this.ledger,
        calls: r.calls,
        auditEntries: r.auditEntries,
        ledgerEntries: read.entries.length,
      },
      'erased calls found in the database (a restored backup?) and erased again',
    );
  }

  // ---- retention -----------------------------------------------------------------------

  private pruneSafely(): void {
    try {
      const r = this.prune();
      if (r.calls || r.audio || r.audit)
        this.logger.info({ event: 'store.pruned', ...r }, 'old records pruned');
    } catch (err) {
      this.logger.error({ event: 'store.prune_error', err: (err as Error).message }, 'store prune failed');
    }
  }

  /**
   * Deletes calls older than retentionDays, audio older than audioRetentionDays and, when
   * auditRetentionDays is set, audit entries older than that.
   */
  prune(nowMs = this.now()): { calls: number; audio: number; audit: number } {
    const dayMs = 86_400_000;
    const callCutoff = nowMs - this.cfg.retentionDays * dayMs;
    const audioCutoff = nowMs - this.cfg.audioRetentionDays * dayMs;
    let calls = 0;
    // Chunks keep each transaction short so the event loop is never held for long.
    const chunk = this.db.prepare(
      'SELECT call_id FROM calls WHERE started_ms < ? ORDER BY started_ms LIMIT 2000',
    );
    const del = ['scores', 'verdicts', 'actions', 'labels', 'audio', 'fingerprints', 'calls'].map((t) =>
      this.db.prepare(`DELETE FROM ${t} WHERE call_id = ?`),
    );
    for (;;) {
      const ids = chunk.all(callCutoff) as { call_id: string }[];
      if (ids.length === 0) break;
      this.db.transaction(() => {
        for (const { call_id } of ids) for (const d of del) d.run(call_id);
      })();
      calls += ids.length;
    }
    const audio = this.db.transaction(() => {
      const ids = this.db.prepare('SELECT call_id FROM audio WHERE at_ms < ?').all(audioCutoff) as {
        call_id: string;
      }[];
      const upd = this.db.prepare('UPDATE calls SET has_audio = 0 WHERE call_id = ?');
      for (const { call_id } of ids) upd.run(call_id);
      return this.db.prepare('DELETE FROM audio WHERE at_ms < ?').run(audioCutoff).changes;
    })();
    const audit =
      this.cfg.auditRetentionDays > 0
        ? this.db
            .prepare('DELETE FROM audit WHERE at_ms < ?')
            .run(nowMs - this.cfg.auditRetentionDays * dayMs).changes
        : 0;
    return { calls, audio, audit };
  }

  /**
   * Flushes and closes the main connection at once. The returned promise settles when the
   * checkpoint worker has closed its own connection too; only then may the files be deleted.
   * Callers that exit the process anyway need not wait.
   */
  close(): Promise<void> {
    if (this.closedFlag) return this.workerClosed;
    try {
      this.flush();
    } catch (err) {
      this.logger.error(
        { event: 'store.flush_error', err: (err as Error).message, lost: this.queue.length },
        'final store flush failed',
      );
    }
    this.closedFlag = true;
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    // The main connection closes first and the worker's only after it, never both at once: the
    // last connection to close takes an exclusive lock to remove the -wal and -shm files, and
    // two closing together can each see the other's lock and both leave the files behind.
    this.db.close();
    this.workerClosed = this.checkpointer?.close() ?? Promise.resolve();
    return this.workerClosed;
  }

  // ---- settings ------------------------------------------------------------------------

  getSetting(key: string): string | null {
    const row = this.db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as
      { value: string } | undefined;
    return row?.value ?? null;
  }

  setSetting(key: string, value: string | null): void {
    if (value === null) this.db.prepare('DELETE FROM settings WHERE key = ?').run(key);
    else
      this.db
        .prepare(
          'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
        )
        .run(key, value);
  }

  private settingOrCreate(key: string, make: () => string): string {
    const existing = this.getSetting(key);
    if (existing !== null) return existing;
    const value = make();
    this.setSetting(key, value);
    return value;
  }

  // ---- calls ---------------------------------------------------------------------------

  listCalls(f: CallFilter): CallPage {
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    if (f.verdict === 'none') where.push('verdict IS NULL');
    else if (f.verdict) {
      where.push('verdict = @verdict');
      params.verdict = f.verdict;
    }
    if (f.label === 'none') where.push('label IS NULL');
    else if (f.label) {
      where.push('label = @label');
      params.label = f.label;
    }
    if (f.action) {
      where.push("instr(actions, ',' || @action || ',') > 0");
      params.action = f.action;
    }
    if (f.treatment) {
      where.push('treatment = @treatment');
      params.treatment = f.treatment;
    }
    if (f.trunk) {
      where.push('trunk = @trunk');
      params.trunk = f.trunk;
    }
    if (f.ruleId) {
      where.push('rule_id = @ruleId');
      params.ruleId = f.ruleId;
    }
    if (f.codec) where.push(codecCondition(f.codec));
    if (f.fromMs !== undefined) {
      where.push('started_ms >= @fromMs');
      params.fromMs = f.fromMs;
    }
    if (f.toMs !== undefined) {
      where.push('started_ms < @toMs');
      params.toMs = f.toMs;
    }
    if (f.repeat === 'yes') where.push('repeat_calls IS NOT NULL');
    else if (f.repeat === 'no') where.push('repeat_calls IS NULL');
    if (f.known === 'yes') where.push('known_calls IS NOT NULL');
    else if (f.known === 'no') where.push('known_calls IS NULL');
    if (f.repeatOf) {
      where.push('(call_id = @repeatOf OR repeat_first_call_id = @repeatOf)');
      params.repeatOf = f.repeatOf;
    }
    if (f.q) {
      const q = f.q.trim();
      params.q = q;
      params.qLike = `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      params.qP = this.pseudonym(q);
      where.push(
        `(call_id = @q OR sip_call_id = @q OR from_number LIKE @qLike ESCAPE '\\' OR to_number LIKE @qLike ESCAPE '\\'
          OR from_pseudonym = @qP OR to_pseudonym = @qP)`,
      );
    }
    const filterSql = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const total = (
      this.db.prepare(`SELECT count(*) AS n FROM calls ${filterSql}`).get(params) as { n: number }
    ).n;
    const pageWhere = [...where];
    if (f.cursor) {
      const [startedMs, rowid] = decodeCursor(f.cursor);
      pageWhere.push('(started_ms, rowid) < (@cStarted, @cRowid)');
      params.cStarted = startedMs;
      params.cRowid = rowid;
    }
    params.limit = f.limit + 1;
    const rows = this.db
      .prepare(
        `SELECT rowid, * FROM calls ${pageWhere.length ? `WHERE ${pageWhere.join(' AND ')}` : ''} ORDER BY started_ms DESC, rowid DESC LIMIT @limit`,
      )
      .all(params) as CallRow[];
    const more = rows.length > f.limit;
    const page = more ? rows.slice(0, f.limit) : rows;
    const last = page[page.length - 1];
    return {
      items: page.map(toSummary),
      nextCursor: more && last ? encodeCursor(last.started_ms, last.rowid) : null,
      total,
    };
  }

  getCall(callId: string): CallDetail | null {
    let row = this.db.prepare('SELECT rowid, * FROM calls WHERE call_id = ?').get(callId) as
      CallRow | undefined;
    if (!row && this.queue.length) {
      this.flush();
      row = this.db.prepare('SELECT rowid, * FROM calls WHERE call_id = ?').get(callId) as
        CallRow | undefined;
    }
    if (!row) return null;
    const scores = this.db
      .prepare(
        'SELECT at_ms AS atMs, t_ms AS tMs, llr, cum_llr AS cumulativeLlr FROM scores WHERE call_id = ? ORDER BY t_ms, rowid',
      )
      .all(callId) as CallDetail['scores'];
    const verdict = this.db
      .prepare(
        'SELECT verdict, decision_ms AS decisionMs, cum_llr AS cumulativeLlr, at_ms AS atMs FROM verdicts WHERE call_id = ? ORDER BY id DESC LIMIT 1',
      )
      .get(callId) as CallDetail['verdict'] | undefined;
    const actions = this.db
      .prepare('SELECT action, reason, at_ms AS atMs FROM actions WHERE call_id = ? ORDER BY id')
      .all(callId) as CallDetail['actions'];
    return { call: toSummary(row), scores, verdict: verdict ?? null, actions, labels: this.labels(callId) };
  }

  private labels(callId: string): LabelRecord[] {
    return this.db
      .prepare(
        'SELECT id, label, note, by_name AS by, at_ms AS atMs FROM labels WHERE call_id = ? ORDER BY id',
      )
      .all(callId) as LabelRecord[];
  }

  /** Records an admin label; the latest label is the call's label. Null if the call is unknown. */
  addLabel(callId: string, label: Label, note: string, by: string): LabelRecord | null {
    const exists = () => this.db.prepare('SELECT 1 FROM calls WHERE call_id = ?').get(callId) !== undefined;
    if (!exists()) {
      this.flush();
      if (!exists()) return null;
    }
    const atMs = this.now();
    const id = this.db.transaction(() => {
      const r = this.db
        .prepare('INSERT INTO labels (call_id, at_ms, label, note, by_name) VALUES (?, ?, ?, ?, ?)')
        .run(callId, atMs, label, note, by);
      this.db
        .prepare('UPDATE calls SET label = ?, labelled_by = ?, labelled_ms = ? WHERE call_id = ?')
        .run(label, by, atMs, callId);
      return Number(r.lastInsertRowid);
    })();
    return { id, label, note, by, atMs };
  }

  getAudio(callId: string): { sampleRateHz: number; pcm: Buffer } | null {
    const row = this.db.prepare('SELECT sample_rate_hz, pcm FROM audio WHERE call_id = ?').get(callId) as
      { sample_rate_hz: number; pcm: Buffer } | undefined;
    return row ? { sampleRateHz: row.sample_rate_hz, pcm: row.pcm } : null;
  }

  stats(fromMs: number, toMs: number): StoreStats {
    const p = { fromMs, toMs };
    const w = 'WHERE started_ms >= @fromMs AND started_ms < @toMs';
    const agg = this.db
      .prepare(
        `SELECT count(*) AS calls,
           sum(treatment = 'analyse') AS analysed,
           sum(verdict = 'synthetic') AS synthetic, sum(verdict = 'human') AS human,
           sum(verdict = 'unsure') AS unsure, sum(verdict IS NULL) AS none,
           sum(instr(actions, ',drop,') > 0) AS drop_, sum(instr(actions, ',warn,') > 0) AS warn,
           sum(instr(actions, ',log,') > 0) AS log,
           sum(label = 'human') AS lHuman, sum(label = 'robot') AS lRobot
         FROM calls ${w}`,
      )
      .get(p) as Record<string, number | null>;
    const n = (k: string) => agg[k] ?? 0;
    const byTreatment: Record<string, number> = {};
    for (const r of this.db
      .prepare(`SELECT treatment, count(*) AS n FROM calls ${w} GROUP BY treatment`)
      .all(p) as { treatment: string; n: number }[]) {
      byTreatment[r.treatment] = r.n;
    }
    const hourStart = Math.max(fromMs, toMs - 24 * 3_600_000);
    const hourly = this.db
      .prepare(
        `SELECT (started_ms / 3600000) * 3600000 AS hourStartMs, count(*) AS calls, sum(verdict = 'synthetic') AS synthetic
         FROM calls WHERE started_ms >= ? AND started_ms < ? GROUP BY 1 ORDER BY 1`,
      )
      .all(hourStart, toMs) as { hourStartMs: number; calls: number; synthetic: number | null }[];
    return {
      fromMs,
      toMs,
      calls: n('calls'),
      analysed: n('analysed'),
      byTreatment,
      byVerdict: { synthetic: n('synthetic'), human: n('human'), unsure: n('unsure'), none: n('none') },
      byAction: { drop: n('drop_'), warn: n('warn'), log: n('log') },
      labelled: { human: n('lHuman'), robot: n('lRobot') },
      hourly: hourly.map((h) => ({
        hourStartMs: h.hourStartMs,
        calls: h.calls,
        synthetic: h.synthetic ?? 0,
      })),
    };
  }

  /**
   * Analysed calls that produced scores, for the threshold tuning view; with `codec`, only the calls
   * whose caller audio came in it.
   */
  tuningRows(fromMs = 0, toMs = Number.MAX_SAFE_INTEGER, codec?: CodecFilter): TuningRow[] {
    return this.db
      .prepare(
        `SELECT max_llr AS maxLlr, final_llr AS finalLlr, coalesce(max_window_llr, max_llr) AS maxWindowLlr, label
         FROM calls WHERE score_count > 0 AND started_ms >= ? AND started_ms < ?${andCodec(codec)}`,
      )
      .all(fromMs, toMs) as TuningRow[];
  }

  /**
   * One caller's earlier inbound calls since `sinceMs` (policy.knownCallers): the unlabelled calls that
   * were answered and lasted `minTalkMs` to their end with no synthetic verdict, no drop and no repeated
   * audio, the calls labelled human, the calls labelled robot, and the latest call that counted. By the
   * caller's pseudonym (indexed), so it works whether or not the store keeps clear numbers. Calls still
   * in the write queue (the last flush interval) are not seen.
   */
  callerHistory(fromNumber: string, sinceMs: number, minTalkMs: number): CallerHistory {
    return this.stmts.callerHistory.get({
      p: this.pseudonym(fromNumber),
      since: sinceMs,
      minTalk: minTalkMs,
    }) as CallerHistory;
  }

  /**
   * Callers whose analysed calls were dropped and then labelled human, grouped by caller (pseudonym),
   * most such calls first: false drops cluster on voices, so these callers are likely to come back.
   */
  falseDropCallers(
    fromMs = 0,
    toMs = Number.MAX_SAFE_INTEGER,
    limit = 20,
    codec?: CodecFilter,
  ): FalseDropCaller[] {
    return this.db
      .prepare(
        `SELECT from_number AS fromNumber, count(*) AS calls, max(started_ms) AS lastAtMs, call_id AS lastCallId
         FROM calls WHERE label = 'human' AND treatment = 'analyse' AND instr(actions, ',drop,') > 0
           AND started_ms >= ? AND started_ms < ?${andCodec(codec)}
         GROUP BY from_pseudonym ORDER BY calls DESC, lastAtMs DESC LIMIT ?`,
      )
      .all(fromMs, toMs, limit) as FalseDropCaller[];
  }

  // ---- audit ---------------------------------------------------------------------------

  audit(actor: string, action: string, target: string, detail: Record<string, unknown> = {}): void {
    this.db
      .prepare('INSERT INTO audit (at_ms, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)')
      .run(this.now(), actor, action, target, JSON.stringify(detail));
  }

  listAudit(limit: number, beforeId: number | null): { items: AuditRecord[]; nextCursor: string | null } {
    const rows = this.db
      .prepare(
        `SELECT id, at_ms AS atMs, actor, action, target, detail FROM audit ${beforeId !== null ? 'WHERE id < ?' : ''} ORDER BY id DESC LIMIT ?`,
      )
      .all(...(beforeId !== null ? [beforeId, limit + 1] : [limit + 1])) as (Omit<AuditRecord, 'detail'> & {
      detail: string;
    })[];
    const more = rows.length > limit;
    const page = (more ? rows.slice(0, limit) : rows).map((r) => ({
      ...r,
      detail: JSON.parse(r.detail) as Record<string, unknown>,
    }));
    return { items: page, nextCursor: more ? String(page[page.length - 1]!.id) : null };
  }

  // ---- tokens --------------------------------------------------------------------------

  /** Creates a token and returns its clear value once; only the hash is kept. */
  createToken(
    name: string,
    role: Role,
    createdBy: string,
    clearToken?: string,
  ): { record: TokenRecord; token: string } {
    const token = clearToken ?? `vg_${randomBytes(32).toString('base64url')}`;
    const id = randomUUID();
    const createdAtMs = this.now();
    this.db
      .prepare(
        'INSERT INTO api_tokens (id, name, role, hash, created_ms, created_by) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(id, name, role, hashToken(token), createdAtMs, createdBy);
    return {
      record: { id, name, role, createdAtMs, createdBy, lastUsedAtMs: null, revokedAtMs: null },
      token,
    };
  }

  findToken(token: string): TokenRecord | null {
    const row = this.db
      .prepare(`SELECT ${TOKEN_COLS} FROM api_tokens WHERE hash = ? AND revoked_ms IS NULL`)
      .get(hashToken(token)) as TokenRecord | undefined;
    return row ?? null;
  }

  touchToken(id: string): void {
    this.db.prepare('UPDATE api_tokens SET last_used_ms = ? WHERE id = ?').run(this.now(), id);
  }

  listTokens(): TokenRecord[] {
    return this.db
      .prepare(`SELECT ${TOKEN_COLS} FROM api_tokens ORDER BY created_ms, id`)
      .all() as TokenRecord[];
  }

  getToken(id: string): TokenRecord | null {
    return (
      (this.db.prepare(`SELECT ${TOKEN_COLS} FROM api_tokens WHERE id = ?`).get(id) as
        TokenRecord | undefined) ?? null
    );
  }

  revokeToken(id: string): boolean {
    return (
      this.db
        .prepare('UPDATE api_tokens SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL')
        .run(this.now(), id).changes > 0
    );
  }

  countActiveAdmins(): number {
    return (
      this.db
        .prepare("SELECT count(*) AS n FROM api_tokens WHERE role = 'admin' AND revoked_ms IS NULL")
        .get() as { n: number }
    ).n;
  }

  // ---- policy --------------------------------------------------------------------------

  listRules(): PolicyRule[] {
    return (
      this.db.prepare('SELECT body FROM policy_rules ORDER BY priority, id').all() as { body: string }[]
    ).map((r) => JSON.parse(r.body) as PolicyRule);
  }

  getRule(id: string): PolicyRule | null {
    const row = this.db.prepare('SELECT body FROM policy_rules WHERE id = ?').get(id) as
      { body: string } | undefined;
    return row ? (JSON.parse(row.body) as PolicyRule) : null;
  }

  putRule(rule: PolicyRule): void {
    this.db
      .prepare(
        'INSERT INTO policy_rules (id, priority, body, updated_ms) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET priority = excluded.priority, body = excluded.body, updated_ms = excluded.updated_ms',
      )
      .run(rule.id, rule.priority, JSON.stringify(rule), rule.updatedAtMs);
  }

  deleteRule(id: string): boolean {
    return this.db.prepare('DELETE FROM policy_rules WHERE id = ?').run(id).changes > 0;
  }

  getDefaultsOverride(): DefaultsOverride | null {
    const v = this.getSetting('policy_defaults');
    return v ? (JSON.parse(v) as DefaultsOverride) : null;
  }

  setDefaultsOverride(d: DefaultsOverride | null): void {
    this.setSetting('policy_defaults', d ? JSON.stringify(d) : null);
  }

  listEntries(kind: ListKind): ListEntry[] {
    return this.db
      .prepare(
        'SELECT id, kind, pattern, sip_status AS sipStatus, note, created_ms AS createdAtMs, created_by AS createdBy FROM policy_lists WHERE kind = ? ORDER BY created_ms, id',
      )
      .all(kind) as ListEntry[];
  }

  /** Adds a list entry; returns null if the same pattern is already on that list. */
  addEntry(
    kind: ListKind,
    pattern: string,
    sipStatus: number | null,
    note: string,
    createdBy: string,
  ): ListEntry | null {
    const entry: ListEntry = {
      id: randomUUID(),
      kind,
      pattern,
      sipStatus,
      note,
      createdAtMs: this.now(),
      createdBy,
    };
    const r = this.db
      .prepare(
        'INSERT OR IGNORE INTO policy_lists (id, kind, pattern, sip_status, note, created_ms, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)',
      )
      .run(entry.id, kind, pattern, sipStatus, note, entry.createdAtMs, createdBy);
    return r.changes > 0 ? entry : null;
  }

  deleteEntry(kind: ListKind, id: string): ListEntry | null {
    const entry = this.listEntries(kind).find((e) => e.id === id) ?? null;
    if (entry) this.db.prepare('DELETE FROM policy_lists WHERE id = ? AND kind = ?').run(id, kind);
    return entry;
  }

  /** Runs fn in one transaction (used to seed the rules file atomically). */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

const TOKEN_COLS =
  'id, name, role, created_ms AS createdAtMs, created_by AS createdBy, last_used_ms AS lastUsedAtMs, revoked_ms AS revokedAtMs';

interface CallRow {
  rowid: number;
  call_id: string;
  sip_call_id: string;
  direction: CallSummary['direction'];
  trunk: string | null;
  source_address: string;
  from_number: string;
  to_number: string;
  rule_id: string | null;
  treatment: string;
  started_ms: number;
  answered_ms: number | null;
  ended_ms: number | null;
  codec: string | null;
  end_reason: string | null;
  sip_status: number | null;
  verdict: CallSummary['verdict'];
  decision_ms: number | null;
  final_llr: number | null;
  max_llr: number | null;
  max_window_llr: number | null;
  score_count: number;
  actions: string;
  detector_error: string | null;
  repeat_calls: number | null;
  repeat_callers: number | null;
  repeat_first_call_id: string | null;
  known_calls: number | null;
  known_last_call_id: string | null;
  label: Label | null;
  has_audio: number;
}

function toSummary(r: CallRow): CallSummary {
  return {
    id: r.call_id,
    sipCallId: r.sip_call_id,
    direction: r.direction,
    trunk: r.trunk,
    sourceAddress: r.source_address,
    fromNumber: r.from_number,
    toNumber: r.to_number,
    ruleId: r.rule_id,
    treatment: r.treatment,
    startedAtMs: r.started_ms,
    answeredAtMs: r.answered_ms,
    endedAtMs: r.ended_ms,
    durationMs: r.ended_ms !== null ? r.ended_ms - r.started_ms : null,
    codec: r.codec,
    endReason: r.end_reason,
    sipStatus: r.sip_status,
    verdict: r.verdict,
    decisionMs: r.decision_ms,
    finalLlr: r.final_llr,
    maxLlr: r.max_llr,
    maxWindowLlr: r.max_window_llr,
    scoreCount: r.score_count,
    actions: r.actions.split(',').filter(Boolean) as PolicyAction[],
    detectorError: r.detector_error,
    repeatCalls: r.repeat_calls,
    repeatCallers: r.repeat_callers,
    repeatFirstCallId: r.repeat_first_call_id,
    knownCallerCalls: r.known_calls,
    knownCallerLastCallId: r.known_last_call_id,
    label: r.label,
    hasAudio: r.has_audio === 1,
  };
}

function encodeCursor(startedMs: number, rowid: number): string {
  return Buffer.from(`${startedMs}.${rowid}`).toString('base64url');
}

function decodeCursor(cursor: string): [number, number] {
  const m = /^(-?\d+)\.(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw new InvalidCursorError();
  return [Number(m[1]), Number(m[2])];
}

/** The SQL condition for a codec filter (constant: no parameters). */
function codecCondition(c: CodecFilter): string {
  if (c === 'g711') return "lower(codec) IN ('pcmu', 'pcma')";
  if (c === 'g729') return "lower(codec) = 'g729'";
  return "(codec IS NULL OR lower(codec) NOT IN ('pcmu', 'pcma', 'g729'))";
}

function andCodec(c: CodecFilter | undefined): string {
  return c ? ` AND ${codecCondition(c)}` : '';
}
