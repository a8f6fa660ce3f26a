import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  ListEntryInputSchema,
  PolicyValidationError,
  RULE_ID,
  zodIssues,
  type ListEntryInput,
} from './policy-types.js';

/**
 * The optional rules file (config.policy.rulesFile), YAML or JSON:
 *
 *   rules:            # same shape as POST /api/policy/rules, `id` required
 *     - id: night
 *       name: Night shift
 *       match: { schedule: [{ days: [mon, tue, wed, thu, fri], start: "22:00", end: "06:00" }] }
 *       onSynthetic: drop
 *   allow: ["+4930123456", { pattern: "+4989*", note: "branch office" }]
 *   deny:  [{ pattern: "_0900X.", sipStatus: 603 }]
 *
 * The file owns the rules and list entries it names: at start-up (and on change) they are
 * written into the store, and those it named before but no longer does are removed. Rules
 * and entries created through the API are left alone.
 */
const ID_NEEDED = 'every rule in the rules file needs an id (1-64 letters, digits, _ . -)';
const listItem = z.union([z.string().transform((pattern) => ({ pattern })), ListEntryInputSchema]);

export const RulesFileSchema = z.strictObject({
  rules: z
    .array(z.looseObject({ id: z.string({ error: ID_NEEDED }).regex(RULE_ID, { message: ID_NEEDED }) }))
    .default([]),
  allow: z.array(listItem).default([]),
  deny: z.array(listItem).default([]),
});

export interface RulesFileContent {
  rules: ({ id: string } & Record<string, unknown>)[];
  allow: ListEntryInput[];
  deny: ListEntryInput[];
}

export function parseRulesFile(file: string): RulesFileContent {
  let raw: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new PolicyValidationError(
      [{ field: 'policy.rulesFile', message: `cannot read: ${(err as Error).message}` }],
      file,
    );
  }
  const parsed = RulesFileSchema.safeParse(raw ?? {});
  if (!parsed.success) throw new PolicyValidationError(zodIssues(parsed.error), file);
  const ids = new Set<string>();
  for (const [i, r] of parsed.data.rules.entries()) {
    if (ids.has(r.id))
      throw new PolicyValidationError(
        [{ field: `rules.${i}.id`, message: `duplicate rule id '${r.id}'` }],
        file,
      );
    ids.add(r.id);
  }
  return parsed.data;
}
