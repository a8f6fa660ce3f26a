import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { freeUdpPort, runSipp, startGateway, waitUdpBound, type TestGateway } from './sipp-harness.js';

/**
 * Registration-based trunks (sip.trunks[].register): voiceguard registers its own address with the
 * carrier's registrar, played by sipp, which verifies the digest credentials.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function waitFor(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(50);
  }
}

async function registeredGauge(gw: TestGateway): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${gw.server.apiPort}/metrics`)).text();
  const m = /^voiceguard_trunk_registered\{trunk="carrier"\} (\S+)$/m.exec(text);
  return m ? Number(m[1]) : null;
}

function trunk(registrarPort: number) {
  return {
    'sip.trunks': [
      {
        name: 'carrier',
        addresses: ['127.0.0.1'],
        register: {
          registrar: `127.0.0.1:${registrarPort}`,
          aor: 'sip:+4930555000@carrier.example',
          username: '4930555000',
          password: 's3cret',
        },
      },
    ],
  };
}

let gw: TestGateway | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
});

describe('trunk registration', () => {
  it('registers with digest credentials, refreshes before the granted expiry, and removes the binding at shutdown', async () => {
    const port = await freeUdpPort();
    const registrar = runSipp({ scenario: 'registrar.xml', port, timeoutS: 30 });
    await waitUdpBound(port);
    gw = await startGateway(trunk(port));
    // Granted 2 s: refreshed after about 1 s; the refresh is granted an hour.
    await waitFor(() => gw!.events('sip.registered').length >= 2, 20_000);
    expect(gw.events('sip.registered').map((e) => e.expiresS)).toEqual([2, 3600]);
    expect(await registeredGauge(gw)).toBe(1);
    const health = (await (await fetch(`http://127.0.0.1:${gw.server.apiPort}/health`)).json()) as {
      registrations: { trunk: string; state: string; expiresAtMs: number }[];
    };
    expect(health.registrations).toMatchObject([{ trunk: 'carrier', state: 'registered' }]);
    expect(health.registrations[0]!.expiresAtMs - Date.now()).toBeGreaterThan(3500_000);
    await gw.stop();
    expect(gw.events('sip.unregistered')).toHaveLength(1);
    gw = null;
    const r = await registrar.done;
    expect(r.code, r.output + r.errors).toBe(0);
  });

  it('follows a reload: a changed registrar gets the old binding removed first, then a new one; a removed trunk leaves /metrics', async () => {
    const port1 = await freeUdpPort();
    const port2 = await freeUdpPort();
    const registrar1 = runSipp({ scenario: 'registrar.xml', port: port1, timeoutS: 30 });
    await waitUdpBound(port1);
    gw = await startGateway(trunk(port1));
    await waitFor(() => gw!.events('sip.registered').length >= 2, 20_000);
    const withRegistrar = (config: Config, registrar: string | null): Config => ({
      ...config,
      sip: {
        ...config.sip,
        trunks: config.sip.trunks.map((t) => ({
          ...t,
          register: registrar && t.register ? { ...t.register, registrar } : null,
        })),
      },
    });
    const first = gw.server.gateway.registrations[0];
    // An unrelated reload (same trunks) leaves the registration alone.
    gw.server.gateway.setConfig({ ...gw.server.config });
    expect(gw.server.gateway.registrations[0]).toBe(first);
    expect(gw.events('sip.registrations_reloaded')).toHaveLength(0);

    // The carrier moves its registrar: the binding at the old one goes (its scenario ends with that
    // removal), then the new one is registered.
    const registrar2 = runSipp({ scenario: 'registrar.xml', port: port2, timeoutS: 30 });
    await waitUdpBound(port2);
    gw.server.gateway.setConfig(withRegistrar(gw.server.config, `127.0.0.1:${port2}`));
    expect(gw.events('sip.registrations_reloaded')[0]).toMatchObject({
      stopped: ['carrier'],
      started: ['carrier'],
      unchanged: [],
    });
    const r1 = await registrar1.done;
    expect(r1.code, r1.output + r1.errors).toBe(0);
    await waitFor(() => gw!.events('sip.registered').length >= 4, 20_000);
    const unregisteredAt = gw.logs.findIndex((l) => l.event === 'sip.unregistered');
    const reRegisteredAt = gw.logs.findIndex((l, i) => l.event === 'sip.registered' && i > unregisteredAt);
    expect(unregisteredAt).toBeGreaterThan(-1);
    expect(reRegisteredAt).toBeGreaterThan(unregisteredAt);
    expect(await registeredGauge(gw)).toBe(1);

    // The registration is taken out of the config: the binding is removed and the gauge goes away.
    gw.server.gateway.setConfig(withRegistrar(gw.server.config, null));
    await waitFor(() => gw!.events('sip.unregistered').length >= 2, 15_000);
    const r2 = await registrar2.done;
    expect(r2.code, r2.output + r2.errors).toBe(0);
    expect(gw.server.gateway.registrations).toEqual([]);
    expect(await registeredGauge(gw)).toBe(null);
    const health = (await (await fetch(`http://127.0.0.1:${gw.server.apiPort}/health`)).json()) as {
      registrations: unknown[];
    };
    expect(health.registrations).toEqual([]);
  });

  it('a refused registration is logged with its status and retried later; the gauge stays 0', async () => {
    const port = await freeUdpPort();
    const registrar = runSipp({ scenario: 'registrar-forbidden.xml', port, timeoutS: 30 });
    await waitUdpBound(port);
    gw = await startGateway(trunk(port));
    await waitFor(() => gw!.events('sip.register_failed').length >= 1, 20_000);
    const failed = gw.events('sip.register_failed')[0]!;
    expect(failed).toMatchObject({ trunk: 'carrier', status: 403, retryInMs: 30_000 });
    expect(await registeredGauge(gw)).toBe(0);
    const health = (await (await fetch(`http://127.0.0.1:${gw.server.apiPort}/health`)).json()) as {
      registrations: unknown[];
    };
    expect(health.registrations).toEqual([{ trunk: 'carrier', state: 'failed', expiresAtMs: null }]);
    const r = await registrar.done;
    expect(r.code, r.output + r.errors).toBe(0);
    await gw.stop();
    // Never registered: nothing to remove.
    expect(gw.events('sip.unregistered')).toHaveLength(0);
    gw = null;
  });
});
