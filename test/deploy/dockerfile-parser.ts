/**
 * A small Dockerfile reader for the deploy tests: enough of the Dockerfile reference to
 * check the structure of our own Dockerfile and replay it without a Docker engine
 * (line continuations, comments and parser directives, ARG substitution in FROM, JSON and
 * shell forms, COPY --from, and .dockerignore matching with Docker's semantics).
 */

export interface Instruction {
  keyword: string;
  /** Raw argument text after the keyword, continuations joined. */
  args: string;
  /** Flags like --from=build, --interval=30s. */
  flags: Record<string, string>;
  /** JSON-array form parsed, or null for the shell form. */
  json: string[] | null;
  line: number;
}

export interface Stage {
  name: string | null;
  index: number;
  from: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const lines = text.split('\n');
  const logical: { text: string; line: number }[] = [];
  let buf = '';
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (buf === '' && (trimmed === '' || trimmed.startsWith('#'))) continue;
    // Comment lines inside a continued instruction are dropped, as Docker does.
    if (buf !== '' && trimmed.startsWith('#')) continue;
    if (buf === '') start = i + 1;
    if (trimmed.endsWith('\\')) {
      buf += trimmed.slice(0, -1) + ' ';
      continue;
    }
    buf += trimmed;
    logical.push({ text: buf, line: start });
    buf = '';
  }
  if (buf !== '') logical.push({ text: buf, line: start });

  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const { text: l, line } of logical) {
    const m = /^(\S+)\s*(.*)$/.exec(l)!;
    const keyword = m[1]!.toUpperCase();
    let rest = m[2]!;
    const flags: Record<string, string> = {};
    for (;;) {
      const f = /^--([a-zA-Z-]+)(?:=(\S*))?\s*/.exec(rest);
      if (!f) break;
      flags[f[1]!] = f[2] ?? 'true';
      rest = rest.slice(f[0].length);
    }
    let json: string[] | null = null;
    if (rest.startsWith('[')) {
      try {
        const parsed: unknown = JSON.parse(rest);
        if (Array.isArray(parsed) && parsed.every((x) => typeof x === 'string')) json = parsed as string[];
      } catch {
        json = null;
      }
    }
    const ins: Instruction = { keyword, args: rest, flags, json, line };
    if (keyword === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!fm) throw new Error(`line ${line}: cannot parse FROM ${rest}`);
      const from = fm[1]!.replace(
        /\$\{(\w+)\}|\$(\w+)/g,
        (_, a: string, b: string) => globalArgs[a ?? b] ?? '',
      );
      stages.push({ name: fm[2] ?? null, index: stages.length, from, instructions: [] });
      continue;
    }
    if (stages.length === 0) {
      if (keyword !== 'ARG') throw new Error(`line ${line}: ${keyword} before the first FROM`);
      const am = /^(\w+)(?:=(.*))?$/.exec(rest);
      if (am) globalArgs[am[1]!] = am[2] ?? '';
      continue;
    }
    stages[stages.length - 1]!.instructions.push(ins);
  }
  return { globalArgs, stages };
}

/** ENV instructions of a stage, in both `ENV a=b c=d` and legacy `ENV a b` forms. */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const ins of stage.instructions.filter((i) => i.keyword === 'ENV')) {
    if (!ins.args.includes('=')) {
      const [k, ...v] = ins.args.split(/\s+/);
      env[k!] = v.join(' ');
      continue;
    }
    const re = /(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g;
    for (const m of ins.args.matchAll(re)) {
      const v = m[2]!;
      env[m[1]!] = v.startsWith('"') ? (JSON.parse(v) as string) : v;
    }
  }
  return env;
}

/** Splits a shell-form COPY/ADD argument list; the last element is the destination. */
export function copyArgs(ins: Instruction): { sources: string[]; dest: string } {
  const parts = ins.json ?? ins.args.split(/\s+/).filter(Boolean);
  if (parts.length < 2) throw new Error(`line ${ins.line}: COPY needs a source and a destination`);
  return { sources: parts.slice(0, -1), dest: parts[parts.length - 1]! };
}

interface IgnorePattern {
  negate: boolean;
  re: RegExp;
}

/** .dockerignore semantics (moby/patternmatcher): Go filepath.Match globs plus `**`;
 *  a pattern excludes a path when it matches the path or one of its parent folders;
 *  the last matching pattern wins; `!` re-includes. */
export function parseDockerignore(text: string): IgnorePattern[] {
  const out: IgnorePattern[] = [];
  for (let line of text.split('\n')) {
    line = line.trim();
    if (line === '' || line.startsWith('#')) continue;
    let negate = false;
    if (line.startsWith('!')) {
      negate = true;
      line = line.slice(1).trim();
    }
    line = line.replace(/^\.\//, '').replace(/^\/+/, '').replace(/\/+$/, '');
    out.push({ negate, re: globToRegExp(line) });
  }
  return out;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // `**/` matches zero or more folders; a trailing `**` matches everything below.
        if (glob[i + 2] === '/') {
          re += '(?:.*/)?';
          i += 2;
        } else {
          re += '.*';
          i += 1;
        }
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i);
      re += glob.slice(i, end + 1).replace('[!', '[^');
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export function isIgnored(patterns: IgnorePattern[], path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const p of patterns) {
    if (candidates.some((c) => p.re.test(c))) ignored = !p.negate;
  }
  return ignored;
}
