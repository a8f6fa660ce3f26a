import { createHmac } from 'node:crypto';
import { normaliseNumber } from '../policy/number-pattern.js';

/**
 * Keyed pseudonyms for phone numbers: the same number always maps to the same token under one
 * key (so calls from one caller can be grouped and searched), but the number cannot be
 * recovered without the key. 16 hex digits = 64 bits, ample for grouping.
 */
/** A pseudonym as pseudonymise() makes it. */
export function isPseudonym(value: string): boolean {
  return /^p:[0-9a-f]{16}$/.test(value);
}

export function pseudonymise(key: string, number: string): string {
  return 'p:' + createHmac('sha256', key).update(normaliseNumber(number)).digest('hex').slice(0, 16);
}
