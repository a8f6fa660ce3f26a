import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CallEventBus } from '../../src/call-events.js';
import { validateConfig } from '../../src/config/load-config.js';
import { silentLogger } from '../../src/log.js';
import { migrate, MIGRATIONS, schemaVersion } from '../../src/store/migrations.js';
import { hashToken, InvalidCursorError, Store } from '../../src/store/store.js';
import { emitCall } from '../api/api-harness.js';

let dir: string;
const open: Store[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-store-'));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close())); // each settles once its checkpoint worker has closed
  rmSync(dir, { recursive: true, force: true });
});

function openStore(
  over: Record<string, unknown> = {},
  privacy: Record<string, unknown> = {},
  nowMs?: () => number,
): Store {
  const cfg = validateConfig({
    store: { path: join(dir, 'vg.sqlite'), flushIntervalMs: 10_000, ...over },
    privacy,
  });
  const s = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger, nowMs ? { nowMs } : {});
  open.push(s);
  return s;
}

describe('migrations', () => {
  it('creates the latest schema on a new file, in WAL mode', () => {
    const s = openStore();
    expect(schemaVersion(s.db)).toBe(MIGRATIONS.length);
    expect(s.db.pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('upgrades a version-1 database keeping its rows', () => {
    const file = join(dir, 'vg.sqlite');
    const old = new Database(file);
    migrate(old, MIGRATIONS.slice(0, 1));
    expect(schemaVersion(old)).toBe(1);
    old
      .prepare(
        `INSERT INTO calls (call_id, sip_call_id, direction, source_address, from_number, to_number, from_pseudonym, to_pseudonym, treatment, started_ms, score_count, max_llr)
         VALUES ('old-1', 'sip-1', 'inbound', '192.0.2.1', '+491', '+492', 'p:1', 'p:2', 'analyse', ?, 3, 5.5)`,
      )
      .run(Date.now());
    old.close();
    const s = openStore();
    expect(schemaVersion(s.db)).toBe(MIGRATIONS.length);
    const detail = s.getCall('old-1');
    expect(detail?.call).toMatchObject({ id: 'old-1', maxLlr: 5.5, maxWindowLlr: null, label: null });
    const cols = (s.db.prepare('PRAGMA table_info(calls)').all() as { name: string }[]).map((c) => c.name);
    expect(cols).toContain('max_window_llr');
    // the tuning view falls back to max_llr for rows from before migration 2
    expect(s.tuningRows()).toEqual([{ maxLlr: 5.5, finalLlr: null, maxWindowLlr: 5.5, label: null }]);
  });

  it('checkpoints the WAL from the worker thread, not from the writing connection', async () => {
    const s = openStore({ checkpointIntervalMs: 60_000 });
    expect(s.db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    const bus = new CallEventBus();
    s.subscribe(bus);
    for (let i = 0; i < 2000; i++) emitCall(bus, { scores: [1, 2, 3] });
    s.flush();
    const dbBytes = () => statSync(join(dir, 'vg.sqlite')).size;
    const before = dbBytes();
    expect(statSync(join(dir, 'vg.sqlite-wal')).size).toBeGreaterThan(1_000_000);
    const r = await s.checkpointer!.checkpointNow();
    expect(r).toMatchObject({ busy: 0 });
    expect(r!.checkpointed).toBe(r!.log);
    expect(dbBytes()).toBeGreaterThan(before + 1_000_000);
    expect(s.listCalls({ limit: 1 }).total).toBe(2000);
  });

  it('an awaited close() settles even when nothing else keeps the process alive (found by bench:store: exit 13)', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'close-only.ts'), join(dir, 'c.sqlite')],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    expect({ code, out }).toEqual({ code: 0, out: 'closed\n' });
    expect(existsSync(join(dir, 'c.sqlite-wal'))).toBe(false);
  });

  it('close() settles only after the checkpoint worker has closed its connection', async () => {
    const s = openStore({ checkpointIntervalMs: 60_000 });
    const bus = new CallEventBus();
    s.subscribe(bus);
    for (let i = 0; i < 200; i++) emitCall(bus, { scores: [1] });
    s.flush();
    await s.checkpointer!.checkpointNow(); // the worker's connection is open now
    await s.close();
    // The last connection to close removes the -wal and -shm files; while the worker's connection
    // is still open they stay, and deleting the folder could race with SQLite removing them.
    expect(existsSync(join(dir, 'vg.sqlite-wal'))).toBe(false);
    expect(existsSync(join(dir, 'vg.sqlite-shm'))).toBe(false);
    expect(await s.close()).toBeUndefined(); // a second close is a no-op that settles too
    const again = openStore();
    expect(again.listCalls({ limit: 1 }).total).toBe(200);
  });

  it('refuses a database newer than the code', () => {
    const file = join(dir, 'vg.sqlite');
    const db = new Database(file);
    migrate(db);
    db.prepare('INSERT INTO schema_migrations (version, applied_ms) VALUES (?, 0)').run(
      MIGRATIONS.length + 1,
    );
    db.close();
    expect(() => openStore()).toThrow(/newer than this voiceguard/);
  });
});

describe('writing call events', () => {
  it('only queues on the bus and writes the whole story on flush', () => {
    const s = openStore();
    const bus = new CallEventBus();
    s.subscribe(bus);
    const id = emitCall(bus, {
      scores: [1, -0.5, 3],
      verdict: 'synthetic',
      actions: ['warn', 'drop', 'warn'],
    });
    bus.emit('call.detector_error', { callId: id, atMs: 1, message: 'inference timeout' });
    expect(s.db.prepare('SELECT count(*) AS n FROM calls').get()).toEqual({ n: 0 });
    expect(s.queued).toBeGreaterThan(0);
    s.flush();
    const d = s.getCall(id)!;
    expect(d.call).toMatchObject({
      verdict: 'synthetic',
      finalLlr: 3.5,
      maxLlr: 3.5,
      maxWindowLlr: 3,
      scoreCount: 3,
      actions: ['warn', 'drop'],
      codec: 'PCMU',
      endReason: 'bye-caller',
      durationMs: 20_000,
      detectorError: 'inference timeout',
    });
    expect(d.scores.map((p) => p.cumulativeLlr)).toEqual([1, 0.5, 3.5]);
    expect(d.actions.map((a) => a.action)).toEqual(['warn', 'drop', 'warn']);
    expect(d.verdict).toMatchObject({ verdict: 'synthetic', decisionMs: 3000 });
  });

  it('records a repeat with its call, and filters calls by it', () => {
    const s = openStore();
    const bus = new CallEventBus();
    s.subscribe(bus);
    const first = emitCall(bus, { from: '+4930100001' });
    const second = emitCall(bus, { from: '+4930100002' });
    const third = emitCall(bus, { from: '+4930100003' });
    const other = emitCall(bus, { from: '+4930100004' });
    bus.emit('call.repeat', {
      callId: second,
      atMs: 2,
      matchedCalls: 1,
      otherCallers: 1,
      firstCallId: first,
      bitErrorRate: 0.1,
    });
    bus.emit('call.repeat', {
      callId: third,
      atMs: 3,
      matchedCalls: 2,
      otherCallers: 2,
      firstCallId: first,
      bitErrorRate: 0.08,
    });
    s.flush();
    expect(s.getCall(third)!.call).toMatchObject({
      repeatCalls: 2,
      repeatCallers: 2,
      repeatFirstCallId: first,
    });
    expect(s.getCall(other)!.call).toMatchObject({
      repeatCalls: null,
      repeatCallers: null,
      repeatFirstCallId: null,
    });
    const ids = (f: object) =>
      s
        .listCalls({ limit: 50, ...f })
        .items.map((c) => c.id)
        .sort();
    expect(ids({ repeat: 'yes' })).toEqual([second, third].sort());
    expect(ids({ repeat: 'no' })).toEqual([first, other].sort());
    expect(ids({ repeatOf: first })).toEqual([first, second, third].sort());
    expect(ids({ repeatOf: other })).toEqual([other]);
  });

  for (const storeClearNumbers of [true, false]) {
    it(`reads a caller's history for policy.knownCallers (storeClearNumbers ${storeClearNumbers})`, () => {
      const s = openStore({}, { storeClearNumbers });
      const bus = new CallEventBus();
      s.subscribe(bus);
      const A = '+4930200001';
      const t0 = 1_000_000_000_000;
      const MIN_TALK = 10_000;
      /** A call from A: answered at +1 s, ended at +1 s + talkMs. */
      const call = (
        o: {
          atMs?: number;
          talkMs?: number;
          answered?: boolean;
          verdict?: 'synthetic' | 'human' | 'unsure';
          action?: 'drop' | 'warn';
          direction?: 'inbound' | 'outbound';
          from?: string;
        } = {},
      ): string => {
        const callId = `h-${Math.random().toString(36).slice(2, 10)}`;
        const atMs = o.atMs ?? t0;
        bus.emit('call.started', {
          callId,
          atMs,
          direction: o.direction ?? 'inbound',
          trunk: null,
          sourceAddress: '192.0.2.1',
          fromNumber: o.from ?? A,
          toNumber: '+4989000',
          sipCallId: `${callId}@t`,
          ruleId: null,
          treatment: 'analyse',
        });
        if (o.answered !== false) bus.emit('call.answered', { callId, atMs: atMs + 1000, codec: 'PCMU' });
        if (o.verdict)
          bus.emit('call.verdict', {
            callId,
            atMs: atMs + 3000,
            verdict: o.verdict,
            decisionMs: 2000,
            cumulativeLlr: 0,
          });
        if (o.action) bus.emit('call.action', { callId, atMs: atMs + 3001, action: o.action, reason: 't' });
        bus.emit('call.ended', {
          callId,
          atMs: atMs + 1000 + (o.talkMs ?? 30_000),
          reason: 'bye-caller',
          sipStatus: null,
        });
        return callId;
      };
      const since = t0 - 1;
      const h = () => s.callerHistory(A, since, MIN_TALK);

      expect(h()).toEqual({ conversations: 0, humanLabels: 0, robotLabels: 0, lastCallId: null });
      const c1 = call({ verdict: 'human' });
      const c2 = call({ atMs: t0 + 60_000 }); // no verdict (e.g. not analysed to the end) still counts
      s.flush();
      expect(h()).toEqual({ conversations: 2, humanLabels: 0, robotLabels: 0, lastCallId: c2 });
      expect(c1).not.toBe(c2);

      // None of these count: too short, unanswered, synthetic, dropped, warned but synthetic, outbound,
      // repeated audio, before the window, another caller.
      call({ atMs: t0 + 100_000, talkMs: MIN_TALK - 1 });
      call({ atMs: t0 + 100_001, answered: false });
      call({ atMs: t0 + 100_002, verdict: 'synthetic', action: 'warn' });
      const dropped = call({ atMs: t0 + 100_003, verdict: 'human', action: 'drop' });
      call({ atMs: t0 + 100_004, direction: 'outbound' });
      const repeated = call({ atMs: t0 + 100_005 });
      bus.emit('call.repeat', {
        callId: repeated,
        atMs: t0 + 100_006,
        matchedCalls: 1,
        otherCallers: 1,
        firstCallId: c1,
        bitErrorRate: 0.1,
      });
      call({ atMs: t0 - 5 });
      call({ atMs: t0 + 100_007, from: '+4930200002' });
      s.flush();
      expect(h()).toEqual({ conversations: 2, humanLabels: 0, robotLabels: 0, lastCallId: c2 });
      // Exactly minTalkMs counts.
      const edge = call({ atMs: t0 + 200_000, talkMs: MIN_TALK });
      s.flush();
      expect(h()).toMatchObject({ conversations: 3, lastCallId: edge });

      // A human label counts (even on a dropped call: the admin says it was a false drop), once.
      s.addLabel(dropped, 'human', 'false drop', 'admin');
      s.addLabel(c1, 'human', '', 'admin');
      expect(h()).toEqual({ conversations: 2, humanLabels: 2, robotLabels: 0, lastCallId: edge });
      // A robot label is reported, and that call no longer counts as a conversation.
      s.addLabel(c2, 'robot', '', 'admin');
      expect(h()).toEqual({ conversations: 1, humanLabels: 2, robotLabels: 1, lastCallId: edge });
      // The window: from after the first calls on, only the later ones are seen.
      expect(s.callerHistory(A, t0 + 150_000, MIN_TALK)).toEqual({
        conversations: 1,
        humanLabels: 0,
        robotLabels: 0,
        lastCallId: edge,
      });
      // Anyone else has no history.
      expect(s.callerHistory('+4930200003', since, MIN_TALK).lastCallId).toBeNull();
    });
  }

  it('records what made a call known, and filters by it', () => {
    const s = openStore();
    const bus = new CallEventBus();
    s.subscribe(bus);
    const plain = emitCall(bus);
    const known = 'known-1';
    bus.emit('call.started', {
      callId: known,
      atMs: Date.now(),
      direction: 'inbound',
      trunk: null,
      sourceAddress: '192.0.2.1',
      fromNumber: '+4930111222',
      toNumber: '+4989000',
      sipCallId: 'known-1@t',
      ruleId: null,
      treatment: 'analyse',
      knownCaller: { calls: 3, humanLabels: 1, lastCallId: plain },
    });
    s.flush();
    expect(s.getCall(known)!.call).toMatchObject({ knownCallerCalls: 3, knownCallerLastCallId: plain });
    expect(s.getCall(plain)!.call).toMatchObject({ knownCallerCalls: null, knownCallerLastCallId: null });
    expect(s.listCalls({ limit: 10, known: 'yes' }).items.map((c) => c.id)).toEqual([known]);
    expect(s.listCalls({ limit: 10, known: 'no' }).items.map((c) => c.id)).toEqual([plain]);
  });

  it('flushes early when flushMaxRows is reached', async () => {
    const s = openStore({ flushMaxRows: 10 });
    const bus = new CallEventBus();
    s.subscribe(bus);
    emitCall(bus, { scores: Array(20).fill(0.1) });
    await new Promise((r) => setImmediate(r));
    expect(s.queued).toBe(0);
    expect(s.db.prepare('SELECT count(*) AS n FROM scores').get()).toEqual({ n: 20 });
  });

  it('sheds score rows, never lifecycle rows, when the queue is full', () => {
    const cfg = validateConfig({
      store: { path: join(dir, 'vg.sqlite'), flushIntervalMs: 10_000, flushMaxRows: 1_000_000 },
    });
    const s = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger, { maxQueuedRows: 100 });
    open.push(s);
    const bus = new CallEventBus();
    s.subscribe(bus);
    const id = emitCall(bus, { scores: Array(500).fill(0.1), verdict: 'human' });
    s.flush();
    const d = s.getCall(id)!;
    expect(d.scores.length).toBeLessThan(100);
    expect(d.call.verdict).toBe('human');
    expect(d.call.endReason).toBe('bye-caller');
  });

  it('keeps a batch through a failed flush and writes it once the disk accepts writes again', () => {
    const s = openStore();
    const bus = new CallEventBus();
    s.subscribe(bus);
    const id = emitCall(bus, { scores: [1] });
    s.db.pragma('query_only = 1'); // a real SQLITE_READONLY on every write
    expect(() => s.flush()).toThrow(/readonly/i);
    expect(s.queued).toBeGreaterThan(0);
    s.db.pragma('query_only = 0');
    s.flush();
    expect(s.getCall(id)!.call.scoreCount).toBe(1);
  });

  it('gives up a batch that fails five times in a row', () => {
    const s = openStore();
    const bus = new CallEventBus();
    s.subscribe(bus);
    emitCall(bus);
    s.db.pragma('query_only = 1');
    for (let i = 0; i < 5; i++) expect(() => s.flush()).toThrow();
    expect(s.queued).toBe(0);
    s.db.pragma('query_only = 0');
    const later = emitCall(bus);
    s.flush();
    expect(s.listCalls({ limit: 10 }).items.map((c) => c.id)).toEqual([later]);
  });

  it('stores keyed pseudonyms instead of numbers when storeClearNumbers is false', () => {
    const s = openStore({}, { storeClearNumbers: false, pseudonymKey: 'k1' });
    const bus = new CallEventBus();
    s.subscribe(bus);
    const id = emitCall(bus, { from: '+49 30 111222' });
    s.flush();
    const c = s.getCall(id)!.call;
    expect(c.fromNumber).toMatch(/^p:[0-9a-f]{16}$/);
    expect(c.fromNumber).toBe(s.pseudonym('+4930111222'));
    expect(JSON.stringify(s.db.prepare('SELECT * FROM calls').all())).not.toContain('111222');
    // searching by the clear number finds the call through its pseudonym
    expect(s.listCalls({ limit: 10, q: '+4930111222' }).items.map((i) => i.id)).toEqual([id]);
  });

  it('keeps retained audio and serves it back', () => {
    const s = openStore();
    const bus = new CallEventBus();
    s.subscribe(bus);
    const id = emitCall(bus);
    bus.emit('call.audio', {
      callId: id,
      atMs: Date.now(),
      sampleRateHz: 8000,
      pcm: Int16Array.from([1, -2, 3]),
    });
    s.flush();
    expect(s.getCall(id)!.call.hasAudio).toBe(true);
    const a = s.getAudio(id)!;
    expect(a.sampleRateHz).toBe(8000);
    expect([...new Int16Array(a.pcm.buffer, a.pcm.byteOffset, 3)]).toEqual([1, -2, 3]);
  });
});

describe('queries', () => {
  it('pages with a keyset cursor through every call exactly once, newest first, with filters', () => {
    const s = openStore();
    const bus = new CallEventBus();
    s.subscribe(bus);
    const t0 = Date.UTC(2026, 10, 1);
    const ids: string[] = [];
    for (let i = 0; i < 53; i++) {
      // pairs share a start time, so the rowid tiebreak is exercised
      ids.push(
        emitCall(bus, {
          atMs: t0 + Math.floor(i / 2) * 1000,
          verdict: i % 3 === 0 ? 'synthetic' : 'human',
          actions: i % 3 === 0 ? ['drop'] : [],
        }),
      );
    }
    s.flush();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = s.listCalls({ limit: 10, cursor });
      expect(page.total).toBe(53);
      seen.push(...page.items.map((c) => c.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(6);
    expect(seen).toEqual([...ids].reverse());

    const synth = s.listCalls({ limit: 100, verdict: 'synthetic' });
    expect(synth.total).toBe(18);
    expect(synth.items.every((c) => c.verdict === 'synthetic' && c.actions.includes('drop'))).toBe(true);
    expect(s.listCalls({ limit: 100, action: 'drop' }).total).toBe(18);
    expect(s.listCalls({ limit: 100, fromMs: t0 + 10_000, toMs: t0 + 20_000 }).total).toBe(20);
    expect(() => s.listCalls({ limit: 10, cursor: 'garbage' })).toThrow(InvalidCursorError);
  });

  it('labels: latest wins, history kept, unknown call refused', () => {
    const s = openStore();
    const bus = new CallEventBus();
    s.subscribe(bus);
    const id = emitCall(bus, { scores: [2] });
    expect(s.addLabel(id, 'robot', 'sounded robotic', 'alice')).toMatchObject({
      label: 'robot',
      by: 'alice',
    }); // flushes the queued call first
    s.addLabel(id, 'human', 'it was Bob', 'carol');
    const d = s.getCall(id)!;
    expect(d.call.label).toBe('human');
    expect(d.labels.map((l) => [l.label, l.by])).toEqual([
      ['robot', 'alice'],
      ['human', 'carol'],
    ]);
    expect(s.listCalls({ limit: 10, label: 'human' }).total).toBe(1);
    expect(s.listCalls({ limit: 10, label: 'none' }).total).toBe(0);
    expect(s.addLabel('nope', 'human', '', 'x')).toBeNull();
  });

  it('stores tokens only as hashes', () => {
    const s = openStore();
    const { token, record } = s.createToken('ops', 'viewer', 'test');
    expect(token).toMatch(/^vg_[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(s.db.prepare('SELECT * FROM api_tokens').all())).not.toContain(token);
    expect(s.db.prepare('SELECT hash FROM api_tokens WHERE id = ?').get(record.id)).toEqual({
      hash: hashToken(token),
    });
    expect(s.findToken(token)?.name).toBe('ops');
    s.revokeToken(record.id);
    expect(s.findToken(token)).toBeNull();
  });
});

describe('retention', () => {
  it('prunes calls past retentionDays and audio past audioRetentionDays', () => {
    const day = 86_400_000;
    const now = Date.UTC(2026, 10, 28);
    const s = openStore({ retentionDays: 30, audioRetentionDays: 7 }, {}, () => now);
    const bus = new CallEventBus();
    s.subscribe(bus);
    const old = emitCall(bus, { atMs: now - 31 * day, scores: [1], verdict: 'human' });
    const mid = emitCall(bus, { atMs: now - 10 * day, scores: [1] });
    const fresh = emitCall(bus, { atMs: now - day });
    for (const [id, ago] of [
      [old, 31],
      [mid, 10],
      [fresh, 1],
    ] as const) {
      bus.emit('call.audio', {
        callId: id,
        atMs: now - ago * day,
        sampleRateHz: 8000,
        pcm: new Int16Array(8),
      });
    }
    s.flush();
    s.addLabel(old, 'human', '', 'x');
    expect(s.prune(now)).toEqual({ calls: 1, audio: 1, audit: 0 });
    expect(s.getCall(old)).toBeNull();
    for (const t of ['scores', 'verdicts', 'labels', 'audio']) {
      expect(s.db.prepare(`SELECT count(*) AS n FROM ${t} WHERE call_id = ?`).get(old)).toEqual({ n: 0 });
    }
    expect(s.getCall(mid)!.call.hasAudio).toBe(false);
    expect(s.getAudio(mid)).toBeNull();
    expect(s.getCall(fresh)!.call.hasAudio).toBe(true);
    expect(s.prune(now)).toEqual({ calls: 0, audio: 0, audit: 0 });
  });

  it('prunes the audit trail only when auditRetentionDays is set', () => {
    const day = 86_400_000;
    let now = Date.now();
    const keep = openStore({ path: join(dir, 'keep.sqlite') }, {}, () => now);
    const prune = openStore({ path: join(dir, 'prune.sqlite'), auditRetentionDays: 30 }, {}, () => now);
    for (const s of [keep, prune]) {
      s.audit('admin', 'old.entry', 'x');
      s.audit('admin', 'old.entry', 'y');
    }
    now += 31 * day;
    for (const s of [keep, prune]) s.audit('admin', 'new.entry', 'z');
    expect(keep.prune(now).audit).toBe(0);
    expect(prune.prune(now).audit).toBe(2);
    const actions = (s: typeof keep) =>
      (s.db.prepare('SELECT action FROM audit ORDER BY id').all() as { action: string }[]).map(
        (r) => r.action,
      );
    expect(actions(keep)).toEqual(['old.entry', 'old.entry', 'new.entry']);
    expect(actions(prune)).toEqual(['new.entry']);
  });

  it('prunes on its timer', async () => {
    const cfg = validateConfig({
      store: { path: join(dir, 'vg.sqlite'), retentionDays: 1, pruneIntervalMs: 1000 },
    });
    const first = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
    const bus = new CallEventBus();
    first.subscribe(bus);
    let now = Date.now();
    emitCall(bus, { atMs: now - 3600_000 });
    await first.close(); // its checkpoint worker too, before the directory can be removed
    const s = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger, { nowMs: () => now });
    open.push(s);
    expect(s.listCalls({ limit: 10 }).total).toBe(1);
    now += 86_400_000; // a day later the call is past retention
    await new Promise((r) => setTimeout(r, 1300));
    expect(s.listCalls({ limit: 10 }).total).toBe(0);
  });
});

describe('repeated-audio fingerprints (detector.repeat.persist)', () => {
  /** A fingerprint whose words and audible flags are all derived from `seed`, `frames` long. */
  function fp(seed: number, frames = 500) {
    const bits = new Uint32Array(frames);
    const audible = new Uint8Array(frames);
    for (let f = 0; f < frames; f++) {
      bits[f] = (Math.imul(seed * 7919 + f, 2654435761) >>> 0) | (f === 0 ? 0x80000001 : 0);
      audible[f] = (seed + f) % 5 === 0 ? 0 : 1;
    }
    return { bits, audible };
  }
  const keep = { sinceMs: 0, calls: 100 };

  it('writes at the flush and reads back, oldest first, bit for bit, across a reopen', async () => {
    const s = openStore();
    const a = { callId: 'a', callerKey: 'p:aaa', atMs: 2000, fingerprint: fp(1) };
    const b = { callId: 'b', callerKey: 'p:bbb', atMs: 1000, fingerprint: fp(2, 123) };
    s.saveFingerprint(a, keep);
    s.saveFingerprint(b, keep);
    expect(s.db.prepare('SELECT count(*) AS n FROM fingerprints').get()).toEqual({ n: 0 }); // queued only
    s.flush();
    expect(s.db.prepare('SELECT count(*) AS n FROM fingerprints').get()).toEqual({ n: 2 });
    open.splice(open.indexOf(s), 1);
    await s.close(); // its checkpoint worker too: an unawaited one can still write into dir at the rmSync
    const again = openStore();
    expect(again.recentFingerprints(0, 10)).toEqual([b, a]);
  });

  it('reads the queue too, only since sinceMs and only the newest limit, and deletes what is older', () => {
    const s = openStore();
    for (let i = 0; i < 6; i++)
      s.saveFingerprint({ callId: `c${i}`, callerKey: 'k', atMs: 1000 * i, fingerprint: fp(i, 10) }, keep);
    // Not flushed: recentFingerprints flushes first.
    expect(s.recentFingerprints(1500, 3).map((e) => e.callId)).toEqual(['c3', 'c4', 'c5']);
    expect(s.db.prepare('SELECT count(*) AS n FROM fingerprints').get()).toEqual({ n: 4 }); // c0, c1 deleted
  });

  it('keeps only what the index can hold: the window and the newest maxCalls, at each flush', () => {
    const s = openStore();
    for (let i = 0; i < 10; i++)
      s.saveFingerprint(
        { callId: `c${i}`, callerKey: 'k', atMs: 1000 * i, fingerprint: fp(i, 10) },
        { sinceMs: 1000 * i - 6500, calls: 4 },
      );
    s.flush();
    const ids = (
      s.db.prepare('SELECT call_id FROM fingerprints ORDER BY at_ms').all() as { call_id: string }[]
    ).map((r) => r.call_id);
    expect(ids).toEqual(['c6', 'c7', 'c8', 'c9']);
    s.saveFingerprint(
      { callId: 'c20', callerKey: 'k', atMs: 20_000, fingerprint: fp(20, 10) },
      { sinceMs: 13_500, calls: 4 },
    );
    s.flush();
    expect(s.recentFingerprints(0, 10).map((e) => e.callId)).toEqual(['c20']);
  });

  it('skips a row whose blobs do not fit together, deletes all on request, and prunes with the call', () => {
    const now = Date.UTC(2026, 10, 28);
    const s = openStore({ retentionDays: 30 }, {}, () => now);
    s.saveFingerprint({ callId: 'good', callerKey: 'k', atMs: now, fingerprint: fp(1, 10) }, keep);
    s.flush();
    s.db
      .prepare('INSERT INTO fingerprints (call_id, caller_key, at_ms, bits, audible) VALUES (?, ?, ?, ?, ?)')
      .run('bad', 'k', now, Buffer.alloc(10), Buffer.alloc(3));
    expect(s.recentFingerprints(0, 10).map((e) => e.callId)).toEqual(['good']);
    expect(s.deleteFingerprints()).toBe(2);
    expect(s.recentFingerprints(0, 10)).toEqual([]);

    const bus = new CallEventBus();
    s.subscribe(bus);
    const old = emitCall(bus, { atMs: now - 31 * 86_400_000 });
    s.saveFingerprint(
      { callId: old, callerKey: 'k', atMs: now - 31 * 86_400_000, fingerprint: fp(2, 10) },
      keep,
    );
    s.flush();
    expect(s.prune(now).calls).toBe(1);
    expect(s.db.prepare('SELECT count(*) AS n FROM fingerprints').get()).toEqual({ n: 0 });
  });
});

describe('crash consistency', () => {
  it('after SIGKILL mid-write the file is intact and holds a complete prefix of calls', async () => {
    const file = join(dir, 'crash.sqlite');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'crash-writer.ts'), file],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let reported = 0;
    await new Promise<void>((resolve, reject) => {
      const kill = () => {
        child.kill('SIGKILL');
        resolve();
      };
      child.stdout.on('data', (buf: Buffer) => {
        const m = /flushed (\d+)\s*$/.exec(buf.toString().trim());
        if (m) reported = Number(m[1]);
        // let it write a good amount, then kill at a random moment
        if (reported >= 3000 && child.exitCode === null && !child.killed)
          setTimeout(kill, Math.floor(Math.random() * 20));
      });
      child.on('error', reject);
      setTimeout(() => reject(new Error('writer made no progress')), 50_000).unref();
    });
    await new Promise((r) => child.once('exit', r));
    expect(child.signalCode).toBe('SIGKILL');

    const db = new Database(file);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    const calls = db
      .prepare('SELECT call_id, started_ms, score_count, verdict, ended_ms FROM calls ORDER BY started_ms')
      .all() as {
      call_id: string;
      started_ms: number;
      score_count: number;
      verdict: string | null;
      ended_ms: number | null;
    }[];
    // at least what the writer saw committed, and nothing but whole calls 0..n-1
    expect(calls.length).toBeGreaterThanOrEqual(reported);
    calls.forEach((c, i) => {
      expect(c.started_ms).toBe(i);
      expect(c).toMatchObject({ score_count: 20, verdict: 'synthetic', ended_ms: i + 1 });
    });
    expect(db.prepare('SELECT count(*) AS n FROM scores').get()).toEqual({ n: calls.length * 20 });
    db.close();
  }, 60_000);
});
