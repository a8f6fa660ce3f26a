import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CallEventBus } from '../call-events.js';
import type { DetectorEngineStats } from '../detect/engine.js';
import type { MediaRelayLike } from '../gateway-types.js';

/**
 * The process-wide Prometheus registry served at /metrics. Other layers import the metric
 * objects and observe them where the fact is known:
 *   gateway  → sipResponses.inc({ code: '486' }), calls via the bus (below)
 *   detect   → inferenceLatency.observe(ms) (serve.ts passes it as the engine's onWindowLatencyMs)
 * Relay and detector counters are pulled from their stats() at scrape time (observeGateway).
 * Call, verdict, action and decision-latency metrics are derived from the call event bus
 * by `observeCallEvents`, so the gateway does not need to count them twice.
 */
export const metrics = new Registry();
collectDefaultMetrics({ register: metrics, prefix: 'voiceguard_' });

export const callsTotal = new Counter({
  name: 'voiceguard_calls_total',
  help: 'Calls seen, by direction and treatment (analyse, allow, deny, bypass)',
  labelNames: ['direction', 'treatment'] as const,
  registers: [metrics],
});

export const callsActive = new Gauge({
  name: 'voiceguard_calls_active',
  help: 'Calls started and not yet ended',
  registers: [metrics],
});

export const callsAnsweredTotal = new Counter({
  name: 'voiceguard_calls_answered_total',
  help: "Calls answered, by the codec of the caller's audio (pcmu, pcma, g729: what the detector hears; others are not analysed)",
  labelNames: ['codec'] as const,
  registers: [metrics],
});

export const verdictsTotal = new Counter({
  name: 'voiceguard_verdicts_total',
  help: 'Detector verdicts by class',
  labelNames: ['verdict'] as const,
  registers: [metrics],
});

export const actionsTotal = new Counter({
  name: 'voiceguard_actions_total',
  help: 'Policy actions carried out, by kind',
  labelNames: ['action'] as const,
  registers: [metrics],
});

export const detectorErrorsTotal = new Counter({
  name: 'voiceguard_detector_errors_total',
  help: 'Detector failures on calls (each fails open per policy)',
  registers: [metrics],
});

export const knownCallerCallsTotal = new Counter({
  name: 'voiceguard_known_caller_calls_total',
  help: 'Calls from known callers (policy.knownCallers): their actions are capped at capAction',
  registers: [metrics],
});

export const actionsCappedTotal = new Counter({
  name: 'voiceguard_actions_capped_total',
  help: 'Actions a known caller was spared: the policy named `from`, the cap carried out `to`',
  labelNames: ['from', 'to'] as const,
  registers: [metrics],
});

export const callsRuleByCodecTotal = new Counter({
  name: 'voiceguard_calls_rule_by_codec_total',
  help: "Delayed-offer calls (INVITE without SDP) that the answer's codec moved to another rule, by that rule's treatment; voiceguard_calls_total keeps the INVITE's",
  labelNames: ['treatment'] as const,
  registers: [metrics],
});

export const repeatedCallsTotal = new Counter({
  name: 'voiceguard_repeated_calls_total',
  help: 'Calls whose caller audio repeated earlier calls (detector.repeat), by whether other callers were among them',
  labelNames: ['across_callers'] as const,
  registers: [metrics],
});

export const decisionLatency = new Histogram({
  name: 'voiceguard_decision_latency_ms',
  help: 'Caller speech (ms) analysed before a verdict was reached',
  buckets: [500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 20000, 30000],
  registers: [metrics],
});

export const inferenceLatency = new Histogram({
  name: 'voiceguard_inference_latency_ms',
  help: 'Time from a window being queued to its score (batching + ONNX inference), ms',
  buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
  registers: [metrics],
});

/**
 * Counters and gauges of the media relay and the detector engine, read from their stats() when
 * /metrics is scraped (see observeGateway): the hot paths count in plain integers, and nothing is
 * added per packet or per window. Several gateways in one process (tests) add up.
 */
export interface GatewayStatsSource {
  media(): ReturnType<MediaRelayLike['stats']> | null;
  detector(): DetectorEngineStats | null;
  /** Calls the repeated-audio index remembers now (null when the check is off). */
  repeatCalls?(): number | null;
}
interface StatsEntry {
  src: GatewayStatsSource;
  last: Map<string, number>;
}
const statsSources = new Set<StatsEntry>();
/** Brings each pulled counter up to date with one source (at scrape, and once more when it leaves). */
const counterPulls: Array<(e: StatsEntry) => void> = [];

function pulledCounter(
  name: string,
  help: string,
  pick: (s: GatewayStatsSource) => number | undefined,
): Counter {
  const counter: Counter = new Counter({
    name,
    help,
    registers: [metrics],
    collect() {
      for (const e of statsSources) pull(e);
    },
  });
  const pull = (e: StatsEntry) => {
    const v = pick(e.src);
    if (v === undefined) return;
    const prev = e.last.get(name) ?? 0;
    if (v > prev) counter.inc(v - prev);
    e.last.set(name, v);
  };
  counterPulls.push(pull);
  return counter;
}

function pulledGauge(name: string, help: string, pick: (s: GatewayStatsSource) => number | undefined): Gauge {
  return new Gauge({
    name,
    help,
    registers: [metrics],
    collect() {
      let sum = 0;
      for (const e of statsSources) sum += pick(e.src) ?? 0;
      this.set(sum);
    },
  });
}

export const rtpPacketsRelayed = pulledCounter(
  'voiceguard_rtp_packets_relayed_total',
  'RTP and RTCP packets relayed between the legs',
  (s) => s.media()?.packetsRelayed,
);
export const rtpPacketsDropped = pulledCounter(
  'voiceguard_rtp_packets_dropped_total',
  'Packets received and not relayed (not RTP, wrong source after latching, direction does not send)',
  (s) => s.media()?.packetsDropped,
);
export const rtpPacketsReplaced = pulledCounter(
  'voiceguard_rtp_packets_replaced_total',
  'Relayed packets replaced by injected audio (warn tone, drop announcement)',
  (s) => s.media()?.packetsReplaced,
);
export const srtpAuthFailed = pulledCounter(
  'voiceguard_srtp_auth_failed_total',
  'SRTP/SRTCP packets dropped because they failed authentication or were replays (media.srtp: terminate)',
  (s) => s.media()?.srtpAuthFailed,
);
export const forkFramesShed = pulledCounter(
  'voiceguard_fork_frames_shed_total',
  'Caller audio frames not handed to the detector because it fell behind (relaying is never delayed)',
  (s) => s.media()?.forkFramesShed,
);
export const mediaSessions = pulledGauge(
  'voiceguard_media_sessions',
  'Media sessions (calls with anchored media) open',
  (s) => s.media()?.sessions,
);
export const mediaPortsInUse = pulledGauge(
  'voiceguard_media_ports_in_use',
  'RTP/RTCP ports held from media.portMin..portMax',
  (s) => s.media()?.portsInUse,
);
export const detectorWindowsScored = pulledCounter(
  'voiceguard_detector_windows_scored_total',
  'Audio windows the model scored',
  (s) => s.detector()?.windowsScored,
);
export const detectorWindowsShed = pulledCounter(
  'voiceguard_detector_windows_shed_total',
  'Audio windows not scored because the detector queue was full (overload fails open)',
  (s) => s.detector()?.windowsShed,
);
export const detectorInferenceErrors = pulledCounter(
  'voiceguard_detector_inference_errors_total',
  'Model inference failures (each batch counts once; its calls fail open)',
  (s) => s.detector()?.inferenceErrors,
);
export const detectorStreams = pulledGauge(
  'voiceguard_detector_streams_active',
  'Calls whose audio the detector is listening to now',
  (s) => s.detector()?.activeStreams,
);

export const repeatIndexCalls = pulledGauge(
  'voiceguard_repeat_index_calls',
  'Calls the repeated-audio index remembers now (after a restart: those loaded from the store)',
  (s) => s.repeatCalls?.() ?? undefined,
);

/** Adds a gateway's relay and detector stats to /metrics; returns the function that removes it. */
export function observeGateway(src: GatewayStatsSource): () => void {
  const entry = { src, last: new Map<string, number>() };
  statsSources.add(entry);
  return () => {
    if (!statsSources.delete(entry)) return;
    for (const pull of counterPulls) pull(entry);
  };
}

export const sipTlsCertNotAfter = new Gauge({
  name: 'voiceguard_sip_tls_cert_not_after_seconds',
  help: 'Expiry (Unix time) of the certificate SIP over TLS presents now (set at start and at each reload)',
  registers: [metrics],
});

export const trunkRegistered = new Gauge({
  name: 'voiceguard_trunk_registered',
  help: 'Trunk registrations (sip.trunks[].register): 1 while the binding is in place, 0 otherwise',
  labelNames: ['trunk'] as const,
  registers: [metrics],
});

export const sipResponses = new Counter({
  name: 'voiceguard_sip_responses_total',
  help: 'SIP final responses sent or relayed to the caller, by status code',
  labelNames: ['code'] as const,
  registers: [metrics],
});

export const webhookDeliveries = new Counter({
  name: 'voiceguard_webhook_deliveries_total',
  help: 'Webhook delivery attempts by outcome (ok, retry, failed, dropped)',
  labelNames: ['outcome'] as const,
  registers: [metrics],
});

/** Derives call/verdict/action/repeat/latency metrics from the bus; returns an unsubscribe function. */
export function observeCallEvents(bus: CallEventBus): () => void {
  const started = (e: { direction: string; treatment: string; knownCaller?: unknown }) => {
    callsTotal.inc({ direction: e.direction, treatment: e.treatment });
    callsActive.inc();
    if (e.knownCaller) knownCallerCallsTotal.inc();
  };
  const ended = () => callsActive.dec();
  const answered = (e: { codec: string }) => callsAnsweredTotal.inc({ codec: e.codec.toLowerCase() });
  const verdict = (e: { verdict: string; decisionMs: number | null }) => {
    verdictsTotal.inc({ verdict: e.verdict });
    if (e.decisionMs !== null) decisionLatency.observe(e.decisionMs);
  };
  const action = (e: { action: string; cappedFrom?: string; again?: true }) => {
    if (!e.again) actionsTotal.inc({ action: e.action });
    if (e.cappedFrom) actionsCappedTotal.inc({ from: e.cappedFrom, to: e.action });
  };
  const rule = (e: { treatment: string }) => callsRuleByCodecTotal.inc({ treatment: e.treatment });
  const error = () => detectorErrorsTotal.inc();
  const repeat = (e: { otherCallers: number }) =>
    repeatedCallsTotal.inc({ across_callers: e.otherCallers > 0 ? 'yes' : 'no' });
  bus.on('call.started', started);
  bus.on('call.ended', ended);
  bus.on('call.answered', answered);
  bus.on('call.rule', rule);
  bus.on('call.verdict', verdict);
  bus.on('call.action', action);
  bus.on('call.detector_error', error);
  bus.on('call.repeat', repeat);
  return () => {
    bus.off('call.started', started);
    bus.off('call.ended', ended);
    bus.off('call.answered', answered);
    bus.off('call.rule', rule);
    bus.off('call.verdict', verdict);
    bus.off('call.action', action);
    bus.off('call.detector_error', error);
    bus.off('call.repeat', repeat);
  };
}
