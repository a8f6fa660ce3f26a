import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectBothPassed, makePcap, sippCall, startGateway, type TestGateway } from './sipp-harness.js';

/**
 * Repeated audio across callers (detector.repeat), end to end: sipp callers with different
 * numbers play one recording through the real gateway, as a robot campaign with rotating caller
 * IDs does. The recording is a human voice, so the voice detector alone would let it through:
 * the repeat is what the policy acts on.
 */
const ADMIN_TOKEN = 'repeat-e2e-admin-token-0123456789abcdef';
const LISTEN_MS = 3000;

/** A sipp working directory with the fixture `name` (its first `seconds`) as caller.pcap. */
async function pcap(name: string, seconds = 6): Promise<string> {
  return (await makePcap(join('test/fixtures', `${name}.wav`), seconds)).dir;
}

describe('repeated caller audio (detector.repeat), onRepeat=drop', () => {
  let gw: TestGateway;
  let recording: string;
  let other: string;
  beforeAll(async () => {
    recording = await pcap('human-librispeech-1');
    other = await pcap('human-librispeech-2');
    gw = await startGateway({
      // The voice alone never acts here: only a repeat can drop.
      'policy.defaults': { onSynthetic: 'log', onUnsure: 'log', onRepeat: 'drop' },
      'detector.repeat': { listenMs: LISTEN_MS, minOtherCallers: 2 },
      'api.bootstrapAdminToken': ADMIN_TOKEN,
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  async function call(number: string, dir: string, dropped: boolean) {
    const r = await sippCall(
      gw,
      dropped ? 'pbx-repeat-dropped.xml' : 'pbx-answer.xml',
      dropped ? 'caller-pcap-repeat-dropped.xml' : 'caller-pcap-from.xml',
      { dir },
      { keys: { caller_number: number }, pauseMs: LISTEN_MS + 1500 },
    );
    expectBothPassed(r);
  }

  async function storedCall(callId: string): Promise<Record<string, unknown>> {
    for (let i = 0; i < 40; i++) {
      const r = await fetch(`http://127.0.0.1:${gw.server.apiPort}/api/calls/${callId}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      if (r.status === 200) {
        const c = ((await r.json()) as { call: Record<string, unknown> }).call;
        if (c.endedAtMs !== null) return c;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`call ${callId} not stored`);
  }

  it('drops the third caller that plays the same recording, and records what it repeated', async () => {
    const from = gw.logs.length;
    await call('+4930111111', recording, false);
    // One caller so far: nothing to compare with.
    expect(gw.logs.slice(from).filter((l) => l.event === 'call.repeat')).toEqual([]);

    await call('+4930222222', recording, false);
    const second = gw.logs.slice(from).filter((l) => l.event === 'call.repeat');
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({ matchedCalls: 1, otherCallers: 1 });
    expect(Number(second[0]!.bitErrorRate)).toBeLessThan(0.25);
    // One other caller is below minOtherCallers (2): no action.
    expect(gw.logs.slice(from).filter((l) => l.event === 'call.action')).toEqual([]);

    await call('+4930333333', recording, true);
    const repeats = gw.logs.slice(from).filter((l) => l.event === 'call.repeat');
    expect(repeats).toHaveLength(2);
    expect(repeats[1]).toMatchObject({ matchedCalls: 2, otherCallers: 2 });
    const actions = gw.logs.slice(from).filter((l) => l.event === 'call.action');
    expect(actions.map((l) => l.action)).toEqual(['drop']);
    expect(String(actions[0]!.reason)).toMatch(/repeats 2 earlier call\(s\) from 2 other caller\(s\)/);
    // The voice was not what dropped it: no synthetic verdict.
    expect(
      gw.logs
        .slice(from)
        .filter((l) => l.event === 'call.verdict')
        .map((l) => l.verdict),
    ).not.toContain('synthetic');
    const started = gw.logs.slice(from).filter((l) => l.event === 'call.started');
    const ended = gw.logs.slice(from).filter((l) => l.event === 'call.ended');
    expect(ended.map((l) => l.reason)).toEqual(['bye-caller', 'bye-caller', 'dropped']);

    // The store and API keep the fact with the call.
    const ids = started.map((l) => String(l.callId));
    const third = await storedCall(ids[2]!);
    expect(third).toMatchObject({
      repeatCalls: 2,
      repeatCallers: 2,
      repeatFirstCallId: ids[0],
      endReason: 'dropped',
    });
    expect(await storedCall(ids[0]!)).toMatchObject({ repeatCalls: null, repeatCallers: null });

    // /metrics counts the repeats.
    const metrics = await (await fetch(`http://127.0.0.1:${gw.server.apiPort}/metrics`)).text();
    expect(metrics).toMatch(/^voiceguard_repeated_calls_total\{across_callers="yes"\} 2$/m);
    // All three calls are remembered now.
    expect(metrics).toMatch(/^voiceguard_repeat_index_calls 3$/m);
  });

  it('a different recording from a new caller is not a repeat, and passes', async () => {
    const from = gw.logs.length;
    await call('+4930444444', other, false);
    expect(gw.logs.slice(from).filter((l) => l.event === 'call.repeat')).toEqual([]);
    expect(gw.logs.slice(from).filter((l) => l.event === 'call.action')).toEqual([]);
  });

  it('the same caller calling again with the same audio counts no new caller', async () => {
    const from = gw.logs.length;
    await call('+4930444444', other, false);
    const repeats = gw.logs.slice(from).filter((l) => l.event === 'call.repeat');
    expect(repeats).toHaveLength(1);
    expect(repeats[0]).toMatchObject({ matchedCalls: 1, otherCallers: 0 });
    expect(gw.logs.slice(from).filter((l) => l.event === 'call.action')).toEqual([]);
  });

  it('a recording shorter than listenMs (the caller then sends no RTP) is checked once listenMs has passed', async () => {
    const short = await pcap('synthetic-tortoise-1', 2.5);
    const from = gw.logs.length;
    await call('+4930777771', short, false);
    await call('+4930777772', short, false);
    await call('+4930777773', short, true);
    const repeats = gw.logs.slice(from).filter((l) => l.event === 'call.repeat');
    expect(repeats.map((l) => l.otherCallers)).toEqual([1, 2]);
    expect(
      gw.logs
        .slice(from)
        .filter((l) => l.event === 'call.action')
        .map((l) => l.action),
    ).toEqual(['drop']);
    // The drop came from the timer, not from the end of the call: before the caller's hang-up time.
    const started = gw.logs.slice(from).filter((l) => l.event === 'call.started');
    const ended = gw.logs.slice(from).filter((l) => l.event === 'call.ended');
    expect(ended[2]!.reason).toBe('dropped');
    expect(Number(ended[2]!.time) - Number(started[2]!.time)).toBeLessThan(LISTEN_MS + 1500);
  });

  it('changed repeat settings (SIGHUP) rebuild the index from the store: the recording is still known', async () => {
    const from = gw.logs.length;
    const cfg = gw.server.config;
    const changed = {
      ...cfg,
      detector: { ...cfg.detector, repeat: { ...cfg.detector.repeat, minOtherCallers: 5 } },
    };
    gw.server.gateway.setConfig(changed);
    expect(gw.logs.slice(from).filter((l) => l.event === 'repeat.index_reset')).toHaveLength(1);
    const restored = gw.logs.slice(from).filter((l) => l.event === 'repeat.index_restored');
    expect(restored).toHaveLength(1);
    expect(Number(restored[0]!.calls)).toBeGreaterThanOrEqual(8); // every call above that was checked
    await call('+4930555555', recording, false);
    // The three earlier callers of the recording are remembered; 3 < minOtherCallers (5): no action.
    expect(
      gw.logs
        .slice(from)
        .filter((l) => l.event === 'call.repeat')
        .map((l) => [l.matchedCalls, l.otherCallers]),
    ).toEqual([[3, 3]]);
    // The same settings again change nothing: the index is kept.
    gw.server.gateway.setConfig(changed);
    expect(gw.logs.slice(from).filter((l) => l.event === 'repeat.index_reset')).toHaveLength(1);
  });

  it('persist off forgets the stored fingerprints: the recording is new again', async () => {
    const from = gw.logs.length;
    const cfg = gw.server.config;
    gw.server.gateway.setConfig({
      ...cfg,
      detector: { ...cfg.detector, repeat: { ...cfg.detector.repeat, minOtherCallers: 3, persist: false } },
    });
    const deleted = gw.logs.slice(from).filter((l) => l.event === 'repeat.fingerprints_deleted');
    expect(deleted).toHaveLength(1);
    expect(Number(deleted[0]!.rows)).toBeGreaterThanOrEqual(9);
    await call('+4930666666', recording, false);
    expect(gw.logs.slice(from).filter((l) => l.event === 'call.repeat')).toEqual([]);
    await call('+4930666667', recording, false);
    expect(
      gw.logs
        .slice(from)
        .filter((l) => l.event === 'call.repeat')
        .map((l) => l.otherCallers),
    ).toEqual([1]);
    // In memory only: nothing was written.
    const db = new Database(join(gw.dir, 'voiceguard.sqlite'), { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM fingerprints').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
  });
});

describe('repeated caller audio across a restart (detector.repeat.persist)', () => {
  it('a gateway restarted on the same store still knows the recording: the third caller is dropped', async () => {
    const recording = await pcap('human-librispeech-1');
    const settings = {
      'policy.defaults': { onSynthetic: 'log', onUnsure: 'log', onRepeat: 'drop' },
      'detector.repeat': { listenMs: LISTEN_MS, minOtherCallers: 2 },
    };
    const first = await startGateway(settings);
    const store = join(first.dir, 'voiceguard.sqlite');
    try {
      for (const number of ['+4940111111', '+4940222222']) {
        const r = await sippCall(
          first,
          'pbx-answer.xml',
          'caller-pcap-from.xml',
          { dir: recording },
          {
            keys: { caller_number: number },
            pauseMs: LISTEN_MS + 1500,
          },
        );
        expectBothPassed(r);
      }
    } finally {
      await first.stop();
    }
    const second = await startGateway({ ...settings, 'store.path': store });
    try {
      expect(second.events('repeat.index_restored').map((l) => l.calls)).toEqual([2]);
      const metrics = await (await fetch(`http://127.0.0.1:${second.server.apiPort}/metrics`)).text();
      expect(metrics).toMatch(/^voiceguard_repeat_index_calls 2$/m);
      const r = await sippCall(
        second,
        'pbx-repeat-dropped.xml',
        'caller-pcap-repeat-dropped.xml',
        { dir: recording },
        {
          keys: { caller_number: '+4940333333' },
          pauseMs: LISTEN_MS + 1500,
        },
      );
      expectBothPassed(r);
      expect(second.events('call.repeat')).toMatchObject([{ matchedCalls: 2, otherCallers: 2 }]);
      expect(second.events('call.action').map((l) => l.action)).toEqual(['drop']);
    } finally {
      await second.stop();
    }
  });
});
