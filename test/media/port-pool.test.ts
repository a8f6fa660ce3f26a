import { describe, expect, it } from 'vitest';
import { PortPool } from '../../src/media/port-pool.js';
import { PortPoolExhaustedError } from '../../src/media/media-types.js';

describe('PortPool', () => {
  it('hands out even RTP ports round-robin inside the range and throws a typed error when full', () => {
    const pool = new PortPool(20001, 20008); // even ports 20002, 20004, 20006 (20008 has no +1)
    expect([pool.acquire(), pool.acquire(), pool.acquire()]).toEqual([20002, 20004, 20006]);
    expect(() => pool.acquire()).toThrow(PortPoolExhaustedError);
    pool.release(20004);
    expect(pool.pairsInUse).toBe(2);
    expect(pool.acquire()).toBe(20004);
  });

  it('ignores releases of ports it never handed out', () => {
    const pool = new PortPool(30000, 30003);
    pool.release(30000);
    pool.release(31000);
    pool.release(30001);
    expect(pool.pairsInUse).toBe(0);
    expect(pool.acquire()).toBe(30000);
  });
});
