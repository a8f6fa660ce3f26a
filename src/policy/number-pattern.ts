/**
 * Phone-number patterns used by policy rules and the allow/deny lists. Pure.
 *
 * Syntax (numbers are compared after stripping visual separators: spaces, '-', '(', ')'
 * and a leading `sip:`/`tel:` scheme or trailing `@host`/`;params`):
 * - `*`            any number (including an empty/anonymous caller).
 * - `+4930123456`  exact match.
 * - `+8610*`       prefix: everything starting with `+8610` (a trailing `*`).
 * - `_...`         Asterisk-style: `X` = 0-9, `Z` = 1-9, `N` = 2-9, `[15-7]` = one digit of a set
 *                  or range, `.` = one or more of anything, `!` = zero or more of anything; any
 *                  other character (digits, `+`, `*`, `#`) matches itself. `_0[1-5]XX.` matches `0213`+.
 * - `p:` + 16 hex  a keyed pseudonym (src/store/pseudonym.ts): matches the caller whose number has
 *                  that pseudonym, so a number the store keeps only as a pseudonym can still be listed.
 * Literal characters allowed in exact and prefix patterns: letters, digits, `+`, `#`
 * (letters so that SIP user parts like `anonymous` can be listed).
 */
export type NumberMatcher = (normalisedNumber: string) => boolean;

export class NumberPatternError extends Error {
  constructor(
    readonly pattern: string,
    detail: string,
  ) {
    super(
      `invalid number pattern '${pattern}': ${detail}; use an exact number (+4930123), a prefix ending in * (+4930*), ` +
        `or an Asterisk pattern starting with _ (_X., _0[1-5]XX, _NXX!)`,
    );
    this.name = 'NumberPatternError';
  }
}

const LITERAL = /^[A-Za-z0-9+#]+$/;
/** The store's keyed pseudonym of a number (src/store/pseudonym.ts). */
export const PSEUDONYM = /^p:[0-9a-f]{16}$/;

/** Strips what is formatting rather than identity, so `+49 (30) 123-45` equals `+493012345`. */
export function normaliseNumber(raw: string): string {
  let s = raw.trim();
  s = s.replace(/^(sips?|tel):/i, '');
  const cut = s.search(/[@;]/);
  if (cut >= 0) s = s.slice(0, cut);
  return s.replace(/[\s\-()]/g, '');
}

export function compileNumberPattern(pattern: string): NumberMatcher {
  const p = pattern.trim();
  if (p.length === 0) throw new NumberPatternError(pattern, 'empty pattern');
  if (p.length > 64) throw new NumberPatternError(pattern, 'longer than 64 characters');
  if (p === '*') return () => true;
  if (PSEUDONYM.test(p)) return (n) => n === p;
  if (p.startsWith('p:'))
    throw new NumberPatternError(pattern, "a pseudonym is 'p:' and 16 lower-case hex digits");
  if (p.startsWith('_')) {
    const re = new RegExp(`^${asteriskToRegex(pattern, p.slice(1))}$`);
    return (n) => re.test(n);
  }
  if (p.endsWith('*')) {
    const prefix = normaliseNumber(p.slice(0, -1));
    if (!LITERAL.test(prefix))
      throw new NumberPatternError(pattern, 'a prefix may only hold letters, digits, + and #');
    return (n) => n.startsWith(prefix);
  }
  const exact = normaliseNumber(p);
  if (!LITERAL.test(exact))
    throw new NumberPatternError(pattern, 'an exact number may only hold letters, digits, + and #');
  return (n) => n === exact;
}

/** Returns null when the pattern is valid, else the reason. */
export function checkNumberPattern(pattern: string): string | null {
  try {
    compileNumberPattern(pattern);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function asteriskToRegex(original: string, body: string): string {
  if (body.length === 0) throw new NumberPatternError(original, "nothing after '_'");
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    switch (c.toUpperCase()) {
      case 'X':
        out += '[0-9]';
        continue;
      case 'Z':
        out += '[1-9]';
        continue;
      case 'N':
        out += '[2-9]';
        continue;
    }
    if (c === '.') {
      out += '.+';
    } else if (c === '!') {
      out += '.*';
    } else if (c === '[') {
      const close = body.indexOf(']', i);
      if (close < 0) throw new NumberPatternError(original, "unclosed '['");
      const set = body.slice(i + 1, close);
      if (!/^([0-9](-[0-9])?)+$/.test(set)) {
        throw new NumberPatternError(original, `bad set [${set}]: only digits and ranges like 1-5`);
      }
      out += `[${set}]`;
      i = close;
    } else if (/[0-9+*#]/.test(c)) {
      out += c === '+' || c === '*' ? `\\${c}` : c;
    } else {
      throw new NumberPatternError(original, `unexpected '${c}' in Asterisk pattern`);
    }
  }
  return out;
}
