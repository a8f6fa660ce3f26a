import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CallEventBus } from '../call-events.js';

/**
 * The process-wide Prometheus registry served at /metrics. Other layers import the metric
 * objects and observe them where the fact is known:
 *   gateway  → sipResponses.inc({ code: '486' }), calls via the bus (below)
 *   media    → rtpPackets.inc({ direction: 'a-to-b' }, n), rtpPacketsLost.inc(n)
 *   detect   → inferenceLatency.observe(ms), inferenceBatchSize.observe(n)
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

export const rtpPackets = new Counter({
  name: 'voiceguard_rtp_packets_total',
  help: 'RTP packets relayed, by direction (a-to-b = caller to PBX)',
  labelNames: ['direction'] as const,
  registers: [metrics],
});

export const rtpPacketsLost = new Counter({
  name: 'voiceguard_rtp_packets_lost_total',
  help: 'RTP packets missing by sequence number, by direction',
  labelNames: ['direction'] as const,
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

/** Derives call/verdict/action/latency metrics from the bus; returns an unsubscribe function. */
export function observeCallEvents(bus: CallEventBus): () => void {
  const started = (e: { direction: string; treatment: string }) => {
    callsTotal.inc({ direction: e.direction, treatment: e.treatment });
    callsActive.inc();
  };
  const ended = () => callsActive.dec();
  const verdict = (e: { verdict: string; decisionMs: number | null }) => {
    verdictsTotal.inc({ verdict: e.verdict });
    if (e.decisionMs !== null) decisionLatency.observe(e.decisionMs);
  };
  const action = (e: { action: string }) => actionsTotal.inc({ action: e.action });
  const error = () => detectorErrorsTotal.inc();
  bus.on('call.started', started);
  bus.on('call.ended', ended);
  bus.on('call.verdict', verdict);
  bus.on('call.action', action);
  bus.on('call.detector_error', error);
  return () => {
    bus.off('call.started', started);
    bus.off('call.ended', ended);
    bus.off('call.verdict', verdict);
    bus.off('call.action', action);
    bus.off('call.detector_error', error);
  };
}
