import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';

/**
 * The erasure ledger: one JSON line per erasure, in a file beside the database (or where
 * store.erasureLedger says), so that an erasure outlives a restore of an older backup.
 *
 * A backup taken before an erasure still holds the erased calls; restoring it would bring them
 * back. At start the store reads the ledger and erases again what it names (Store.reapplyErasures).
 * The ledger names no one: it holds the calls' random ids and the audit entries' row ids and times,
 * never a number or a pseudonym, so keeping it is not keeping the data it erased.
 *
 * Each line is written with one write and synced to disk before the rows are deleted, so a crash
 * between the two leaves an entry whose rows are erased at the next start: what the admin asked.
 */

/** One erasure: the calls and the audit entries it deleted. */
export interface LedgerEntry {
  /** When the erasure ran (epoch ms). */
  atMs: number;
  callIds: string[];
  /** Audit entries by row id and time: a row id alone may be reused by a later entry. */
  audit: { id: number; atMs: number }[];
}

/** A line that is not a ledger entry, by line number (1-based), with what is wrong with it. */
export interface LedgerBadLine {
  line: number;
  error: string;
}

export class ErasureLedgerError extends Error {
  override name = 'ErasureLedgerError';
}

/** `<database>.erasures.jsonl` unless configured; none for an in-memory database (nothing to restore). */
export function ledgerPath(storePath: string, configured: string | null): string | null {
  if (configured) return configured;
  return storePath === ':memory:' ? null : `${storePath}.erasures.jsonl`;
}

export function appendLedger(path: string, entry: LedgerEntry): void {
  const line =
    JSON.stringify({
      v: 1,
      atMs: entry.atMs,
      callIds: entry.callIds,
      audit: entry.audit.map((a) => [a.id, a.atMs]),
    }) + '\n';
  let fd: number;
  try {
    fd = openSync(path, 'a', 0o600);
  } catch (err) {
    throw new ErasureLedgerError(`cannot open the erasure ledger ${path}: ${(err as Error).message}`);
  }
  try {
    writeSync(fd, line);
    fsyncSync(fd);
  } catch (err) {
    throw new ErasureLedgerError(`cannot write the erasure ledger ${path}: ${(err as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

function parseLine(text: string): LedgerEntry {
  const o = JSON.parse(text) as unknown;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error('not a JSON object');
  const { v, atMs, callIds, audit } = o as Record<string, unknown>;
  if (v !== 1) throw new Error(`unknown version ${JSON.stringify(v)}`);
  if (typeof atMs !== 'number' || !Number.isFinite(atMs)) throw new Error('atMs is not a number');
  if (!Array.isArray(callIds) || !callIds.every((id) => typeof id === 'string'))
    throw new Error('callIds is not a list of strings');
  if (
    !Array.isArray(audit) ||
    !audit.every(
      (a) => Array.isArray(a) && a.length === 2 && Number.isInteger(a[0]) && Number.isFinite(a[1] as number),
    )
  )
    throw new Error('audit is not a list of [id, atMs] pairs');
  return {
    atMs,
    callIds: callIds as string[],
    audit: (audit as [number, number][]).map(([id, at]) => ({ id, atMs: at })),
  };
}

/**
 * The ledger's entries, and the lines that are not entries (skipped, never fatal: a torn last
 * line after a crash is the usual one). A missing file is an empty ledger; an unreadable one
 * throws ErasureLedgerError.
 */
export function readLedger(path: string): { entries: LedgerEntry[]; bad: LedgerBadLine[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], bad: [] };
    throw new ErasureLedgerError(`cannot read the erasure ledger ${path}: ${(err as Error).message}`);
  }
  const entries: LedgerEntry[] = [];
  const bad: LedgerBadLine[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      entries.push(parseLine(line));
    } catch (err) {
      bad.push({ line: i + 1, error: (err as Error).message });
    }
  });
  return { entries, bad };
}
