import { describe, expect, it } from 'vitest';
import { sessionExpiresS } from '../../src/sip/b2bua-call.js';

describe('sessionExpiresS (RFC 4028 Session-Expires)', () => {
  it('reads the delta-seconds with or without parameters, in long or compact form', () => {
    expect(sessionExpiresS({ 'session-expires': '1800' })).toBe(1800);
    expect(sessionExpiresS({ 'session-expires': ' 90 ; refresher=uac' })).toBe(90);
    expect(sessionExpiresS({ 'session-expires': ['600;refresher=uas', '1800'] })).toBe(600);
    expect(sessionExpiresS({ x: '120;refresher=uac' })).toBe(120);
    expect(sessionExpiresS({ 'session-expires': 300 })).toBe(300);
  });

  it('gives null when there is no usable interval', () => {
    expect(sessionExpiresS({})).toBeNull();
    expect(sessionExpiresS({ 'session-expires': '' })).toBeNull();
    expect(sessionExpiresS({ 'session-expires': '0' })).toBeNull();
    expect(sessionExpiresS({ 'session-expires': 'soon' })).toBeNull();
    expect(sessionExpiresS({ 'session-expires': '18x00' })).toBeNull();
    expect(sessionExpiresS({ 'session-expires': '-5' })).toBeNull();
  });
});
