import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitCall, startHarness, type Harness } from './api-harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(() => h.close());

const post = (url: string, payload: unknown, headers = h.admin) =>
  h.app.inject({ method: 'POST', url, payload: payload as object, headers });
const put = (url: string, payload: unknown) =>
  h.app.inject({ method: 'PUT', url, payload: payload as object, headers: h.admin });
const get = (url: string, headers = h.admin) => h.app.inject({ method: 'GET', url, headers });

describe('validation errors name the field', () => {
  it.each([
    [
      'POST',
      '/api/policy/rules',
      { name: 'x', onSynthetic: 'nuke' },
      'onSynthetic',
      'allowed values: "drop", "warn", "log"',
    ],
    [
      'POST',
      '/api/policy/rules',
      { name: 'x', thresholds: { warnLlr: 'high' } },
      'thresholds.warnLlr',
      'must be number',
    ],
    [
      'POST',
      '/api/policy/rules',
      { name: 'x', thresholds: { warnLlr: 20 } },
      'thresholds.warnLlr',
      'must be <= dropLlr',
    ],
    [
      'POST',
      '/api/policy/rules',
      { name: 'x', thresholds: { humanLlr: 5 } },
      'thresholds.humanLlr',
      'must be < warnLlr',
    ],
    ['POST', '/api/policy/rules', { thresholds: {} }, 'name', "must have required property 'name'"],
    ['POST', '/api/policy/rules', { name: 'x', colour: 'red' }, 'colour', 'unknown key'],
    [
      'POST',
      '/api/policy/rules',
      { name: 'x', match: { toNumbers: ['+49?'] } },
      'match.toNumbers.0',
      'invalid number pattern',
    ],
    [
      'POST',
      '/api/policy/rules',
      { name: 'x', match: { schedule: [{ days: ['mon'], start: '7:00', end: '09:00' }] } },
      'match.schedule.0.start',
      'HH:MM',
    ],
    [
      'POST',
      '/api/policy/rules',
      { name: 'x', match: { sourceAddresses: ['10.0.0.0/40'] } },
      'match.sourceAddresses.0',
      'CIDR',
    ],
    ['PUT', '/api/policy/defaults', { warnLlr: 9 }, 'warnLlr', 'must be <= dropLlr'],
    ['PUT', '/api/policy/defaults', { maxListenMs: 10 }, 'maxListenMs', '>= 500'],
    ['POST', '/api/lists/deny', { pattern: '_0[a]' }, 'pattern', 'bad set'],
    ['POST', '/api/lists/deny', { pattern: '+49*', sipStatus: 200 }, 'sipStatus', '>= 400'],
    ['POST', '/api/lists/maybe', { pattern: '+49*' }, 'params.kind', 'allowed values: "allow", "deny"'],
    ['POST', '/api/tokens', { name: 'x', role: 'root' }, 'role', 'allowed values: "viewer", "admin"'],
    ['GET', '/api/calls?limit=0', undefined, 'querystring.limit', '>= 1'],
    ['GET', '/api/calls?verdict=robot', undefined, 'querystring.verdict', 'allowed values'],
    ['GET', '/api/calls?cursor=bm9wZQ', undefined, 'cursor', 'cursor'],
    ['GET', '/api/calls?from=yesterday', undefined, 'from', 'neither epoch milliseconds nor an ISO 8601'],
    ['GET', '/api/tuning?dropLlr=abc', undefined, 'querystring.dropLlr', 'must be number'],
  ])('%s %s %j → 400 %s', async (method, url, payload, field, fragment) => {
    const r = await h.app.inject({
      method: method as 'POST',
      url,
      payload: payload as object,
      headers: h.admin,
    });
    expect(r.statusCode, r.body).toBe(400);
    const body = r.json() as { field: string; message: string };
    expect(body.field).toBe(field);
    expect(body.message).toContain(fragment);
  });

  it('names only the real problem of a nullable field, not the anyOf branches', async () => {
    const r = await h.app.inject({
      method: 'POST',
      url: '/api/lists/deny',
      payload: { pattern: '+49*', sipStatus: 700 },
      headers: h.admin,
    });
    expect(r.statusCode).toBe(400);
    expect(r.json()).toMatchObject({
      message: 'sipStatus: must be <= 699',
      field: 'sipStatus',
      issues: [{ field: 'sipStatus', message: 'sipStatus: must be <= 699' }],
    });
  });

  it('answers unknown routes and ids with 404', async () => {
    expect((await get('/api/nope')).statusCode).toBe(404);
    expect((await get('/api/calls/nope')).statusCode).toBe(404);
    expect((await get('/api/policy/rules/nope')).statusCode).toBe(404);
    expect((await put('/api/policy/rules/nope', { name: 'x' })).statusCode).toBe(404);
    expect((await post('/api/calls/nope/labels', { label: 'human' })).statusCode).toBe(404);
    expect(
      (await h.app.inject({ method: 'DELETE', url: '/api/lists/deny/nope', headers: h.admin })).statusCode,
    ).toBe(404);
  });
});

describe('policy and lists through the API', () => {
  it('CRUD on rules changes how new calls are evaluated, and is audited', async () => {
    const facts = {
      trunk: 'default',
      sourceAddress: '192.0.2.1',
      fromNumber: '+4930111',
      toNumber: '+498912',
      at: new Date(),
    };
    const created = await post('/api/policy/rules', {
      id: 'munich',
      name: 'Munich DIDs',
      match: { toNumbers: ['+4989*'] },
      onSynthetic: 'drop',
      thresholds: { dropLlr: 6 },
    });
    expect(created.statusCode).toBe(201);
    expect(h.policy.evaluate(facts)).toMatchObject({
      ruleId: 'munich',
      onSynthetic: 'drop',
      thresholds: { dropLlr: 6, warnLlr: 4 },
    });
    expect((await post('/api/policy/rules', { id: 'munich', name: 'again' })).statusCode).toBe(409);
    const list = (await get('/api/policy/rules', h.viewer)).json() as {
      items: { id: string }[];
      version: number;
    };
    expect(list.items.map((r) => r.id)).toEqual(['munich']);
    const updated = await put('/api/policy/rules/munich', {
      name: 'Munich DIDs',
      match: { toNumbers: ['+4989*'] },
      onSynthetic: 'log',
    });
    expect(updated.statusCode).toBe(200);
    expect(h.policy.evaluate(facts).onSynthetic).toBe('log');
    expect((await get('/api/policy/rules/munich')).json()).toMatchObject({
      id: 'munich',
      onSynthetic: 'log',
    });
    expect(
      (await h.app.inject({ method: 'DELETE', url: '/api/policy/rules/munich', headers: h.admin }))
        .statusCode,
    ).toBe(204);
    expect(h.policy.evaluate(facts).ruleId).toBeNull();
    const audit = (await get('/api/audit?limit=3')).json() as { items: { action: string; actor: string }[] };
    expect(audit.items.map((a) => a.action)).toEqual([
      'policy.rule_deleted',
      'policy.rule_updated',
      'policy.rule_created',
    ]);
    expect(audit.items[0]!.actor).toBe('bootstrap-admin');
  });

  it('dry-runs the policy for given call facts (viewer)', async () => {
    await post('/api/policy/rules', {
      id: 'nights',
      name: 'Nights',
      match: { schedule: [{ days: ['sat'], start: '22:00', end: '06:00' }] },
      onSynthetic: 'drop',
    });
    // Sunday 03:00 UTC belongs to Saturday's night range
    const night = await get(
      '/api/policy/evaluate?fromNumber=%2B4930111&toNumber=%2B4989&at=2026-11-29T03:00:00Z',
      h.viewer,
    );
    expect(night.statusCode).toBe(200);
    expect(night.json()).toMatchObject({ treatment: 'analyse', ruleId: 'nights', onSynthetic: 'drop' });
    const day = await get(
      '/api/policy/evaluate?fromNumber=%2B4930111&toNumber=%2B4989&at=2026-11-29T12:00:00Z',
      h.viewer,
    );
    expect(day.json()).toMatchObject({ ruleId: null, ruleName: 'defaults' });
    expect((await get('/api/policy/evaluate?toNumber=1')).json()).toMatchObject({
      field: 'querystring.fromNumber',
    });
    await h.app.inject({ method: 'DELETE', url: '/api/policy/rules/nights', headers: h.admin });
  });

  it('defaults: effective values and override round-trip', async () => {
    const r = await put('/api/policy/defaults', { onSynthetic: 'drop', dropLlr: 10, onRepeat: 'drop' });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({
      effective: { onSynthetic: 'drop', onRepeat: 'drop', thresholds: { dropLlr: 10, warnLlr: 4 } },
      override: { onSynthetic: 'drop', dropLlr: 10, onRepeat: 'drop' },
    });
    // The model's G.729 bounds, under the stored dropLlr.
    expect(r.json().effective.byCodec).toEqual({
      g729: { dropLlr: 10, warnLlr: 6, humanLlr: -12, maxListenMs: 10_000 },
    });
    const back = (await get('/api/policy/defaults', h.viewer)).json();
    expect(back).toMatchObject({
      effective: { onRepeat: 'drop', thresholds: { dropLlr: 10 } },
      timeZone: 'UTC',
      denyStatus: 603,
    });
    // The repeated-audio setting is read from the configuration and shown as it is.
    expect(back.repeat).toEqual(h.config.detector.repeat);
    expect(back.repeat).toMatchObject({ enabled: true, minOtherCallers: 2, persist: true });
    await put('/api/policy/defaults', {});
  });

  it('lists: add, refuse duplicates, delete', async () => {
    const a = await post('/api/lists/deny', { pattern: '+4990*', sipStatus: 486, note: 'premium' });
    expect(a.statusCode).toBe(201);
    const entry = a.json() as { id: string };
    expect((await post('/api/lists/deny', { pattern: '+4990*' })).statusCode).toBe(409);
    const facts = {
      trunk: null,
      sourceAddress: '192.0.2.1',
      fromNumber: '+49901',
      toNumber: '+1',
      at: new Date(),
    };
    expect(h.policy.evaluate(facts)).toMatchObject({ treatment: 'deny', denyStatus: 486 });
    expect(((await get('/api/lists/deny', h.viewer)).json() as { items: unknown[] }).items).toHaveLength(1);
    expect(
      (await h.app.inject({ method: 'DELETE', url: `/api/lists/deny/${entry.id}`, headers: h.admin }))
        .statusCode,
    ).toBe(204);
    expect(h.policy.evaluate(facts).treatment).toBe('analyse');
  });
});

describe('calls, labels, stats, tuning', () => {
  it('pages through calls with cursors and filters', async () => {
    const t0 = Date.UTC(2026, 9, 1);
    for (let i = 0; i < 25; i++)
      emitCall(h.bus, { atMs: t0 + i * 60_000, verdict: i < 5 ? 'synthetic' : 'human', from: `+4930${i}` });
    h.store.flush();
    const seen = new Set<string>();
    let url = '/api/calls?limit=10&from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z';
    for (let page = 0; page < 3; page++) {
      const r = (await get(url, h.viewer)).json() as {
        items: { id: string; startedAtMs: number }[];
        nextCursor: string | null;
        total: number;
      };
      expect(r.total).toBe(25);
      expect(r.items.length).toBe(page < 2 ? 10 : 5);
      for (const c of r.items) seen.add(c.id);
      if (page < 2) url = `/api/calls?limit=10&from=${t0}&to=${t0 + 86_400_000}&cursor=${r.nextCursor}`;
      else expect(r.nextCursor).toBeNull();
    }
    expect(seen.size).toBe(25);
    const synth = (await get(`/api/calls?verdict=synthetic&from=${t0}`)).json() as { total: number };
    expect(synth.total).toBe(5);
    const q = (await get('/api/calls?q=%2B430' + '17')).json() as { items: { fromNumber: string }[] };
    expect(q.items.map((c) => c.fromNumber)).toEqual([]);
    const q2 = (await get('/api/calls?q=' + encodeURIComponent('+493017'))).json() as {
      items: { fromNumber: string }[];
    };
    expect(q2.items.map((c) => c.fromNumber)).toEqual(['+493017']);
  });

  it('shows a call with its timeline and takes labels from admins only', async () => {
    const id = emitCall(h.bus, { scores: [2, 2, 3], verdict: 'synthetic', actions: ['warn'] });
    const d = (await get(`/api/calls/${id}`, h.viewer)).json() as {
      call: { verdict: string };
      scores: unknown[];
      verdict: { verdict: string };
      actions: unknown[];
    };
    expect(d.call.verdict).toBe('synthetic');
    expect(d.scores).toHaveLength(3);
    expect(d.verdict.verdict).toBe('synthetic');
    expect(d.actions).toHaveLength(1);
    expect((await post(`/api/calls/${id}/labels`, { label: 'robot' }, h.viewer)).statusCode).toBe(403);
    const l = await post(`/api/calls/${id}/labels`, { label: 'robot', note: 'IVR spam' });
    expect(l.statusCode).toBe(201);
    expect(l.json()).toMatchObject({ label: 'robot', note: 'IVR spam', by: 'bootstrap-admin' });
    expect(((await get(`/api/calls/${id}`)).json() as { labels: unknown[] }).labels).toHaveLength(1);
  });

  it('serves retained review audio as WAV, and 404 where none was kept', async () => {
    const id = emitCall(h.bus, { atMs: Date.UTC(2026, 7, 1) });
    h.bus.emit('call.audio', {
      callId: id,
      atMs: Date.now(),
      sampleRateHz: 8000,
      pcm: Int16Array.from([0, 1000, -1000, 32767]),
    });
    h.store.flush();
    const r = await get(`/api/calls/${id}/audio`, h.viewer);
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('audio/wav');
    const wav = r.rawPayload;
    expect(wav.subarray(0, 4).toString()).toBe('RIFF');
    expect(wav.readUInt32LE(24)).toBe(8000);
    expect(wav.length).toBe(44 + 8);
    expect(wav.readInt16LE(44 + 6)).toBe(32767);
    const other = emitCall(h.bus, { atMs: Date.UTC(2026, 7, 1) });
    h.store.flush();
    expect((await get(`/api/calls/${other}/audio`)).statusCode).toBe(404);
  });

  it('stats count verdicts, actions and labels', async () => {
    const s = (await get('/api/stats?from=0', h.viewer)).json() as {
      calls: number;
      byVerdict: Record<string, number>;
      byAction: Record<string, number>;
      labelled: Record<string, number>;
    };
    expect(s.calls).toBe(28);
    expect(s.byVerdict).toEqual({ synthetic: 6, human: 20, unsure: 0, none: 2 });
    expect(s.byAction).toEqual({ drop: 0, warn: 1, log: 0 });
    expect(s.labelled).toEqual({ human: 0, robot: 1 });
  });

  it('tuning: distributions, ROC and what-if follow the labelled calls', async () => {
    // 10 humans peaking at 0..9 and 10 robots peaking at 5..14 (cumulative LLR, one score each)
    const ids: { id: string; label: 'human' | 'robot' }[] = [];
    for (let i = 0; i < 10; i++)
      ids.push({ id: emitCall(h.bus, { atMs: Date.UTC(2026, 8, 1) + i, scores: [i] }), label: 'human' });
    for (let i = 0; i < 10; i++)
      ids.push({ id: emitCall(h.bus, { atMs: Date.UTC(2026, 8, 2) + i, scores: [5 + i] }), label: 'robot' });
    h.store.flush();
    for (const { id, label } of ids) await post(`/api/calls/${id}/labels`, { label });
    const from = Date.UTC(2026, 8, 1);
    const to = Date.UTC(2026, 8, 3);
    const t = (await get(`/api/tuning?from=${from}&to=${to}&dropLlr=8&warnLlr=4`, h.viewer)).json() as {
      labelled: { human: number; robot: number };
      roc: { tpr: number; fpr: number }[];
      auc: number;
      whatIf: Record<string, number>;
      perThreshold: { thresholdLlr: number; humans: number; robots: number; calls: number }[];
      distributions: { maxLlr: { human: number; robot: number }[] };
    };
    expect(t.labelled).toEqual({ human: 10, robot: 10 });
    // humans ≥ 8: 8, 9 → 2 dropped; humans in [4, 8): 4..7 → 4 warned
    // robots ≥ 8: 8..14 → 7 dropped; robots in [4, 8): 5, 6, 7 → 3 warned; none missed
    expect(t.whatIf).toMatchObject({
      dropLlr: 8,
      warnLlr: 4,
      analysedCalls: 20,
      dropped: 9,
      warned: 7,
      humansDropped: 2,
      humansWarned: 4,
      robotsDropped: 7,
      robotsWarned: 3,
      robotsMissed: 0,
    });
    // Exact 95% bounds from the labelled counts (scipy's Clopper-Pearson): 2 of 10 humans dropped
    // could be as many as 55.6% of human callers; 7 of 10 robots, as few as 34.8% of robots.
    expect(t.whatIf.humansDroppedUpper95).toBeCloseTo(0.556095, 5);
    expect(t.whatIf.robotsDroppedLower95).toBeCloseTo(0.347547, 5);
    // ROC is monotone from (0,0) to (1,1)
    expect(t.roc[0]).toMatchObject({ tpr: 0, fpr: 0 });
    expect(t.roc[t.roc.length - 1]).toMatchObject({ tpr: 1, fpr: 1 });
    for (let i = 1; i < t.roc.length; i++) {
      expect(t.roc[i]!.tpr).toBeGreaterThanOrEqual(t.roc[i - 1]!.tpr);
      expect(t.roc[i]!.fpr).toBeGreaterThanOrEqual(t.roc[i - 1]!.fpr);
    }
    // overlap 5..9: AUC = 1 - P(human > robot) - ½ P(tie) = 1 - 10/100 - 5/200
    expect(t.auc).toBeCloseTo(0.875, 6);
    const sum = (k: 'human' | 'robot') => t.distributions.maxLlr.reduce((a, b) => a + b[k], 0);
    expect([sum('human'), sum('robot')]).toEqual([10, 10]);
    const at0 = t.perThreshold[0]!;
    expect(at0).toMatchObject({ thresholdLlr: 0, calls: 20, humans: 10, robots: 10 });

    // labelling a call a robot moves it in the tuning data
    const flip = ids[9]!.id; // the human that peaked at 9
    await post(`/api/calls/${flip}/labels`, { label: 'robot' });
    const t2 = (await get(`/api/tuning?from=${from}&to=${to}&dropLlr=8&warnLlr=4`)).json() as typeof t;
    expect(t2.labelled).toEqual({ human: 9, robot: 11 });
    expect(t2.whatIf).toMatchObject({ humansDropped: 1, robotsDropped: 8 });
  });

  it('tuning filters by the caller codec (g711 = PCMU or PCMA; g729), for the bounds of a codec rule', async () => {
    const day = Date.UTC(2026, 9, 20);
    const ids = [
      emitCall(h.bus, { atMs: day + 1, scores: [1], codec: 'PCMU' }),
      emitCall(h.bus, { atMs: day + 2, scores: [2], codec: 'pcma' }),
      emitCall(h.bus, { atMs: day + 3, scores: [6], codec: 'g729' }),
      emitCall(h.bus, { atMs: day + 4, scores: [9], codec: 'g729', actions: ['drop'] }),
    ];
    h.store.flush();
    for (const id of ids) await post(`/api/calls/${id}/labels`, { label: 'human' });
    type T = {
      labelled: { human: number };
      analysedCalls: number;
      whatIf: { humansDropped: number };
      falseDropCallers: unknown[];
    };
    const range = `from=${day}&to=${day + 86_400_000}&dropLlr=5&warnLlr=4`;
    const all = (await get(`/api/tuning?${range}`, h.viewer)).json() as T;
    const g711 = (await get(`/api/tuning?${range}&codec=g711`, h.viewer)).json() as T;
    const g729 = (await get(`/api/tuning?${range}&codec=g729`, h.viewer)).json() as T;
    expect([all.analysedCalls, g711.analysedCalls, g729.analysedCalls]).toEqual([4, 2, 2]);
    expect([all.whatIf.humansDropped, g711.whatIf.humansDropped, g729.whatIf.humansDropped]).toEqual([
      2, 0, 2,
    ]);
    expect([all.falseDropCallers.length, g711.falseDropCallers.length, g729.falseDropCallers.length]).toEqual(
      [1, 0, 1],
    );
    // The call history filters the same way; "other" is a codec the detector does not hear.
    const other = emitCall(h.bus, { atMs: day + 5, codec: 'g722' });
    h.store.flush();
    const listed = async (codec: string) =>
      (
        (await get(`/api/calls?from=${day}&to=${day + 86_400_000}&codec=${codec}`, h.viewer)).json() as {
          items: { id: string }[];
        }
      ).items.map((c) => c.id);
    expect((await listed('g711')).sort()).toEqual([ids[0], ids[1]].sort());
    expect((await listed('g729')).sort()).toEqual([ids[2], ids[3]].sort());
    expect(await listed('other')).toEqual([other]);
    const bad = await get(`/api/tuning?codec=opus`, h.viewer);
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ issues: [{ field: 'querystring.codec' }] });
  });

  it('tuning lists the callers whose dropped calls were labelled human, most first', async () => {
    const day = Date.UTC(2026, 9, 1);
    const call = (
      i: number,
      from: string,
      actions: ('drop' | 'warn')[],
      label: 'human' | 'robot' | null,
    ) => ({
      id: emitCall(h.bus, { atMs: day + i * 60_000, from, scores: [3], verdict: 'synthetic', actions }),
      label,
    });
    const calls = [
      call(0, '+4930700001', ['warn', 'drop'], 'human'),
      call(1, '+49 30 700001', ['drop'], 'human'), // the same caller, written differently
      call(2, '+4930700002', ['drop'], 'human'),
      call(3, '+4930700003', ['drop'], 'robot'), // a right drop
      call(4, '+4930700004', ['warn'], 'human'), // warned, not dropped
      call(5, '+4930700005', ['drop'], null), // not labelled
    ];
    h.store.flush();
    for (const c of calls) if (c.label) await post(`/api/calls/${c.id}/labels`, { label: c.label });
    const t = (await get(`/api/tuning?from=${day}&to=${day + 86_400_000}`, h.viewer)).json() as {
      falseDropCallers: { fromNumber: string; calls: number; lastAtMs: number; lastCallId: string }[];
    };
    expect(t.falseDropCallers).toEqual([
      { fromNumber: '+49 30 700001', calls: 2, lastAtMs: day + 60_000, lastCallId: calls[1]!.id },
      { fromNumber: '+4930700002', calls: 1, lastAtMs: day + 120_000, lastCallId: calls[2]!.id },
    ]);
    // Relabelled a robot, a call leaves the list.
    await post(`/api/calls/${calls[2]!.id}/labels`, { label: 'robot' });
    const t2 = (await get(`/api/tuning?from=${day}&to=${day + 86_400_000}`)).json() as typeof t;
    expect(t2.falseDropCallers.map((f) => f.calls)).toEqual([2]);
  });
});

describe('known callers in the dry run', () => {
  it('the dry run shows a known caller and the cap on their actions (policy.knownCallers)', async () => {
    // Its own store: the calls below would change the counts that later tests of this file check.
    const h = await startHarness();
    const get = (url: string, headers: Record<string, string>) =>
      h.app.inject({ method: 'GET', url, headers });
    const regular = '+4930555123';
    const url = `/api/policy/evaluate?fromNumber=${encodeURIComponent(regular)}&toNumber=%2B4989`;
    const before = (await get(url, h.viewer)).json() as Record<string, unknown>;
    expect(before.maxAction).toBeUndefined();
    expect(before.knownCaller).toBeUndefined();
    // Two earlier conversations of 19 s (emitCall) are below the default 60 s of talk; a human label counts.
    emitCall(h.bus, { from: regular, verdict: 'human' });
    const labelled = emitCall(h.bus, { from: regular, verdict: 'human' });
    h.store.flush();
    expect((await get(url, h.viewer)).json()).not.toHaveProperty('knownCaller');
    expect(h.store.addLabel(labelled, 'human', '', 'test')).not.toBeNull();
    expect((await get(url, h.viewer)).json()).toMatchObject({
      treatment: 'analyse',
      maxAction: 'warn',
      knownCaller: { calls: 1, humanLabels: 1, lastCallId: labelled },
    });
    // Anonymous callers never are.
    expect(
      (await get('/api/policy/evaluate?fromNumber=anonymous&toNumber=%2B4989', h.viewer)).json(),
    ).not.toHaveProperty('maxAction');
    // The dry run matches pseudonym list entries as calls do: an allow-listed caller is not analysed.
    const entry = await h.app.inject({
      method: 'POST',
      url: '/api/lists/allow',
      headers: h.admin,
      payload: { pattern: h.store.pseudonym(regular) },
    });
    expect(entry.statusCode).toBe(201);
    expect((await get(url, h.viewer)).json()).toMatchObject({ treatment: 'allow' });
    expect((await get(url, h.viewer)).json()).not.toHaveProperty('maxAction');
    await h.close();
  });
});
