import { describe, expect, it } from 'vitest';
import { metrics, observeGateway, type GatewayStatsSource } from '../../src/api/metrics.js';

/** The relay/detector metrics read from stats() at scrape time (observeGateway). */
async function value(name: string): Promise<number> {
  const m = (await metrics.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values.reduce((s, v) => s + v.value, 0) ?? NaN;
}

function source() {
  const media = {
    sessions: 0,
    portsInUse: 0,
    packetsRelayed: 0,
    packetsDropped: 0,
    forkFramesShed: 0,
    packetsReplaced: 0,
    srtpAuthFailed: 0,
  };
  const detector = { activeStreams: 0, windowsScored: 0, windowsShed: 0, inferenceErrors: 0, batches: 0 };
  const src: GatewayStatsSource = { media: () => ({ ...media }), detector: () => ({ ...detector }) };
  return { media, detector, src };
}

describe('observeGateway', () => {
  it('counters follow the sources, add up across gateways, and keep counts when a gateway leaves', async () => {
    const base = await value('voiceguard_rtp_packets_relayed_total');
    const shedBase = await value('voiceguard_detector_windows_shed_total');
    const a = source();
    const b = source();
    const offA = observeGateway(a.src);
    const offB = observeGateway(b.src);
    a.media.packetsRelayed = 100;
    b.media.packetsRelayed = 40;
    a.media.sessions = 3;
    b.media.sessions = 2;
    a.detector.windowsShed = 7;
    expect(await value('voiceguard_rtp_packets_relayed_total')).toBe(base + 140);
    expect(await value('voiceguard_media_sessions')).toBe(5);
    expect(await value('voiceguard_detector_windows_shed_total')).toBe(shedBase + 7);
    // A second scrape without change adds nothing; growth adds the difference only.
    expect(await value('voiceguard_rtp_packets_relayed_total')).toBe(base + 140);
    a.media.packetsRelayed = 150;
    expect(await value('voiceguard_rtp_packets_relayed_total')).toBe(base + 190);
    // Counted between the last scrape and leaving: kept; gauges drop the source.
    b.media.packetsRelayed = 60;
    offB();
    expect(await value('voiceguard_rtp_packets_relayed_total')).toBe(base + 210);
    expect(await value('voiceguard_media_sessions')).toBe(3);
    offA();
    offA(); // idempotent
    expect(await value('voiceguard_media_sessions')).toBe(0);
    expect(await value('voiceguard_rtp_packets_relayed_total')).toBe(base + 210);
  });

  it('a gateway without a detector (null stats) adds nothing', async () => {
    const before = await value('voiceguard_detector_windows_scored_total');
    const off = observeGateway({ media: () => null, detector: () => null });
    expect(await value('voiceguard_detector_windows_scored_total')).toBe(before);
    expect(await value('voiceguard_detector_streams_active')).toBe(0);
    off();
  });
});
