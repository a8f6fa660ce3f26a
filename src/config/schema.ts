import { z } from 'zod';
import { SRTP_SUITES, type SrtpSuite } from '../media/srtp.js';

/**
 * The single configuration schema. Every key has a default and a one-line description
 * (`.describe()`), which `voiceguard config --print-defaults` and the docs render, so a
 * PBX admin never has to read code to learn what a setting does.
 */

const hostPort = z.strictObject({
  host: z.string().describe('IP address or hostname'),
  port: z.number().int().min(1).max(65535).describe('UDP/TCP port'),
});

const thresholds = z.strictObject({
  dropLlr: z
    .number()
    .describe(
      'Accumulated log-likelihood ratio (synthetic:human) at which a call is judged synthetic and the "drop" action may fire',
    ),
  warnLlr: z.number().describe('Accumulated LLR at which the "warn" action fires (normally below dropLlr)'),
  humanLlr: z
    .number()
    .describe('Accumulated LLR at or below which the caller is judged human and analysis stops'),
  maxListenMs: z
    .number()
    .int()
    .min(500)
    .max(60_000)
    .describe('Longest stretch of caller speech analysed before the verdict is "unsure"'),
});

export const ActionSchema = z.enum(['drop', 'warn', 'log']);

export const ConfigSchema = z.strictObject({
  sip: z
    .strictObject({
      listen: z
        .strictObject({
          host: z.string().default('0.0.0.0').describe('Address the SIP listener binds to'),
          port: z.number().int().min(1).max(65535).default(5060).describe('SIP listening port (UDP and TCP)'),
          transports: z
            .array(z.enum(['udp', 'tcp', 'tls']))
            .min(1)
            .default(['udp', 'tcp'])
            .describe('SIP transports to listen on (tls needs sip.tls.certFile and keyFile)'),
          tlsPort: z
            .number()
            .int()
            .min(1)
            .max(65535)
            .default(5061)
            .describe('SIP over TLS listening port (with tls in transports)'),
        })
        .prefault({}),
      tls: z
        .strictObject({
          certFile: z
            .string()
            .nullable()
            .default(null)
            .describe(
              'PEM certificate (chain) voiceguard presents on SIP over TLS; read at start and at reload',
            ),
          keyFile: z
            .string()
            .nullable()
            .default(null)
            .describe('PEM private key of certFile (keep it mode 0600)'),
          caFile: z
            .string()
            .nullable()
            .default(null)
            .describe(
              "PEM CA certificates trusted for peers' certificates; null = Node's bundled public roots",
            ),
          verifyPeers: z
            .boolean()
            .default(true)
            .describe(
              'TLS connections voiceguard opens (PBX, trunk, registrar) need a certificate valid for the host they are addressed to',
            ),
          requireClientCert: z
            .boolean()
            .default(false)
            .describe('Connections from peers must present a certificate signed by caFile (mutual TLS)'),
          minVersion: z
            .enum(['TLSv1.2', 'TLSv1.3'])
            .default('TLSv1.2')
            .describe('Oldest TLS version accepted'),
        })
        .prefault({})
        .describe('SIP over TLS (signalling; media encryption is media.srtp and sip.pbx.srtp)'),
      publicAddress: z
        .string()
        .nullable()
        .default(null)
        .describe(
          'Address written into Via/Contact/Record-Route; null = the listen host, or 127.0.0.1 if that is 0.0.0.0',
        ),
      trunks: z
        .array(
          z.strictObject({
            name: z.string().describe('Trunk name shown in the console and used by policy rules'),
            addresses: z
              .array(z.string())
              .min(1)
              .describe('Source IP addresses or CIDR ranges of this trunk'),
            register: z
              .strictObject({
                registrar: z
                  .string()
                  .min(1)
                  .describe("The carrier's registrar, host or host:port (e.g. sip.carrier.example:5060)"),
                transport: z
                  .enum(['udp', 'tcp', 'tls'])
                  .default('udp')
                  .describe('Transport toward the registrar'),
                aor: z
                  .string()
                  .regex(/^sips?:/, 'a SIP URI, e.g. sip:4930123456@sip.carrier.example')
                  .describe(
                    'Address of record to register (To/From), e.g. sip:4930123456@sip.carrier.example',
                  ),
                username: z.string().min(1).describe('Digest user name'),
                password: z.string().describe('Digest password (keep the config file mode 0600)'),
                expiresS: z
                  .number()
                  .int()
                  .min(60)
                  .max(86_400)
                  .default(300)
                  .describe('Registration expiry to ask for; refreshed before the granted one runs out'),
                contactUser: z
                  .string()
                  .nullable()
                  .default(null)
                  .describe("User part of voiceguard's Contact; null = the AOR's user"),
              })
              .nullable()
              .default(null)
              .describe(
                "Register voiceguard's address for this trunk with the carrier, for registration-based trunks: the carrier then sends inbound calls to voiceguard",
              ),
          }),
        )
        .default([{ name: 'default', addresses: ['0.0.0.0/0', '::/0'], register: null }])
        .describe('SIP trunks (carrier side); calls from these addresses are inbound and get analysed'),
      pbx: hostPort
        .extend({
          transport: z.enum(['udp', 'tcp', 'tls']).default('udp').describe('Transport toward the PBX'),
          srtp: z
            .enum(['off', 'sdes', 'best-effort'])
            .default('off')
            .describe(
              'Media toward the PBX: off = plain RTP; sdes = SRTP with SDES keys (voiceguard offers RTP/SAVP with one key per suite in media.srtpSuites, and the PBX must answer with one of them); best-effort = the same keys on a plain RTP/AVP offer: a PBX that answers with one of them gets SRTP, one that answers without keys gets plain RTP. Use with transport tls: SDES keys travel in the SIP body',
            ),
        })
        .default({ host: '127.0.0.1', port: 5070, transport: 'udp', srtp: 'off' })
        .describe('The company PBX that inbound calls are relayed to'),
      outbound: z
        .strictObject({
          enabled: z.boolean().default(true).describe('Relay calls from the PBX toward a trunk'),
          trunk: hostPort
            .extend({
              transport: z.enum(['udp', 'tcp', 'tls']).default('udp').describe('Transport toward the trunk'),
            })
            .nullable()
            .default(null)
            .describe(
              "Where calls from the PBX are sent (null = the request URI's host, port and transport parameter)",
            ),
          analyse: z
            .boolean()
            .default(false)
            .describe('Analyse outbound calls too (off: they pass untouched)'),
        })
        .prefault({}),
      userAgent: z.string().default('voiceguard').describe('Server/User-Agent header value'),
      inviteTimeoutMs: z
        .number()
        .int()
        .min(1000)
        .default(180_000)
        .describe('How long an unanswered INVITE may ring before the gateway cancels it'),
      timerT1Ms: z
        .number()
        .int()
        .min(50)
        .max(10_000)
        .default(500)
        .describe(
          'SIP timer T1 (RFC 3261): reliable provisionals toward a caller that Requires 100rel are retransmitted from T1, doubling, and the attempt ends with 504 if no PRACK comes within 64*T1',
        ),
      ackTimeoutMs: z
        .number()
        .int()
        .min(500)
        // The SIP stack (node-sip) keeps an answered INVITE's server transaction for 32 s and can
        // send its 2xx only while it lives: a longer wait would stop the retransmissions half-way.
        .max(32_000)
        .default(32_000)
        .describe(
          "How long the gateway waits for the ACK to a 2xx it sent to an INVITE (retransmitted from T1 meanwhile), and for a delayed offer the ACK that carries the SDP answer, before it ends the call with a BYE to both legs (RFC 3261 64*T1; at most 32000, the life of the SIP stack's INVITE transaction)",
        ),
      enforceSessionExpiry: z
        .boolean()
        .default(true)
        .describe(
          'RFC 4028: when the answer to an INVITE or a refresh carries Session-Expires and no refresh (re-INVITE or UPDATE) succeeds within that interval, end the call (BYE both legs). Session-Expires passes end to end; the endpoints refresh, the gateway watches',
        ),
      maxCallSeconds: z
        .number()
        .int()
        .min(0)
        .max(604_800)
        .default(0)
        .describe(
          'End an answered call after this many seconds (BYE both legs with Reason Q.850 cause 16); 0 = no limit. A backstop against calls whose BYE was lost while on hold, where no RTP flows and no session timer runs',
        ),
      drainTimeoutMs: z
        .number()
        .int()
        .min(0)
        .default(30_000)
        .describe(
          'On SIGTERM/SIGINT: how long live calls may go on (new INVITEs get 503) before the rest are hung up',
        ),
    })
    .prefault({}),
  media: z
    .strictObject({
      bindHost: z.string().default('0.0.0.0').describe('Address RTP sockets bind to'),
      publicAddress: z
        .string()
        .nullable()
        .default(null)
        .describe('Address written into SDP c= lines; null = sip.publicAddress'),
      portMin: z.number().int().min(1024).max(65534).default(20000).describe('Lowest RTP port (even)'),
      portMax: z.number().int().min(1025).max(65535).default(29999).describe('Highest RTP/RTCP port'),
      workers: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe('Relay worker threads; 0 = one per ~callsPerWorker calls, up to the CPU count'),
      callsPerWorker: z
        .number()
        .int()
        .min(1)
        .default(250)
        .describe('Calls sharded onto one relay worker thread'),
      rtpTimeoutMs: z
        .number()
        .int()
        .min(1000)
        .default(30_000)
        .describe('A call whose media is silent (no RTP at all) this long is ended'),
      forkOnEarlyMedia: z
        .boolean()
        .default(false)
        .describe('Start analysing at 183 early media instead of at answer'),
      jitterBufferMs: z
        .number()
        .int()
        .min(0)
        .max(500)
        .default(60)
        .describe('Depth of the analysis fork jitter buffer'),
      srtp: z
        .enum(['terminate', 'relay', 'refuse'])
        .default('terminate')
        .describe(
          'An SDP offer with SRTP (SDES keys): terminate = voiceguard answers it with SRTP, decrypts for the detector and offers the other leg plain RTP (or SRTP with our keys toward a PBX with sip.pbx.srtp), whether it requires SRTP (RTP/SAVP) or offers it best-effort (keys on RTP/AVP); relay = an offer that requires SRTP is relayed encrypted, not analysed; refuse = it gets 488. With relay and refuse, best-effort keys are removed (plain RTP)',
        ),
      srtpSuites: z
        .array(z.enum(SRTP_SUITES as [SrtpSuite, ...SrtpSuite[]]))
        .min(1)
        .default([...SRTP_SUITES])
        .describe(
          'SDES suites voiceguard terminates (an offer is answered with the first of its keys in this list) and offers toward the PBX (sip.pbx.srtp: sdes), in this order',
        ),
      codecs: z
        .array(z.enum(['PCMU', 'PCMA']))
        .default(['PCMU', 'PCMA'])
        .describe(
          'Audio codecs left in SDP offers; others (G.722, Opus, ...) are removed so the detector can decode the call',
        ),
      fallbackCodecs: z
        .array(z.enum(['G729']))
        .default(['G729'])
        .describe(
          'Codecs the detector also decodes, at lower accuracy (G.729 through the native bcg729 codec, native/g729): left in an offer only when it has none of media.codecs, so such a call is analysed instead of relayed unanalysed; needs the codec built (npm ci does it where libbcg729-dev is installed), else media.undecodable applies. [] = never',
        ),
      undecodable: z
        .enum(['relay', 'refuse'])
        .default('relay')
        .describe(
          'An offer with none of media.codecs or media.fallbackCodecs (G.722 or Opus only, say): relay = relayed with its own codecs and not analysed (fails open: the call is logged and reported as not analysed); refuse = 488 Not Acceptable Here',
        ),
    })
    .prefault({}),
  detector: z
    .strictObject({
      modelPath: z.string().default('models/voiceguard-detector.onnx').describe('ONNX model file'),
      metadataPath: z
        .string()
        .default('models/voiceguard-detector.json')
        .describe('Model metadata JSON (window, hop, calibration, recommended thresholds)'),
      intraOpThreads: z
        .number()
        .int()
        .min(1)
        .default(1)
        .describe('onnxruntime threads per inference session'),
      batchMaxSize: z
        .number()
        .int()
        .min(1)
        .max(1024)
        .default(32)
        .describe('Most windows scored in one inference call'),
      batchMaxDelayMs: z
        .number()
        .min(0)
        .max(200)
        .default(5)
        .describe('How long the batcher waits for more windows before scoring a partial batch'),
      maxQueuedWindows: z
        .number()
        .int()
        .min(1)
        .default(4096)
        .describe('Windows waiting for inference beyond which new windows are shed (overload fails open)'),
      inferenceTimeoutMs: z
        .number()
        .int()
        .min(10)
        .default(2000)
        .describe('A window not scored within this time counts as a detector fault (the call fails open)'),
      vad: z
        .strictObject({
          energyThresholdDbfs: z.number().default(-45).describe('Frames quieter than this are not speech'),
          minSpeechMs: z
            .number()
            .int()
            .min(0)
            .default(200)
            .describe('Shortest run of voiced frames counted as speech'),
          hangoverMs: z.number().int().min(0).default(200).describe('Frames kept as speech after voice ends'),
        })
        .prefault({}),
      repeat: z
        .strictObject({
          enabled: z
            .boolean()
            .default(true)
            .describe(
              "Compare each analysed call's audio with recent calls' (robot campaigns replay one recording)",
            ),
          listenMs: z
            .number()
            .int()
            .min(1000)
            .max(10_000)
            .default(4000)
            .describe('Caller audio fingerprinted per call, from the start of analysis'),
          minOtherCallers: z
            .number()
            .int()
            .min(1)
            .default(2)
            .describe(
              'Other callers whose calls carried the same audio before the policy action onRepeat is taken',
            ),
          windowMinutes: z
            .number()
            .int()
            .min(1)
            .default(1440)
            .describe('How long a call is remembered for comparison'),
          maxCalls: z
            .number()
            .int()
            .min(1)
            .max(200_000)
            .default(5000)
            .describe(
              'Calls remembered at most (about 10 KB each with listenMs 4000, allocated at start); the oldest is forgotten first',
            ),
          persist: z
            .boolean()
            .default(true)
            .describe(
              'Keep the fingerprints in the store so that a restart or a settings change does not forget the window (false: memory only, and stored ones are deleted)',
            ),
          maxBitErrorRate: z
            .number()
            .gt(0)
            .lt(0.5)
            .default(0.3)
            .describe(
              'Highest fingerprint bit error rate counted as the same audio (same recording ~0.1, different speech ~0.48)',
            ),
        })
        .prefault({}),
    })
    .prefault({}),
  policy: z
    .strictObject({
      defaults: thresholds
        .extend({
          onSynthetic: ActionSchema.default('warn').describe('Action when the verdict is synthetic'),
          onUnsure: ActionSchema.default('log').describe('Action when listening time ran out undecided'),
          onError: ActionSchema.default('log').describe('Action when the detector fails (log = fail open)'),
          onRepeat: ActionSchema.default('warn').describe(
            "Action when the caller's audio repeats calls from detector.repeat.minOtherCallers other callers",
          ),
          analyse: z.boolean().default(true).describe('Analyse calls at all'),
          retainAudioSeconds: z
            .number()
            .int()
            .min(0)
            .max(60)
            .default(0)
            .describe('Keep the first N seconds of caller audio for review (0 = never store audio)'),
        })
        .partial({ dropLlr: true, warnLlr: true, humanLlr: true, maxListenMs: true })
        .prefault({})
        .describe(
          'Thresholds and actions when no rule matches; missing thresholds come from the model metadata',
        ),
      rulesFile: z
        .string()
        .nullable()
        .default(null)
        .describe('Optional YAML/JSON file of policy rules seeded into the store at start-up'),
      denyStatus: z
        .number()
        .int()
        .min(400)
        .max(699)
        .default(603)
        .describe('SIP status returned to deny-listed callers'),
      timeZone: z
        .string()
        .default('UTC')
        .describe(
          'IANA time zone (e.g. Europe/Berlin) in which rule schedules (days, HH:MM ranges) are read',
        ),
      watchRulesFile: z
        .boolean()
        .default(true)
        .describe('Re-read rulesFile when it changes (new calls use the new rules; live calls keep theirs)'),
      knownCallers: z
        .strictObject({
          enabled: z
            .boolean()
            .default(true)
            .describe(
              "Cap the actions on callers with a human history (the store's earlier calls): false drops cluster on voices, so a regular caller is not dropped again and again",
            ),
          minCalls: z
            .number()
            .int()
            .min(1)
            .max(1000)
            .default(2)
            .describe(
              'Earlier calls that make a caller known: answered, talked minTalkSeconds, no synthetic verdict, no drop, no repeat (one call labelled human is enough)',
            ),
          minTalkSeconds: z
            .number()
            .int()
            .min(0)
            .max(3600)
            .default(60)
            .describe('Answer-to-hang-up time an earlier call needs to count'),
          windowDays: z
            .number()
            .int()
            .min(1)
            .max(3650)
            .default(90)
            .describe('How far back earlier calls count (the store keeps store.retentionDays)'),
          capAction: z
            .enum(['warn', 'log'])
            .default('warn')
            .describe(
              'The most a known caller gets: a drop (or a warn, with log) becomes this; a robot label on any of their calls ends the protection',
            ),
        })
        .prefault({})
        .describe('Known callers: inbound callers whose earlier calls were human are never dropped'),
    })
    .prefault({}),
  actions: z
    .strictObject({
      dropAnnouncement: z
        .string()
        .nullable()
        .default(null)
        .describe('WAV file played to the caller before a drop (null = drop silently)'),
      warnAnnouncement: z
        .string()
        .nullable()
        .default(null)
        .describe('WAV file played to the staff member on warn (null = two-tone beep)'),
      warnToneHz: z
        .array(z.number().min(100).max(3800))
        .length(2)
        .default([1400, 2060])
        .describe('Warn beep frequencies'),
      warnToneMs: z.number().int().min(50).max(3000).default(400).describe('Length of each warn beep'),
    })
    .prefault({}),
  store: z
    .strictObject({
      path: z.string().default('data/voiceguard.sqlite').describe('SQLite database file'),
      retentionDays: z.number().int().min(1).default(90).describe('Call records older than this are pruned'),
      audioRetentionDays: z
        .number()
        .int()
        .min(1)
        .default(7)
        .describe('Retained review audio older than this is deleted'),
      auditRetentionDays: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe('Audit trail entries older than this are pruned (0: kept until deleted by hand)'),
      flushIntervalMs: z
        .number()
        .int()
        .min(10)
        .default(250)
        .describe('Write batch interval (writes never block calls)'),
      flushMaxRows: z.number().int().min(1).default(500).describe('Rows that force an early flush'),
      maxQueuedRows: z
        .number()
        .int()
        .min(100)
        .default(100_000)
        .describe(
          'Unwritten rows beyond which new score-timeline rows are shed (a stalled disk never grows memory without bound)',
        ),
      checkpointIntervalMs: z
        .number()
        .int()
        .min(50)
        .default(1000)
        .describe(
          'How often a background thread copies the write-ahead log into the database file (the only disk syncs)',
        ),
      pruneIntervalMs: z
        .number()
        .int()
        .min(1000)
        .default(3_600_000)
        .describe('How often records past their retention are pruned'),
      erasureLedger: z
        .string()
        .min(1)
        .nullable()
        .default(null)
        .describe(
          'File that records erasures (call and audit ids only, no numbers) so they are re-applied after a backup is restored; null = <path>.erasures.jsonl. Keep it out of any rollback of the database',
        ),
    })
    .prefault({}),
  privacy: z
    .strictObject({
      pseudonymiseNumbers: z
        .boolean()
        .default(true)
        .describe(
          'Replace phone numbers in logs (and stored records if storeClearNumbers is false) by keyed hashes',
        ),
      storeClearNumbers: z
        .boolean()
        .default(true)
        .describe('Store clear phone numbers in the database for admins'),
      pseudonymKey: z
        .string()
        .nullable()
        .default(null)
        .describe('HMAC key for pseudonyms; null = a random key generated once and kept in the store'),
    })
    .prefault({}),
  api: z
    .strictObject({
      host: z.string().default('127.0.0.1').describe('Admin API and console listen address'),
      port: z.number().int().min(0).max(65535).default(8080).describe('Admin API and console port'),
      tls: z
        .strictObject({ certFile: z.string(), keyFile: z.string() })
        .nullable()
        .default(null)
        .describe('Serve HTTPS with this certificate and key'),
      bootstrapAdminToken: z
        .string()
        .min(16)
        .nullable()
        .default(null)
        .describe(
          'Admin token created at start if no admin token exists (else one is generated and logged once)',
        ),
      webhooks: z
        .array(
          z.strictObject({
            url: z.string().url(),
            secret: z.string().min(8).describe('HMAC-SHA256 signing secret'),
            // 'repeat' (call.repeat: the caller's audio repeated earlier calls) and 'erasure'
            // (calls.erased) are opt-in, so that receivers written for the first two types see
            // nothing new; `voiceguard doctor` warns of a receiver of call events without 'erasure'.
            events: z
              .array(z.enum(['verdict', 'action', 'repeat', 'erasure']))
              .default(['verdict', 'action']),
          }),
        )
        .default([])
        .describe(
          'Webhooks called on verdicts and actions and, if listed in events, repeated audio and erasures (the ids of calls an admin erased, for a receiver that keeps call events to erase too)',
        ),
      webhookMaxAttempts: z
        .number()
        .int()
        .min(1)
        .max(20)
        .default(6)
        .describe('Delivery attempts per webhook event before it is given up'),
      webhookBackoffMs: z
        .number()
        .int()
        .min(10)
        .default(1000)
        .describe(
          'Delay before the first webhook retry; doubles on each further attempt (capped at 5 minutes)',
        ),
      webhookTimeoutMs: z.number().int().min(100).default(5000).describe('Per-attempt webhook HTTP timeout'),
      webhookMaxQueued: z
        .number()
        .int()
        .min(1)
        .default(10_000)
        .describe('Undelivered webhook events kept; older ones are dropped beyond this'),
      loginRateLimit: z
        .strictObject({
          max: z
            .number()
            .int()
            .min(1)
            .default(10)
            .describe('Login attempts allowed per client address per window'),
          windowMs: z.number().int().min(1000).default(60_000).describe('Login rate-limit window'),
        })
        .prefault({})
        .describe('Rate limit on POST /api/auth/login'),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z
        .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace'])
        .default('info')
        .describe('Log level'),
      pretty: z.boolean().default(false).describe('Human-readable logs instead of JSON lines'),
    })
    .prefault({}),
});

export type Config = z.infer<typeof ConfigSchema>;
export type PolicyAction = z.infer<typeof ActionSchema>;
