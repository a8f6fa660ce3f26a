import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load-config.js';
import { silentLogger } from '../../src/log.js';
import { captureLogger } from '../log-capture.js';
import { PolicyConflictError, PolicyNotFoundError, PolicyService } from '../../src/policy/policy-service.js';
import { PolicyValidationError } from '../../src/policy/policy-types.js';
import { Store } from '../../src/store/store.js';

const MODEL = { dropLlr: 8, warnLlr: 4, humanLlr: -6, maxListenMs: 10_000 };
const facts = (fromNumber = '+4930111222', toNumber = '+4989333444') => ({
  trunk: 'default',
  sourceAddress: '192.0.2.1',
  fromNumber,
  toNumber,
  at: new Date('2026-11-30T10:00:00Z'),
});

let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-policy-'));
  const cfg = validateConfig({ store: { path: join(dir, 'db.sqlite') } });
  store = Store.open({ ...cfg.store, privacy: cfg.privacy }, silentLogger);
});
afterEach(async () => {
  await store.close(); // settles once the checkpoint worker has closed its connection too
  rmSync(dir, { recursive: true, force: true });
});

function service(policy: Record<string, unknown> = {}) {
  const cfg = validateConfig({ policy });
  return new PolicyService({ config: cfg.policy, store, modelDecision: MODEL, logger: silentLogger });
}

describe("PolicyService: the model's bounds for a codec (decision.byCodec)", () => {
  const model = { ...MODEL, byCodec: { g729: { dropLlr: 12, warnLlr: 6, humanLlr: -12 } } };
  function withLog(policy: Record<string, unknown>) {
    const { logger, lines } = captureLogger();
    const cfg = validateConfig({ policy });
    return { svc: new PolicyService({ config: cfg.policy, store, modelDecision: model, logger }), lines };
  }

  it('a G.729 call takes them; a G.711 call the generic ones; the stored defaults win over both', () => {
    const { svc, lines } = withLog({});
    expect(svc.evaluate({ ...facts(), codec: 'g729' })).toMatchObject({
      thresholds: { dropLlr: 12, warnLlr: 6, humanLlr: -12 },
      codecBounds: 'g729',
    });
    expect(svc.evaluate({ ...facts(), codec: 'pcma' }).thresholds).toMatchObject({ dropLlr: 8, warnLlr: 4 });
    expect(svc.defaults().effective.byCodec).toEqual({
      g729: { dropLlr: 12, warnLlr: 6, humanLlr: -12, maxListenMs: 10_000 },
    });
    svc.setDefaults({ humanLlr: -3 }, 'test');
    expect(svc.evaluate({ ...facts(), codec: 'g729' }).thresholds).toMatchObject({
      dropLlr: 12,
      humanLlr: -3,
    });
    expect(lines.filter((l) => l.event === 'policy.codec_bounds_unused')).toEqual([]);
  });

  it('out of order under the configured thresholds: G.729 calls keep the generic ones, and the log says so', () => {
    const { svc, lines } = withLog({ defaults: { dropLlr: 5 } });
    const p = svc.evaluate({ ...facts(), codec: 'g729' });
    expect(p.thresholds).toMatchObject({ dropLlr: 5, warnLlr: 4, humanLlr: -6 });
    expect(p.codecBounds).toBeUndefined();
    expect(lines.filter((l) => l.event === 'policy.codec_bounds_unused')).toMatchObject([{ codec: 'g729' }]);
  });
});

describe('PolicyService', () => {
  it('applies rule changes to new calls; a live call keeps the policy it was given', () => {
    const svc = service();
    const live = svc.evaluate(facts());
    expect(live.onSynthetic).toBe('warn');
    const v1 = svc.current().version;
    const rule = svc.createRule(
      { id: 'strict', name: 'Strict', onSynthetic: 'drop', thresholds: { dropLlr: 6 } },
      'alice',
    );
    expect(svc.current().version).toBeGreaterThan(v1);
    expect(svc.evaluate(facts())).toMatchObject({
      ruleId: 'strict',
      onSynthetic: 'drop',
      thresholds: { dropLlr: 6 },
    });
    expect(live).toMatchObject({ ruleId: null, onSynthetic: 'warn', thresholds: { dropLlr: 8 } });

    svc.updateRule('strict', { name: 'Strict', enabled: false }, 'alice');
    expect(svc.evaluate(facts()).ruleId).toBeNull();
    svc.deleteRule(rule.id, 'alice');
    expect(svc.current().rules).toHaveLength(0);
    expect(store.listAudit(10, null).items.map((a) => a.action)).toEqual([
      'policy.rule_deleted',
      'policy.rule_updated',
      'policy.rule_created',
    ]);
  });

  it('survives a restart: rules come from the store', () => {
    service().createRule({ id: 'kept', name: 'Kept' }, 'alice');
    expect(
      service()
        .current()
        .rules.map((r) => r.id),
    ).toEqual(['kept']);
  });

  it('refuses duplicates, unknown ids and mismatched ids', () => {
    const svc = service();
    svc.createRule({ id: 'a', name: 'A' }, 'x');
    expect(() => svc.createRule({ id: 'a', name: 'A' }, 'x')).toThrow(PolicyConflictError);
    expect(() => svc.updateRule('nope', { name: 'A' }, 'x')).toThrow(PolicyNotFoundError);
    expect(() => svc.updateRule('a', { id: 'b', name: 'A' }, 'x')).toThrow(/must equal the rule id/);
    expect(() => svc.deleteRule('nope', 'x')).toThrow(PolicyNotFoundError);
  });

  it('takes a rule matching codecs the detector decodes and names the field of one it does not', () => {
    const svc = service();
    expect(svc.createRule({ id: 'g', name: 'G', match: { codecs: ['g729'] } }, 'x').match).toEqual({
      codecs: ['g729'],
    });
    let err: unknown;
    try {
      svc.createRule({ id: 'o', name: 'O', match: { codecs: ['opus'] } }, 'x');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyValidationError);
    expect((err as PolicyValidationError).issues).toMatchObject([{ field: 'match.codecs.0' }]);
    expect(svc.current().rules.map((r) => r.id)).toEqual(['g']);
  });

  it('rejects defaults that would make an existing rule invalid, naming the rule', () => {
    const svc = service();
    svc.createRule({ id: 'r', name: 'R', thresholds: { warnLlr: 7 } }, 'x');
    expect(() => svc.setDefaults({ dropLlr: 6 }, 'x')).toThrow(
      /rule 'r' \(R\) would become invalid: warnLlr \(7\) must be <= dropLlr \(6\)/,
    );
    expect(svc.current().defaults.thresholds.dropLlr).toBe(8);
    svc.setDefaults({ dropLlr: 9, onSynthetic: 'drop' }, 'x');
    expect(svc.evaluate(facts()).thresholds.dropLlr).toBe(9);
    expect(svc.defaults().override).toEqual({ dropLlr: 9, onSynthetic: 'drop' });
    svc.setDefaults({}, 'x');
    expect(svc.current().defaults.thresholds.dropLlr).toBe(8);
  });

  it('manages the lists: deny beats allow, duplicates refused, removal takes effect', () => {
    const svc = service();
    const allow = svc.addListEntry('allow', { pattern: '+4930*' }, 'x');
    expect(svc.evaluate(facts()).treatment).toBe('allow');
    const deny = svc.addListEntry('deny', { pattern: '+4930111222', sipStatus: 486, note: 'spam' }, 'x');
    expect(svc.evaluate(facts())).toMatchObject({ treatment: 'deny', denyStatus: 486 });
    expect(() => svc.addListEntry('deny', { pattern: '+4930111222' }, 'x')).toThrow(PolicyConflictError);
    expect(() => svc.addListEntry('allow', { pattern: '+4940*', sipStatus: 486 }, 'x')).toThrow(
      /only deny-list entries/,
    );
    expect(() => svc.addListEntry('allow', { pattern: '+49?' }, 'x')).toThrow(PolicyValidationError);
    svc.removeListEntry('deny', deny.id, 'x');
    expect(svc.evaluate(facts()).treatment).toBe('allow');
    svc.removeListEntry('allow', allow.id, 'x');
    expect(svc.evaluate(facts()).treatment).toBe('analyse');
    expect(() => svc.removeListEntry('allow', allow.id, 'x')).toThrow(PolicyNotFoundError);
  });

  it('seeds the rules file, then follows its edits (file owns only what it names)', async () => {
    const file = join(dir, 'rules.yaml');
    writeFileSync(
      file,
      'rules:\n  - id: night\n    name: Night\n    onSynthetic: drop\n    match: { toNumbers: ["+4989*"] }\nallow: ["+4930111222"]\ndeny:\n  - { pattern: "_0900X.", sipStatus: 603 }\n',
    );
    const svc = service({ rulesFile: file });
    svc.createRule({ id: 'api-made', name: 'API', priority: 500 }, 'alice');
    expect(svc.current().rules.map((r) => r.id)).toEqual(['night', 'api-made']);
    expect(svc.evaluate(facts()).treatment).toBe('allow');
    expect(svc.evaluate(facts('09001234')).treatment).toBe('deny');

    svc.watchRulesFile();
    // replaced by rename, as editors and config management do
    writeFileSync(`${file}.tmp`, 'rules:\n  - id: day\n    name: Day\n    onSynthetic: log\n');
    renameSync(`${file}.tmp`, file);
    await waitFor(() => svc.current().rules.some((r) => r.id === 'day'));
    expect(svc.current().rules.map((r) => r.id)).toEqual(['day', 'api-made']);
    expect(svc.current().allow).toHaveLength(0);
    expect(svc.current().deny).toHaveLength(0);
    // the watch survives the replacement
    writeFileSync(`${file}.tmp`, 'rules:\n  - id: evening\n    name: Evening\n');
    renameSync(`${file}.tmp`, file);
    await waitFor(() => svc.current().rules.some((r) => r.id === 'evening'));
    expect(svc.current().rules.map((r) => r.id)).toEqual(['evening', 'api-made']);
    writeFileSync(file, 'rules:\n  - id: day\n    name: Day\n    onSynthetic: log\n');
    await waitFor(() => svc.current().rules.some((r) => r.id === 'day'));

    // An invalid edit is refused and the running policy stays.
    const before = svc.current();
    writeFileSync(file, 'rules:\n  - id: bad\n    name: Bad\n    thresholds: { warnLlr: 99 }\n');
    expect(svc.reloadRulesFile()).toBe(false);
    expect(svc.current()).toBe(before);
    svc.close();
  });

  it('fails loudly at start-up on an invalid rules file, naming file and field', () => {
    const file = join(dir, 'rules.yaml');
    writeFileSync(file, 'rules:\n  - id: a\n    name: A\n  - name: no id\n');
    expect(() => service({ rulesFile: file })).toThrow(
      /rules\.yaml: rules\.1\.id: every rule in the rules file needs an id/,
    );
    writeFileSync(file, 'rules:\n  - id: a\n    name: A\n    onSynthetic: explode\n');
    expect(() => service({ rulesFile: file })).toThrow(
      /rules\.yaml: rules\.0\.onSynthetic: invalid value; allowed values: "drop", "warn", "log"/,
    );
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
