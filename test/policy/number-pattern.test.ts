import { describe, expect, it } from 'vitest';
import {
  checkNumberPattern,
  compileNumberPattern,
  normaliseNumber,
} from '../../src/policy/number-pattern.js';

describe('normaliseNumber', () => {
  it.each([
    ['+49 (30) 123-45', '+493012345'],
    ['sip:+4930123@pbx.example.com', '+4930123'],
    ['tel:+4930123;phone-context=x', '+4930123'],
    ['  0800 111  ', '0800111'],
    ['anonymous', 'anonymous'],
  ])('%s → %s', (raw, want) => expect(normaliseNumber(raw)).toBe(want));
});

describe('compileNumberPattern', () => {
  const cases: [string, string, boolean][] = [
    ['*', '', true],
    ['*', '+4930', true],
    ['+4930123456', '+4930123456', true],
    ['+4930123456', '+49301234567', false],
    ['+49 30 123456', '+4930123456', true],
    ['+8610*', '+861012345', true],
    ['+8610*', '+8610', true],
    ['+8610*', '+86201234', false],
    ['+8610*', '8610123', false],
    ['_X.', '1', false],
    ['_X.', '12', true],
    ['_X!', '1', true],
    ['_NXX', '212', true],
    ['_NXX', '112', false],
    ['_ZXX', '012', false],
    ['_ZXX', '912', true],
    ['_0[1-5]XX', '0399', true],
    ['_0[1-5]XX', '0699', false],
    ['_0[15-7]X', '066', true],
    ['_0[15-7]X', '046', false],
    ['_+49X.', '+4930123', true],
    ['_+49X.', '4930123', false],
    ['_*X#', '*1#', true],
    ['_x.', '55', true],
    ['anonymous', 'anonymous', true],
    ['anonymous', 'Anonymous', false],
    // A keyed pseudonym (the store's p: + 16 hex) matches itself, never a number.
    ['p:0123456789abcdef', 'p:0123456789abcdef', true],
    ['p:0123456789abcdef', 'p:0123456789abcdee', false],
    ['p:0123456789abcdef', '+4930123456', false],
  ];
  it.each(cases)('%s matches %s: %s', (pattern, number, want) => {
    expect(compileNumberPattern(pattern)(normaliseNumber(number))).toBe(want);
  });

  it.each([
    ['', 'empty pattern'],
    ['_', "nothing after '_'"],
    ['_0[1-', "unclosed '['"],
    ['_0[a]', 'bad set'],
    ['_0?', "unexpected '?'"],
    ['+49*30*', 'a prefix may only hold'],
    ['+49.30', 'an exact number may only hold'],
    ['x'.repeat(65), 'longer than 64'],
    ['p:0123', "a pseudonym is 'p:' and 16 lower-case hex digits"],
    ['p:0123456789ABCDEF', "a pseudonym is 'p:'"],
  ])('rejects %j with a clear message', (pattern, fragment) => {
    const problem = checkNumberPattern(pattern);
    expect(problem).toContain(fragment);
    expect(problem).toContain('use an exact number');
  });
});
