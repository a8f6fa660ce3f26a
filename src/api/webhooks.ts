import { createHmac } from 'node:crypto';
import type {
  CallActionEvent,
  CallEventBus,
  CallRepeatEvent,
  CallsErasedEvent,
  CallVerdictEvent,
} from '../call-events.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { webhookDeliveries } from './metrics.js';

/**
 * Webhook delivery for verdicts, actions, repeated audio (`repeat`, opt-in per webhook) and
 * erasures (`erasure`: the ids of calls an admin erased, so that the receiver erases what it
 * holds about them too, as GDPR Art. 19 asks of whoever received personal data).
 *
 * Body: JSON `{ type: 'call.verdict' | 'call.action' | 'call.repeat' | 'calls.erased', id, data: <bus event> }`.
 * Headers: `X-Voiceguard-Event`, `X-Voiceguard-Delivery` (id, stable across retries),
 * `X-Voiceguard-Timestamp` (epoch ms of this attempt) and
 * `X-Voiceguard-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
 * Receivers recompute the HMAC and reject stale timestamps (replay protection).
 *
 * Bus listeners only enqueue; delivery runs on timers with fetch. A failed attempt (network
 * error, timeout, non-2xx) is retried after webhookBackoffMs · 2^(attempt-1) (max 5 min), up
 * to webhookMaxAttempts; then the event is given up with a `webhook.failed` log line.
 */
type WebhookTarget = Config['api']['webhooks'][number];

interface Delivery {
  target: WebhookTarget;
  id: string;
  type: 'call.verdict' | 'call.action' | 'call.repeat' | 'calls.erased';
  body: string;
  attempt: number;
}

export interface WebhookOptions {
  webhooks: WebhookTarget[];
  maxAttempts: number;
  backoffMs: number;
  timeoutMs: number;
  maxQueued: number;
  logger: Logger;
}

export function signWebhook(secret: string, timestampMs: number, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestampMs}.${body}`).digest('hex');
}

const MAX_BACKOFF_MS = 300_000;
const CONCURRENCY = 4;

export class WebhookDispatcher {
  private readonly queue: Delivery[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private inFlight = 0;
  private seq = 0;
  private closed = false;
  private off: (() => void) | null = null;

  constructor(private readonly opts: WebhookOptions) {}

  subscribe(bus: CallEventBus): void {
    if (this.opts.webhooks.length === 0) return;
    const verdict = (e: CallVerdictEvent) => this.emit('verdict', 'call.verdict', e);
    const action = (e: CallActionEvent) => this.emit('action', 'call.action', e);
    const repeat = (e: CallRepeatEvent) => this.emit('repeat', 'call.repeat', e);
    const erased = (e: CallsErasedEvent) => this.emit('erasure', 'calls.erased', e);
    bus.on('call.verdict', verdict);
    bus.on('call.action', action);
    bus.on('call.repeat', repeat);
    bus.on('calls.erased', erased);
    this.off = () => {
      bus.off('call.verdict', verdict);
      bus.off('call.action', action);
      bus.off('call.repeat', repeat);
      bus.off('calls.erased', erased);
    };
  }

  /** Events waiting or being retried. */
  get pending(): number {
    return this.queue.length + this.inFlight + this.timers.size;
  }

  private emit(
    kind: WebhookTarget['events'][number],
    type: Delivery['type'],
    data: CallVerdictEvent | CallActionEvent | CallRepeatEvent | CallsErasedEvent,
  ): void {
    if (this.closed) return;
    for (const target of this.opts.webhooks) {
      if (!target.events.includes(kind)) continue;
      const id = `${Date.now().toString(36)}-${(++this.seq).toString(36)}`;
      if (this.pending >= this.opts.maxQueued) {
        webhookDeliveries.inc({ outcome: 'dropped' });
        this.opts.logger.warn(
          {
            event: 'webhook.queue_full',
            url: target.url,
            type,
            ...('callId' in data ? { callId: data.callId } : { calls: data.callIds.length }),
          },
          'webhook queue full; event dropped',
        );
        continue;
      }
      this.queue.push({ target, id, type, body: JSON.stringify({ type, id, data }), attempt: 0 });
    }
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.inFlight < CONCURRENCY && this.queue.length) {
      const d = this.queue.shift()!;
      this.inFlight++;
      void this.attempt(d).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async attempt(d: Delivery): Promise<void> {
    d.attempt++;
    const ts = Date.now();
    let problem: string | null = null;
    try {
      const res = await fetch(d.target.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'voiceguard-webhook',
          'x-voiceguard-event': d.type,
          'x-voiceguard-delivery': d.id,
          'x-voiceguard-timestamp': String(ts),
          'x-voiceguard-signature': signWebhook(d.target.secret, ts, d.body),
        },
        body: d.body,
        signal: AbortSignal.timeout(this.opts.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) problem = `HTTP ${res.status}`;
    } catch (err) {
      problem = (err as Error).message;
    }
    if (problem === null) {
      webhookDeliveries.inc({ outcome: 'ok' });
      return;
    }
    if (d.attempt >= this.opts.maxAttempts || this.closed) {
      webhookDeliveries.inc({ outcome: 'failed' });
      this.opts.logger.error(
        { event: 'webhook.failed', url: d.target.url, delivery: d.id, attempts: d.attempt, err: problem },
        'webhook delivery given up',
      );
      return;
    }
    webhookDeliveries.inc({ outcome: 'retry' });
    const delay = Math.min(MAX_BACKOFF_MS, this.opts.backoffMs * 2 ** (d.attempt - 1));
    this.opts.logger.warn(
      {
        event: 'webhook.retry',
        url: d.target.url,
        delivery: d.id,
        attempt: d.attempt,
        delayMs: delay,
        err: problem,
      },
      'webhook delivery failed; will retry',
    );
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.queue.push(d);
      this.pump();
    }, delay);
    timer.unref();
    this.timers.add(timer);
  }

  close(): void {
    this.closed = true;
    this.off?.();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
  }
}
