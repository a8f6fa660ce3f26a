import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigSchema, type Config } from './schema.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Where `voiceguard serve` looks for a config file when none is given. */
export const DEFAULT_CONFIG_PATHS = ['voiceguard.yaml', '/etc/voiceguard/voiceguard.yaml'];

export const ENV_PREFIX = 'VOICEGUARD_';

export interface LoadedConfig {
  config: Config;
  /** The file actually read, or null when running on built-in defaults. */
  file: string | null;
}

/**
 * Reads YAML, applies environment overrides, validates. Env names are the key path in
 * upper snake case: VOICEGUARD_SIP_LISTEN_PORT=5062, VOICEGUARD_STORE_PATH=/var/lib/x.sqlite.
 * Values are parsed as JSON when they look like JSON (numbers, booleans, arrays, null).
 */
export function loadConfig(
  file?: string | null,
  env: NodeJS.ProcessEnv = process.env,
  overrides: Record<string, unknown> = {},
): LoadedConfig {
  let chosen: string | null = file ?? env[`${ENV_PREFIX}CONFIG`] ?? null;
  if (!chosen) chosen = DEFAULT_CONFIG_PATHS.find((p) => existsSync(p)) ?? null;
  let raw: unknown = {};
  if (chosen) {
    let text: string;
    try {
      text = readFileSync(chosen, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${chosen}: ${(err as Error).message}`);
    }
    try {
      raw = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError(`config file ${chosen} is not valid YAML: ${(err as Error).message}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ConfigError(`config file ${chosen} must hold a YAML mapping at the top level`);
    }
  }
  const merged = structuredClone(raw) as Record<string, unknown>;
  applyEnv(merged, env);
  for (const [key, value] of Object.entries(overrides)) setPath(merged, key.split('.'), value);
  return { config: validateConfig(merged, chosen), file: chosen };
}

export function validateConfig(raw: unknown, source: string | null = null): Config {
  const parsed = ConfigSchema.safeParse(raw);
  if (parsed.success) {
    const c = parsed.data;
    if (c.media.portMin >= c.media.portMax) {
      throw new ConfigError(
        `${where(source)}media.portMin (${c.media.portMin}) must be below media.portMax (${c.media.portMax})`,
      );
    }
    const tlsProblem = tlsConfigProblem(c);
    if (tlsProblem) throw new ConfigError(`${where(source)}${tlsProblem}`);
    return c;
  }
  const lines = parsed.error.issues.map((issue) => `${where(source)}${describeIssue(issue)}`);
  throw new ConfigError(lines.join('\n'));
}

/**
 * SIP over TLS in any direction needs the TLS listener and a certificate: the SIP package opens TLS
 * connections only where it also listens, and a peer answering over TLS reaches voiceguard there.
 */
function tlsConfigProblem(c: Config): string | null {
  const uses: string[] = [];
  if (c.sip.pbx.transport === 'tls') uses.push('sip.pbx.transport');
  if (c.sip.outbound.trunk?.transport === 'tls') uses.push('sip.outbound.trunk.transport');
  c.sip.trunks.forEach((t, i) => {
    if (t.register?.transport === 'tls') uses.push(`sip.trunks.${i}.register.transport`);
  });
  const listening = c.sip.listen.transports.includes('tls');
  if (uses.length > 0 && !listening)
    return `${uses.join(', ')} is tls: add tls to sip.listen.transports (and set sip.tls.certFile and sip.tls.keyFile)`;
  if (!listening) return null;
  const missing = (['certFile', 'keyFile'] as const).filter((k) => !c.sip.tls[k]).map((k) => `sip.tls.${k}`);
  if (missing.length > 0) return `sip.listen.transports has tls: set ${missing.join(' and ')}`;
  if (c.sip.tls.requireClientCert && !c.sip.tls.caFile)
    return "sip.tls.requireClientCert needs sip.tls.caFile (the CAs that sign the peers' certificates)";
  if (c.sip.listen.tlsPort === c.sip.listen.port && c.sip.listen.transports.includes('tcp'))
    return `sip.listen.tlsPort (${c.sip.listen.tlsPort}) must differ from sip.listen.port when tcp is listened on too`;
  return null;
}

function where(source: string | null): string {
  return source ? `${source}: ` : '';
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.length ? issue.path.join('.') : '(top level)';
  switch (issue.code) {
    case 'invalid_value':
      return `${key}: invalid value; allowed values: ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'unrecognized_keys':
      return `${key}: unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    case 'too_small':
      return `${key}: ${issue.message} (minimum ${String(issue.minimum)})`;
    case 'too_big':
      return `${key}: ${issue.message} (maximum ${String(issue.maximum)})`;
    default:
      return `${key}: ${issue.message}`;
  }
}

function applyEnv(target: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  const paths = leafPaths(ConfigSchema);
  for (const path of paths) {
    const name = ENV_PREFIX + path.map((p) => p.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
    const value = env[name];
    if (value === undefined) continue;
    setPath(target, path, parseEnvValue(value));
  }
}

function parseEnvValue(value: string): unknown {
  const t = value.trim();
  if (/^(-?\d+(\.\d+)?|true|false|null)$/.test(t) || t.startsWith('[') || t.startsWith('{')) {
    try {
      return JSON.parse(t);
    } catch {
      return value;
    }
  }
  return value;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** Key paths of every leaf setting, used for env overrides and the defaults listing. */
export function leafPaths(schema: z.ZodType, prefix: string[] = []): string[][] {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([k, v]) =>
      leafPaths(v, [...prefix, k]),
    );
  }
  return [prefix];
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  for (;;) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) {
      s = s.unwrap() as z.ZodType;
    } else return s;
  }
}

/** Renders every setting with its default and description as commented YAML. */
export function renderDefaultsYaml(): string {
  const defaults = ConfigSchema.parse({}) as unknown as Record<string, unknown>;
  const out: string[] = ['# voiceguard configuration — every key, its default and what it does.'];
  const walk = (schema: z.ZodType, value: unknown, indent: string, key: string | null): void => {
    const inner = unwrap(schema);
    const desc = schema.description ?? inner.description;
    if (
      inner instanceof z.ZodObject &&
      key !== null &&
      value !== null &&
      typeof value === 'object' &&
      !Array.isArray(value)
    ) {
      if (desc) out.push(`${indent}# ${desc}`);
      out.push(`${indent}${key}:`);
      for (const [k, v] of Object.entries(inner.shape as Record<string, z.ZodType>)) {
        walk(v, (value as Record<string, unknown>)[k], indent + '  ', k);
      }
      return;
    }
    if (inner instanceof z.ZodObject && key === null) {
      for (const [k, v] of Object.entries(inner.shape as Record<string, z.ZodType>)) {
        walk(v, (value as Record<string, unknown>)[k], indent, k);
      }
      return;
    }
    if (desc) out.push(`${indent}# ${desc}`);
    // Optional settings without a default are shown commented out, so the file stays valid.
    out.push(
      value === undefined ? `${indent}# ${key}: (not set)` : `${indent}${key}: ${JSON.stringify(value)}`,
    );
  };
  walk(ConfigSchema, defaults, '', null);
  return out.join('\n') + '\n';
}
