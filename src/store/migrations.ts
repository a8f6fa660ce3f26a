import type Database from 'better-sqlite3';

/**
 * Versioned schema migrations: an ordered array, version = index + 1. Each runs in its own
 * transaction together with its `schema_migrations` row, so a crash mid-upgrade leaves the
 * previous version intact. Never edit a shipped migration; append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE calls (
    rowid INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL UNIQUE,
    sip_call_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    trunk TEXT,
    source_address TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number TEXT NOT NULL,
    from_pseudonym TEXT NOT NULL,
    to_pseudonym TEXT NOT NULL,
    rule_id TEXT,
    treatment TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    answered_ms INTEGER,
    ended_ms INTEGER,
    codec TEXT,
    end_reason TEXT,
    sip_status INTEGER,
    verdict TEXT,
    decision_ms INTEGER,
    verdict_llr REAL,
    final_llr REAL,
    max_llr REAL,
    score_count INTEGER NOT NULL DEFAULT 0,
    actions TEXT NOT NULL DEFAULT ',',
    detector_error TEXT,
    label TEXT,
    has_audio INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX calls_started ON calls(started_ms);
  CREATE TABLE scores (
    call_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    t_ms INTEGER NOT NULL,
    llr REAL NOT NULL,
    cum_llr REAL NOT NULL
  );
  CREATE INDEX scores_call ON scores(call_id, t_ms);
  CREATE TABLE verdicts (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    decision_ms INTEGER,
    cum_llr REAL NOT NULL
  );
  CREATE INDEX verdicts_call ON verdicts(call_id);
  CREATE TABLE actions (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL
  );
  CREATE INDEX actions_call ON actions(call_id);
  CREATE TABLE labels (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    label TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    by_name TEXT NOT NULL
  );
  CREATE INDEX labels_call ON labels(call_id);
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}'
  );
  CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    last_used_ms INTEGER,
    revoked_ms INTEGER
  );
  CREATE TABLE policy_rules (
    id TEXT PRIMARY KEY,
    priority INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
  );
  CREATE TABLE policy_lists (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    pattern TEXT NOT NULL,
    sip_status INTEGER,
    note TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (kind, pattern)
  );
  CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  CREATE TABLE audio (
    call_id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    sample_rate_hz INTEGER NOT NULL,
    pcm BLOB NOT NULL
  );
  `,
  // 2: the max single-window score for the tuning view, label author, filter indexes
  `
  ALTER TABLE calls ADD COLUMN max_window_llr REAL;
  ALTER TABLE calls ADD COLUMN labelled_by TEXT;
  ALTER TABLE calls ADD COLUMN labelled_ms INTEGER;
  CREATE INDEX calls_verdict ON calls(verdict, started_ms);
  CREATE INDEX calls_label ON calls(label) WHERE label IS NOT NULL;
  CREATE INDEX audit_at ON audit(at_ms);
  CREATE INDEX audio_at ON audio(at_ms);
  `,
  // 3: repeated caller audio (detector.repeat): earlier calls matched, and their other callers
  `
  ALTER TABLE calls ADD COLUMN repeat_calls INTEGER;
  ALTER TABLE calls ADD COLUMN repeat_callers INTEGER;
  ALTER TABLE calls ADD COLUMN repeat_first_call_id TEXT;
  CREATE INDEX calls_repeat_first ON calls(repeat_first_call_id) WHERE repeat_first_call_id IS NOT NULL;
  `,
  // 4: known callers (policy.knownCallers): a caller's earlier calls by pseudonym, and what made a call's
  // caller known when it started
  `
  CREATE INDEX calls_from ON calls(from_pseudonym, started_ms);
  ALTER TABLE calls ADD COLUMN known_calls INTEGER;
  ALTER TABLE calls ADD COLUMN known_last_call_id TEXT;
  `,
  // 5: the repeated-audio index's fingerprints (detector.repeat.persist), so that a restart does not
  // forget the recent calls; bits are the 32-bit words (little-endian), audible one byte per frame
  `
  CREATE TABLE fingerprints (
    call_id TEXT PRIMARY KEY,
    caller_key TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    bits BLOB NOT NULL,
    audible BLOB NOT NULL
  );
  CREATE INDEX fingerprints_at ON fingerprints(at_ms);
  `,
];

export function schemaVersion(db: Database.Database): number {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)',
  );
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

export class StoreSchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreSchemaError';
  }
}

/** Applies the migrations not yet applied; returns the versions applied. */
export function migrate(
  db: Database.Database,
  migrations: readonly string[] = MIGRATIONS,
  nowMs = Date.now(),
): number[] {
  const current = schemaVersion(db);
  if (current > migrations.length) {
    throw new StoreSchemaError(
      `database schema version ${current} is newer than this voiceguard (knows ${migrations.length}); upgrade voiceguard or use another store.path`,
    );
  }
  const applied: number[] = [];
  for (let v = current + 1; v <= migrations.length; v++) {
    db.transaction(() => {
      db.exec(migrations[v - 1]!);
      db.prepare('INSERT INTO schema_migrations (version, applied_ms) VALUES (?, ?)').run(v, nowMs);
    })();
    applied.push(v);
  }
  return applied;
}
