import { randomUUID } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import {
  checkRulesAgainstDefaults,
  compileSnapshot,
  evaluatePolicy,
  parseDefaultsOverride,
  resolveDefaults,
  validateRule,
  type CallFacts,
  type CallPolicy,
  type PolicySnapshot,
} from './evaluate.js';
import {
  ListEntryInputSchema,
  PolicyValidationError,
  zodIssues,
  type DefaultsOverride,
  type ListEntry,
  type ListKind,
  type PolicyDefaults,
  type PolicyRule,
  type Thresholds,
} from './policy-types.js';
import { parseRulesFile } from './rules-file.js';

export class PolicyNotFoundError extends Error {
  constructor(what: string) {
    super(`${what} not found`);
    this.name = 'PolicyNotFoundError';
  }
}

export class PolicyConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyConflictError';
  }
}

export interface PolicyServiceOptions {
  config: Config['policy'];
  store: Store;
  /**
   * The model metadata `decision` block: thresholds the config leaves out come from here, for calls
   * heard in a codec of its `byCodec` from there.
   */
  modelDecision: (Partial<Thresholds> & { byCodec?: Record<string, Partial<Thresholds>> }) | null;
  logger: Logger;
}

const RULES_FILE_IDS = 'rules_file_ids';
const RULES_FILE_ACTOR = 'rules-file';

/**
 * Holds the current compiled policy. Every change (API or rules file) is validated, written to
 * the store, audited, and then a new snapshot replaces the old one atomically: new calls see it,
 * live calls keep the CallPolicy they were evaluated with.
 */
export class PolicyService {
  private snapshot: PolicySnapshot;
  private version = 0;
  private watcher: FSWatcher | null = null;
  private watchTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: PolicyServiceOptions) {
    if (opts.config.rulesFile) this.seedRulesFile(opts.config.rulesFile);
    this.snapshot = this.build();
  }

  current(): PolicySnapshot {
    return this.snapshot;
  }

  evaluate(facts: CallFacts): CallPolicy {
    return evaluatePolicy(this.snapshot, facts);
  }

  /** Rebuilds the snapshot from the store. On failure the previous snapshot stays in force. */
  reload(): void {
    this.snapshot = this.build();
    this.opts.logger.info(
      { event: 'policy.reloaded', version: this.snapshot.version, rules: this.snapshot.rules.length },
      'policy reloaded',
    );
  }

  private defaultsWith(override: DefaultsOverride | null): PolicyDefaults {
    return resolveDefaults(this.opts.modelDecision, this.opts.config.defaults, override);
  }

  private build(): PolicySnapshot {
    const store = this.opts.store;
    const defaults = this.defaultsWith(store.getDefaultsOverride());
    for (const codec of Object.keys(this.opts.modelDecision?.byCodec ?? {})) {
      if (!defaults.byCodec?.[codec])
        this.opts.logger.warn(
          { event: 'policy.codec_bounds_unused', codec },
          `the model's ${codec} bounds would be out of order under the configured thresholds: ${codec} calls use the generic ones`,
        );
    }
    return compileSnapshot({
      version: ++this.version,
      timeZone: this.opts.config.timeZone,
      denyStatus: this.opts.config.denyStatus,
      defaults,
      rules: store.listRules(),
      allow: store.listEntries('allow'),
      deny: store.listEntries('deny'),
    });
  }

  // ---- rules ---------------------------------------------------------------------------

  createRule(input: unknown, actor: string): PolicyRule {
    const rule = validateRule(input, this.snapshot.defaults, randomUUID(), Date.now());
    if (this.opts.store.getRule(rule.id))
      throw new PolicyConflictError(`a rule with id '${rule.id}' already exists`);
    this.opts.store.transaction(() => {
      this.opts.store.putRule(rule);
      this.opts.store.audit(actor, 'policy.rule_created', rule.id, { rule });
    });
    this.reload();
    return rule;
  }

  updateRule(id: string, input: unknown, actor: string): PolicyRule {
    const before = this.opts.store.getRule(id);
    if (!before) throw new PolicyNotFoundError(`rule '${id}'`);
    const body =
      typeof input === 'object' && input !== null ? { ...(input as Record<string, unknown>) } : input;
    if (body && typeof body === 'object' && 'id' in body && (body as { id: unknown }).id !== id) {
      throw new PolicyValidationError([
        { field: 'id', message: `must equal the rule id in the path ('${id}') or be left out` },
      ]);
    }
    const rule = validateRule(body, this.snapshot.defaults, id, Date.now());
    this.opts.store.transaction(() => {
      this.opts.store.putRule(rule);
      this.opts.store.audit(actor, 'policy.rule_updated', id, { before, after: rule });
    });
    this.reload();
    return rule;
  }

  deleteRule(id: string, actor: string): void {
    const before = this.opts.store.getRule(id);
    if (!before) throw new PolicyNotFoundError(`rule '${id}'`);
    this.opts.store.transaction(() => {
      this.opts.store.deleteRule(id);
      this.opts.store.audit(actor, 'policy.rule_deleted', id, { before });
    });
    this.reload();
  }

  // ---- defaults ------------------------------------------------------------------------

  /** The effective defaults and the stored override they include. */
  defaults(): { effective: PolicyDefaults; override: DefaultsOverride } {
    return { effective: this.snapshot.defaults, override: this.opts.store.getDefaultsOverride() ?? {} };
  }

  /** Replaces the stored override (keys left out fall back to the config, then the model). */
  setDefaults(input: unknown, actor: string): PolicyDefaults {
    const override = parseDefaultsOverride(input);
    const effective = this.defaultsWith(override);
    const broken = checkRulesAgainstDefaults(this.opts.store.listRules(), effective);
    if (broken.length) throw new PolicyValidationError(broken);
    const before = this.opts.store.getDefaultsOverride();
    this.opts.store.transaction(() => {
      this.opts.store.setDefaultsOverride(Object.keys(override).length ? override : null);
      this.opts.store.audit(actor, 'policy.defaults_updated', 'defaults', { before, after: override });
    });
    this.reload();
    return this.snapshot.defaults;
  }

  // ---- lists ---------------------------------------------------------------------------

  listEntries(kind: ListKind): readonly ListEntry[] {
    return kind === 'allow' ? this.snapshot.allow : this.snapshot.deny;
  }

  addListEntry(kind: ListKind, input: unknown, actor: string): ListEntry {
    const parsed = ListEntryInputSchema.safeParse(input);
    if (!parsed.success) throw new PolicyValidationError(zodIssues(parsed.error));
    const { pattern, sipStatus, note } = parsed.data;
    if (kind === 'allow' && sipStatus != null) {
      throw new PolicyValidationError([
        { field: 'sipStatus', message: 'only deny-list entries carry a SIP status' },
      ]);
    }
    const entry = this.opts.store.transaction(() => {
      const e = this.opts.store.addEntry(kind, pattern.trim(), sipStatus ?? null, note ?? '', actor);
      if (e)
        this.opts.store.audit(actor, 'policy.list_entry_added', `${kind}:${e.id}`, {
          kind,
          pattern: e.pattern,
          sipStatus: e.sipStatus,
          note: e.note,
        });
      return e;
    });
    if (!entry) throw new PolicyConflictError(`'${pattern}' is already on the ${kind} list`);
    this.reload();
    return entry;
  }

  removeListEntry(kind: ListKind, id: string, actor: string): void {
    const removed = this.opts.store.transaction(() => {
      const e = this.opts.store.deleteEntry(kind, id);
      if (e)
        this.opts.store.audit(actor, 'policy.list_entry_removed', `${kind}:${id}`, {
          kind,
          pattern: e.pattern,
        });
      return e;
    });
    if (!removed) throw new PolicyNotFoundError(`${kind}-list entry '${id}'`);
    this.reload();
  }

  // ---- rules file ----------------------------------------------------------------------

  /** Writes the rules file into the store (all or nothing). Throws PolicyValidationError. */
  seedRulesFile(file: string): void {
    const content = parseRulesFile(file);
    const store = this.opts.store;
    const defaults = this.defaultsWith(store.getDefaultsOverride());
    const now = Date.now();
    const rules = content.rules.map((input, i) => {
      try {
        return validateRule(input, defaults, input.id, now);
      } catch (err) {
        if (err instanceof PolicyValidationError) {
          throw new PolicyValidationError(
            err.issues.map((is) => ({ field: `rules.${i}.${is.field}`, message: is.message })),
            file,
          );
        }
        throw err;
      }
    });
    const previous = new Set<string>(JSON.parse(store.getSetting(RULES_FILE_IDS) ?? '[]') as string[]);
    store.transaction(() => {
      for (const rule of rules) {
        const before = store.getRule(rule.id);
        if (
          before &&
          JSON.stringify({ ...before, updatedAtMs: 0 }) === JSON.stringify({ ...rule, updatedAtMs: 0 })
        )
          continue;
        store.putRule(rule);
        store.audit(RULES_FILE_ACTOR, before ? 'policy.rule_updated' : 'policy.rule_created', rule.id, {
          file,
          rule,
        });
      }
      const ids = new Set(rules.map((r) => r.id));
      for (const id of previous) {
        if (!ids.has(id) && store.deleteRule(id))
          store.audit(RULES_FILE_ACTOR, 'policy.rule_deleted', id, { file });
      }
      store.setSetting(RULES_FILE_IDS, JSON.stringify([...ids]));
      for (const kind of ['allow', 'deny'] as const) {
        const wanted = new Map(content[kind].map((e) => [e.pattern.trim(), e]));
        for (const existing of store.listEntries(kind)) {
          if (existing.createdBy === RULES_FILE_ACTOR && !wanted.has(existing.pattern)) {
            store.deleteEntry(kind, existing.id);
            store.audit(RULES_FILE_ACTOR, 'policy.list_entry_removed', `${kind}:${existing.id}`, {
              file,
              pattern: existing.pattern,
            });
          }
        }
        const present = new Set(store.listEntries(kind).map((e) => e.pattern));
        for (const [pattern, e] of wanted) {
          if (present.has(pattern)) continue;
          const added = store.addEntry(
            kind,
            pattern,
            kind === 'deny' ? (e.sipStatus ?? null) : null,
            e.note ?? '',
            RULES_FILE_ACTOR,
          );
          if (added)
            store.audit(RULES_FILE_ACTOR, 'policy.list_entry_added', `${kind}:${added.id}`, {
              file,
              pattern,
            });
        }
      }
    });
    this.opts.logger.info(
      { event: 'policy.rules_file_loaded', file, rules: rules.length },
      'rules file loaded',
    );
  }

  /** Re-seeds and reloads when the rules file changes; an invalid file keeps the current policy. */
  watchRulesFile(): void {
    const file = this.opts.config.rulesFile;
    if (!file || this.watcher) return;
    try {
      // Watch the directory: editors and config tools replace the file (rename), which would
      // orphan a watch on the file itself.
      const name = basename(file);
      this.watcher = watch(dirname(file), (_kind, changed) => {
        if (changed !== null && changed !== name) return;
        if (this.watchTimer) clearTimeout(this.watchTimer);
        // Editors write in several steps; wait for the file to settle.
        this.watchTimer = setTimeout(() => this.reloadRulesFile(), 200);
      });
      this.watcher.on('error', (err) =>
        this.opts.logger.warn(
          { event: 'policy.rules_file_watch_error', file, err: err.message },
          'cannot watch rules file',
        ),
      );
    } catch (err) {
      this.opts.logger.warn(
        { event: 'policy.rules_file_watch_error', file, err: (err as Error).message },
        'cannot watch rules file',
      );
    }
  }

  /** Re-reads the rules file now (also used on SIGHUP). Returns false if it was invalid. */
  reloadRulesFile(): boolean {
    const file = this.opts.config.rulesFile;
    if (!file) return true;
    try {
      this.seedRulesFile(file);
      this.reload();
      return true;
    } catch (err) {
      this.opts.logger.error(
        { event: 'policy.rules_file_invalid', file, err: (err as Error).message },
        'rules file rejected; current policy kept',
      );
      return false;
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.watchTimer) clearTimeout(this.watchTimer);
  }
}
