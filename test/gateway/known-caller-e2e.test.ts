import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectBothPassed,
  makePcap,
  sippCall,
  startGateway,
  type LogLine,
  type TestGateway,
} from './sipp-harness.js';

/**
 * Known callers (policy.knownCallers), end to end: real sipp callers through the real gateway,
 * detector and SQLite store. A caller who had a human conversation before is warned about, not
 * dropped, when the detector calls their voice synthetic; a new caller with the same audio is
 * dropped; a robot label on the known caller's call ends the protection.
 */
const ADMIN_TOKEN = 'known-caller-e2e-admin-token-0123456789';
const REGULAR = '+4930987001';
const MIN_TALK_S = 3;

describe('known callers (policy.knownCallers), onSynthetic=drop', () => {
  let gw: TestGateway;
  let human: string;
  let tts: string;
  beforeAll(async () => {
    human = (await makePcap(join('test/fixtures', 'human-librispeech-1.wav'), 6)).dir;
    tts = (await makePcap(join('test/fixtures', 'synthetic-mandarin-fastspeech2-vocgan-1.wav'), 8)).dir;
    gw = await startGateway({
      'policy.defaults': { onSynthetic: 'drop', onUnsure: 'log' },
      'policy.knownCallers': { minCalls: 1, minTalkSeconds: MIN_TALK_S },
      // Only the voice acts here (the synthetic recording is played by more than one caller).
      'detector.repeat': { enabled: false },
      'store.flushIntervalMs': 100,
      'api.bootstrapAdminToken': ADMIN_TOKEN,
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  const api = (path: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${gw.server.apiPort}${path}`, {
      ...init,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        'content-type': 'application/json',
        ...init.headers,
      },
    });

  async function storedCall(callId: string): Promise<Record<string, unknown>> {
    for (let i = 0; i < 50; i++) {
      const r = await api(`/api/calls/${callId}`);
      if (r.status === 200) {
        const c = ((await r.json()) as { call: Record<string, unknown> }).call;
        if (c.endedAtMs !== null) return c;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`call ${callId} not stored`);
  }

  /** One call; its log lines, its call id and its stored record (once ended). */
  async function call(number: string, dir: string, dropped: boolean, pauseMs: number) {
    const from = gw.logs.length;
    const r = await sippCall(
      gw,
      dropped ? 'pbx-dropped.xml' : 'pbx-answer.xml',
      dropped ? 'caller-pcap-from-dropped.xml' : 'caller-pcap-from.xml',
      { dir },
      { keys: { caller_number: number }, pauseMs },
    );
    expectBothPassed(r);
    const logs = gw.logs.slice(from);
    const of = (event: string): LogLine[] => logs.filter((l) => l.event === event);
    const id = String(of('call.started')[0]!.callId);
    return { of, id, stored: await storedCall(id) };
  }

  async function metric(line: RegExp): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${gw.server.apiPort}/metrics`)).text();
    const m = text.split('\n').find((l) => line.test(l));
    return m ? Number(m.split(' ').pop()) : 0;
  }

  let firstId = '';
  it('a first call is a plain human conversation: not known, not acted on', async () => {
    const c = await call(REGULAR, human, false, (MIN_TALK_S + 2) * 1000);
    expect(c.of('call.known_caller')).toEqual([]);
    expect(c.of('call.verdict').map((l) => l.verdict)).not.toContain('synthetic');
    expect(c.of('call.action').filter((l) => l.action === 'drop')).toEqual([]);
    expect(c.stored).toMatchObject({ knownCallerCalls: null, endReason: 'bye-caller' });
    expect(Number(c.stored.endedAtMs) - Number(c.stored.answeredAtMs)).toBeGreaterThanOrEqual(
      MIN_TALK_S * 1000,
    );
    firstId = c.id;
  });

  it('the same caller with a voice judged synthetic is warned, not dropped, and the call says why', async () => {
    const cappedBefore = await metric(/^voiceguard_actions_capped_total\{from="drop",to="warn"\}/);
    const c = await call(REGULAR, tts, false, 9000);
    expect(c.of('call.known_caller')).toHaveLength(1);
    expect(c.of('call.known_caller')[0]).toMatchObject({ calls: 1, lastCallId: firstId, capAction: 'warn' });
    expect(c.of('call.verdict').map((l) => l.verdict)).toEqual(['synthetic']);
    const actions = c.of('call.action');
    expect(actions.map((l) => l.action)).not.toContain('drop');
    const spared = actions.filter((l) => l.cappedFrom === 'drop');
    expect(spared).toHaveLength(1);
    expect(spared[0]!.action).toBe('warn');
    expect(String(spared[0]!.reason)).toMatch(
      /drop capped at warn: known caller \(1 earlier human call\(s\)\)/,
    );
    // The staff member was warned once (the warn at warnLlr or the capped drop, whichever came first).
    expect(actions.filter((l) => l.action === 'warn' && !l.again)).toHaveLength(1);
    expect(c.of('call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    expect(c.stored).toMatchObject({
      knownCallerCalls: 1,
      knownCallerLastCallId: firstId,
      verdict: 'synthetic',
      actions: ['warn'],
    });
    const detail = (await (await api(`/api/calls/${c.id}`)).json()) as { actions: { reason: string }[] };
    expect(detail.actions.some((a) => /drop capped at warn/.test(a.reason))).toBe(true);
    const listed = (await (await api('/api/calls?known=yes')).json()) as { items: { id: string }[] };
    expect(listed.items.map((i) => i.id)).toEqual([c.id]);
    expect(await metric(/^voiceguard_actions_capped_total\{from="drop",to="warn"\}/)).toBe(cappedBefore + 1);
    expect(await metric(/^voiceguard_known_caller_calls_total /)).toBeGreaterThanOrEqual(1);

    // A synthetic call is no conversation: the caller's history still holds the first call alone.
    const again = await call(REGULAR, tts, false, 9000);
    expect(again.of('call.known_caller')[0]).toMatchObject({ calls: 1, lastCallId: firstId });
    expect(again.of('call.action').map((l) => l.action)).not.toContain('drop');
  });

  it('a delayed offer from the known caller that the answer moves to a codec rule keeps the cap', async () => {
    // The INVITE has no SDP: the default rule decides first, and the caller's history is read for it.
    // The ACK's PCMU answer then makes the PCMU rule match; the known-caller cap carries over to it.
    const rule = gw.server.policy.createRule(
      { name: 'PCMU calls', match: { codecs: ['pcmu'] }, onSynthetic: 'drop', onUnsure: 'log' },
      'test',
    );
    const from = gw.logs.length;
    try {
      const r = await sippCall(
        gw,
        'pbx-answer.xml',
        'caller-delayed-offer-from.xml',
        { dir: tts },
        { keys: { caller_number: REGULAR }, pauseMs: 9000 },
      );
      expectBothPassed(r);
    } finally {
      gw.server.policy.deleteRule(rule.id, 'test');
    }
    const of = (event: string): LogLine[] => gw.logs.slice(from).filter((l) => l.event === event);
    expect(of('policy.rule_by_codec')).toMatchObject([
      { codec: 'pcmu', rule: 'PCMU calls', treatment: 'analyse' },
    ]);
    // The history was read once, for the INVITE's rule.
    expect(of('call.known_caller')).toHaveLength(1);
    expect(of('call.verdict').map((l) => l.verdict)).toEqual(['synthetic']);
    expect(of('call.action').map((l) => l.action)).not.toContain('drop');
    expect(of('call.action').filter((l) => l.cappedFrom === 'drop')).toHaveLength(1);
    expect(of('call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    const stored = await storedCall(String(of('call.started')[0]!.callId));
    expect(stored).toMatchObject({ ruleId: rule.id, knownCallerCalls: 1, codec: 'pcmu' });
  });

  it('a new caller with the same audio is dropped', async () => {
    const c = await call('+4930987002', tts, true, 9000);
    expect(c.of('call.known_caller')).toEqual([]);
    expect(c.of('call.action').map((l) => l.action)).toContain('drop');
    expect(c.stored).toMatchObject({ knownCallerCalls: null, endReason: 'dropped' });
  });

  it("a robot label on one of the caller's calls ends the protection", async () => {
    const list = (await (await api(`/api/calls?known=yes`)).json()) as { items: { id: string }[] };
    const r = await api(`/api/calls/${list.items[0]!.id}/labels`, {
      method: 'POST',
      body: JSON.stringify({ label: 'robot', note: 'the regular number was spoofed' }),
    });
    expect(r.status).toBe(201);
    const c = await call(REGULAR, tts, true, 9000);
    expect(c.of('call.known_caller')).toEqual([]);
    expect(c.stored).toMatchObject({ knownCallerCalls: null, endReason: 'dropped' });
  });
});
