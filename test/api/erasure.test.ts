import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/audio/audio-fingerprint.js';
import { loadAudioFile, to8k } from '../../src/audio/load-audio.js';
import { RepeatIndex } from '../../src/detect/repeat-index.js';
import { emitCall, startHarness, type Harness } from './api-harness.js';

/**
 * Erasure for data subject requests: DELETE /api/calls/:id and POST /api/erasure, on a real store
 * file, with a real repeated-audio index standing in for the gateway's memory.
 */
const NUMBER = '+4930111222';
let h: Harness | null = null;
afterEach(async () => {
  await h?.close();
  h = null;
});

/** The bytes of the store's files (database and WAL) as latin1 text, to look for leftovers. */
function fileText(dir: string): string {
  let text = '';
  for (const f of ['vg.sqlite', 'vg.sqlite-wal']) {
    try {
      text += readFileSync(join(dir, f)).toString('latin1');
    } catch {
      // no WAL file after a truncating checkpoint
    }
  }
  return text;
}

async function setup(privacy: Record<string, unknown> = {}) {
  const index = new RepeatIndex({
    maxCalls: 10,
    windowMs: 3_600_000,
    maxFrames: 500,
    maxBitErrorRate: 0.3,
    minOverlapFrames: 100,
  });
  h = await startHarness({ privacy }, { forgetCalls: (ids) => index.forget(ids) });
  const pcm = to8k(await loadAudioFile('test/fixtures/human-librispeech-1.wav'));
  const fp = fingerprint(pcm.subarray(0, 32_000));
  // Three calls of the number (two from it, one to it), one of another caller.
  const mine = [
    emitCall(h.bus, { from: NUMBER, to: '+4989000001', scores: [1, 2], verdict: 'human' }),
    emitCall(h.bus, { from: NUMBER, to: '+4989000002', actions: ['warn'] }),
    emitCall(h.bus, { from: '+4989000003', to: NUMBER }),
  ];
  const other = emitCall(h.bus, { from: '+4930999888', to: '+4989000004', scores: [3] });
  h.bus.emit('call.audio', {
    callId: mine[0]!,
    atMs: Date.now(),
    sampleRateHz: 8000,
    pcm: new Int16Array(800),
  });
  for (const id of [mine[0]!, other]) {
    const entry = { callId: id, callerKey: id, atMs: Date.now(), fingerprint: fp };
    index.matchAndRemember(entry);
    h.store.saveFingerprint(entry, { sinceMs: 0, calls: 10 });
  }
  h.store.flush();
  const label = await h.app.inject({
    method: 'POST',
    url: `/api/calls/${mine[1]}/labels`,
    headers: h.admin,
    payload: { label: 'human', note: 'customer' },
  });
  expect(label.statusCode).toBe(201);
  return { mine, other, index, fp };
}

describe('POST /api/erasure', () => {
  it('erases every call from or to the number, with all that hangs off them, from the files and from memory', async () => {
    const { mine, other, index, fp } = await setup();
    const pseudonym = h!.store.pseudonym(NUMBER);
    expect(fileText(h!.dir)).toContain(NUMBER);
    const told: { callIds: string[] }[] = [];
    h!.bus.on('calls.erased', (e) => told.push(e));

    const res = await h!.app.inject({
      method: 'POST',
      url: '/api/erasure',
      headers: h!.admin,
      payload: { number: '+49 30 111 222' }, // written differently: numbers are normalised
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({
      calls: 3,
      skippedLive: [],
      auditEntries: 1, // the label's
      fingerprintsInMemory: 1,
      walTruncated: true,
      ledgerWritten: true,
      listEntries: [],
    });
    for (const id of mine) expect(h!.store.getCall(id)).toBeNull();
    // Receivers of the calls' events are told which calls to forget (webhooks, SSE): ids only.
    expect(told).toHaveLength(1);
    expect([...told[0]!.callIds].sort()).toEqual([...mine].sort());
    // The ledger that re-applies the erasure after a restore holds the ids, never the number.
    const ledger = readFileSync(h!.store.ledger!, 'utf8');
    for (const id of mine) expect(ledger).toContain(id);
    expect(ledger).not.toContain('111222');
    expect(ledger).not.toContain(pseudonym);
    for (const t of ['scores', 'verdicts', 'actions', 'labels', 'audio', 'fingerprints']) {
      const n = h!.store.db.prepare(`SELECT count(*) AS n FROM ${t} WHERE call_id IN (?, ?, ?)`).get(...mine);
      expect(n, t).toEqual({ n: 0 });
    }
    expect(h!.store.getCall(other)).not.toBeNull();
    const list = await h!.app.inject({
      url: `/api/calls?q=${encodeURIComponent(NUMBER)}`,
      headers: h!.admin,
    });
    expect(list.json().total).toBe(0);

    // Nothing of it is left in the database file or the WAL: the other caller's number still is.
    const text = fileText(h!.dir);
    expect(text).not.toContain(NUMBER);
    expect(text).not.toContain(pseudonym);
    expect(text).toContain('+4930999888');

    // The gateway's index forgot the erased call: the same audio now matches only the other call.
    const m = index.matchAndRemember({
      callId: 'probe',
      callerKey: 'probe',
      atMs: Date.now(),
      fingerprint: fp,
    });
    expect(m.map((x) => x.callId)).toEqual([other]);

    // The erasure is audited, without the number.
    const audit = await h!.app.inject({ url: '/api/audit', headers: h!.admin });
    const entries = audit.json().items as { action: string; detail: Record<string, unknown> }[];
    expect(entries.find((e) => e.action === 'privacy.erased')?.detail).toEqual({ calls: 3, skippedLive: 0 });
    expect(audit.body).not.toContain('111222');
  });

  it('names list entries of the number (kept: they are policy) and erases the audit of their changes', async () => {
    await setup();
    const added = await h!.app.inject({
      method: 'POST',
      url: '/api/lists/allow',
      headers: h!.admin,
      payload: { pattern: NUMBER, note: 'regular customer' },
    });
    expect(added.statusCode, added.body).toBe(201);
    const res = await h!.app.inject({
      method: 'POST',
      url: '/api/erasure',
      headers: h!.admin,
      payload: { number: NUMBER },
    });
    expect(res.json()).toMatchObject({
      calls: 3,
      auditEntries: 2, // the label's, and the list entry's
      listEntries: [{ id: added.json().id, kind: 'allow', pattern: NUMBER }],
    });
  });

  it('skips calls still in progress and names them; refuses what is not a number; admins only', async () => {
    await setup();
    const callId = 'live-call-1';
    h!.bus.emit('call.started', {
      callId,
      atMs: Date.now(),
      direction: 'inbound',
      trunk: 'default',
      sourceAddress: '192.0.2.10',
      fromNumber: NUMBER,
      toNumber: '+4989000009',
      sipCallId: 'live@test',
      ruleId: null,
      treatment: 'analyse',
    });
    h!.store.flush();
    const told: { callIds: string[] }[] = [];
    h!.bus.on('calls.erased', (e) => told.push(e));
    const res = await h!.app.inject({
      method: 'POST',
      url: '/api/erasure',
      headers: h!.admin,
      payload: { number: NUMBER },
    });
    expect(res.json()).toMatchObject({ calls: 3, skippedLive: [callId] });
    expect(told[0]!.callIds).toHaveLength(3);
    expect(told[0]!.callIds).not.toContain(callId);
    expect(h!.store.getCall(callId)).not.toBeNull();
    const del = await h!.app.inject({ method: 'DELETE', url: `/api/calls/${callId}`, headers: h!.admin });
    expect(del.statusCode).toBe(409);

    const bad = await h!.app.inject({
      method: 'POST',
      url: '/api/erasure',
      headers: h!.admin,
      payload: { number: 'x1' },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toMatch(/not a phone number/);
    const viewer = await h!.app.inject({
      method: 'POST',
      url: '/api/erasure',
      headers: h!.viewer,
      payload: { number: NUMBER },
    });
    expect(viewer.statusCode).toBe(403);
  });

  it('with pseudonyms only in the store, finds the calls by the clear number and by the pseudonym', async () => {
    const { mine } = await setup({ storeClearNumbers: false });
    const pseudonym = h!.store.pseudonym(NUMBER);
    expect(fileText(h!.dir)).not.toContain(NUMBER);
    const byPseudonym = await h!.app.inject({
      method: 'POST',
      url: '/api/erasure',
      headers: h!.admin,
      payload: { number: pseudonym },
    });
    expect(byPseudonym.json().calls).toBe(3);
    for (const id of mine) expect(h!.store.getCall(id)).toBeNull();
    emitCall(h!.bus, { from: NUMBER, to: '+4989000005' });
    h!.store.flush();
    const byNumber = await h!.app.inject({
      method: 'POST',
      url: '/api/erasure',
      headers: h!.admin,
      payload: { number: NUMBER },
    });
    expect(byNumber.json().calls).toBe(1);
    expect(fileText(h!.dir)).not.toContain(pseudonym);
  });
});

describe('DELETE /api/calls/:id', () => {
  it('erases one call; a second time it is gone (404); viewers may not', async () => {
    const { mine } = await setup();
    expect(
      (await h!.app.inject({ method: 'DELETE', url: `/api/calls/${mine[0]}`, headers: h!.viewer }))
        .statusCode,
    ).toBe(403);
    const res = await h!.app.inject({ method: 'DELETE', url: `/api/calls/${mine[0]}`, headers: h!.admin });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ calls: 1, fingerprintsInMemory: 1, listEntries: [] });
    expect(h!.store.getCall(mine[0]!)).toBeNull();
    expect(h!.store.getCall(mine[1]!)).not.toBeNull();
    expect(
      (await h!.app.inject({ method: 'DELETE', url: `/api/calls/${mine[0]}`, headers: h!.admin })).statusCode,
    ).toBe(404);
    const audit = await h!.app.inject({ url: '/api/audit', headers: h!.admin });
    expect(
      (audit.json().items as { action: string; target: string }[]).some(
        (e) => e.action === 'call.erased' && e.target === mine[0],
      ),
    ).toBe(true);
  });
});
