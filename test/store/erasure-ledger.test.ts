import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CallEventBus } from '../../src/call-events.js';
import { ledgerCheck } from '../../src/cli/doctor.js';
import { validateConfig } from '../../src/config/load-config.js';
import { readLedger } from '../../src/store/erasure-ledger.js';
import { Store } from '../../src/store/store.js';
import { emitCall } from '../api/api-harness.js';
import { captureLogger } from '../log-capture.js';

/**
 * The erasure ledger: an erasure outlives the restore of a backup taken before it. Real SQLite
 * files, a real online backup (better-sqlite3's, the same API as the sqlite3 shell's `.backup`),
 * the restore as docs/operations.md describes it (replace the file, delete -wal and -shm), and a
 * restart of the store.
 */
const NUMBER = '+4930111222';
const OTHER = '+4930999888';
let dir = '';
const open: Store[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const configOf = (store: Record<string, unknown> = {}) =>
  validateConfig({ store: { path: join(dir, 'vg.sqlite'), flushIntervalMs: 20, ...store } });

function openStore(store: Record<string, unknown> = {}) {
  const config = configOf(store);
  const { logger, lines } = captureLogger();
  const s = Store.open({ ...config.store, privacy: config.privacy }, logger);
  open.push(s);
  return { store: s, lines, config };
}

async function closeStore(s: Store) {
  open.splice(open.indexOf(s), 1);
  await s.close();
}

/** Three calls of NUMBER (one labelled), one of OTHER; a list entry naming NUMBER, audited. */
function seed(s: Store) {
  const bus = new CallEventBus();
  s.subscribe(bus);
  const mine = [
    emitCall(bus, { from: NUMBER, scores: [1, 2], verdict: 'human' }),
    emitCall(bus, { from: NUMBER, actions: ['warn'] }),
    emitCall(bus, { from: '+4989000003', to: NUMBER }),
  ];
  const other = emitCall(bus, { from: OTHER, scores: [3] });
  s.flush();
  s.addLabel(mine[1]!, 'human', 'customer', 'admin-1');
  s.audit('admin-1', 'call.labelled', mine[1]!, { label: 'human', note: 'customer' }); // as the route does
  s.audit('admin-1', 'policy.list_entry_added', 'allow-1', { pattern: NUMBER, note: 'VIP' });
  return { mine, other };
}

function restore(backup: string) {
  copyFileSync(backup, join(dir, 'vg.sqlite'));
  rmSync(join(dir, 'vg.sqlite-wal'), { force: true });
  rmSync(join(dir, 'vg.sqlite-shm'), { force: true });
}

const fileText = () => readFileSync(join(dir, 'vg.sqlite')).toString('latin1');

describe('erasure ledger', () => {
  it('re-erases calls and audit entries that a restored backup brings back, and names no one in the ledger', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vg-ledger-'));
    let { store } = openStore();
    const { mine, other } = seed(store);
    const backup = join(dir, 'backup.sqlite');
    await store.db.backup(backup); // taken before the erasure: it holds the calls

    const ids = store.callIdsOfNumber(NUMBER);
    expect(ids.sort()).toEqual([...mine].sort());
    const r = store.eraseCalls(ids, [NUMBER, store.pseudonym(NUMBER)]);
    expect(r).toMatchObject({ calls: 3, auditEntries: 2, ledgerWritten: true }); // the label's and the list entry's
    const pseudonym = store.pseudonym(NUMBER);
    const ledgerText = readFileSync(store.ledger!, 'utf8');
    expect(store.ledger).toBe(join(dir, 'vg.sqlite.erasures.jsonl'));
    for (const id of mine) expect(ledgerText).toContain(id);
    expect(ledgerText).not.toContain('111222');
    expect(ledgerText).not.toContain(pseudonym);
    expect(readLedger(store.ledger!).entries).toHaveLength(1);
    await closeStore(store);

    // The restore: the calls are back in the file.
    restore(backup);
    expect(fileText()).toContain(NUMBER);
    const config = configOf();
    // doctor, before the start, sees them (it reads the database without changing it)
    expect(ledgerCheck(config)).toMatchObject({ status: 'warn', name: 'store.erasures' });
    expect(ledgerCheck(config).message).toContain('3 erased call(s) are back');

    // The start erases them again, with everything that hangs off them.
    const reopened = openStore();
    store = reopened.store;
    for (const id of mine) expect(store.getCall(id)).toBeNull();
    expect(store.getCall(other)).not.toBeNull();
    for (const t of ['scores', 'verdicts', 'actions', 'labels']) {
      const n = store.db.prepare(`SELECT count(*) AS n FROM ${t} WHERE call_id IN (?, ?, ?)`).get(...mine);
      expect(n, t).toEqual({ n: 0 });
    }
    const line = reopened.lines.find((l) => l.event === 'privacy.erasure_reapplied');
    expect(line).toMatchObject({ calls: 3, auditEntries: 2, ledgerEntries: 1 });
    const audit = store.listAudit(50, null).items;
    expect(audit.find((a) => a.action === 'privacy.erasure_reapplied')?.detail).toEqual({
      calls: 3,
      auditEntries: 2,
    });
    expect(audit.some((a) => a.action === 'policy.list_entry_added')).toBe(false);
    const text = fileText();
    expect(text).not.toContain(NUMBER);
    expect(text).toContain(OTHER);
    expect(ledgerCheck(config)).toMatchObject({ status: 'ok' });
    await closeStore(store);

    // A second start finds nothing more to do and says nothing.
    const again = openStore();
    expect(again.lines.some((l) => l.event === 'privacy.erasure_reapplied')).toBe(false);
  });

  it('leaves an audit entry alone that reuses an erased row id at another time', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vg-ledger-'));
    const { store } = openStore();
    seed(store);
    const lastId = () => (store.db.prepare('SELECT max(id) AS id FROM audit').get() as { id: number }).id;
    const erasedId = lastId(); // the list entry's audit row: the highest id
    store.eraseCalls([], [NUMBER]);
    // SQLite reuses the highest deleted rowid (no AUTOINCREMENT): a new entry takes the same id.
    store.audit('admin-1', 'policy.rule_changed', 'rule-1', {});
    expect(lastId()).toBe(erasedId);
    await closeStore(store);
    const reopened = openStore();
    expect(reopened.store.listAudit(50, null).items.some((a) => a.action === 'policy.rule_changed')).toBe(
      true,
    );
    expect(reopened.lines.some((l) => l.event === 'privacy.erasure_reapplied')).toBe(false);
  });

  it('skips lines that are not entries, with a warning, and still applies the others', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vg-ledger-'));
    let { store } = openStore();
    const { mine } = seed(store);
    const backup = join(dir, 'backup.sqlite');
    await store.db.backup(backup);
    store.eraseCalls([mine[0]!]);
    const ledger = store.ledger!;
    await closeStore(store);
    appendFileSync(ledger, 'not json\n{"v":2,"atMs":1,"callIds":[],"audit":[]}\n{"v":1,"atMs":5,"callI');
    restore(backup);
    const config = configOf();
    expect(ledgerCheck(config)).toMatchObject({ status: 'warn' });
    expect(ledgerCheck(config).message).toContain('3 line(s) are not erasure entries (first: line 2');
    const reopened = openStore();
    store = reopened.store;
    expect(store.getCall(mine[0]!)).toBeNull();
    expect(store.getCall(mine[1]!)).not.toBeNull();
    const bad = reopened.lines.filter((l) => l.event === 'privacy.ledger_bad_line');
    expect(bad.map((l) => l.line)).toEqual([2, 3, 4]);
    expect(bad[1]!.err).toBe('unknown version 2');
    expect(reopened.lines.find((l) => l.event === 'privacy.erasure_reapplied')).toMatchObject({ calls: 1 });
  });

  it('erases even when the ledger cannot be written, says so, and logs it as an error', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vg-ledger-'));
    const ledger = join(dir, 'no-such-folder', 'erasures.jsonl');
    const { store, lines } = openStore({ erasureLedger: ledger });
    const { mine } = seed(store);
    const r = store.eraseCalls([mine[0]!]);
    expect(r).toMatchObject({ calls: 1, ledgerWritten: false });
    expect(store.getCall(mine[0]!)).toBeNull();
    expect(lines.find((l) => l.event === 'privacy.ledger_write_failed')).toMatchObject({
      level: 50,
      path: ledger,
    });
    // Nothing to record: nothing written, and no error.
    expect(store.eraseCalls([])).toMatchObject({ calls: 0, ledgerWritten: null });
  });

  it('an unreadable ledger is logged and the store still opens; doctor fails it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'vg-ledger-'));
    // A folder where the file should be: reading it fails (EISDIR), as a permission error would.
    const ledger = join(dir, 'ledger-dir');
    mkdirSync(ledger);
    const { store, lines, config } = openStore({ erasureLedger: ledger });
    expect(lines.find((l) => l.event === 'privacy.ledger_unreadable')).toMatchObject({ level: 50 });
    expect(store.getCall('none')).toBeNull();
    expect(ledgerCheck(config)).toMatchObject({ status: 'fail', name: 'store.erasures' });
  });
});
