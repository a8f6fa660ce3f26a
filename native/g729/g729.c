/*
 * G.729 (Annex A compatible, with Annex B SID frames) for the detector fork: an N-API wrapper
 * around Belledonne's bcg729 (Debian: libbcg729-dev to build, libbcg729-0 to run).
 *
 *   new G729Decoder()           one decoder channel (state carries from frame to frame)
 *   .decode(payload)            RTP payload: N 10-byte frames, optionally ending in a 2-byte SID
 *                               frame -> Float32Array of N*80 (+80) samples in [-1, 1)
 *   .conceal(frames)            frames lost in transit -> bcg729's concealment, frames*80 samples
 *   .close()                    frees the channel now (else the garbage collector does)
 *   new G729Encoder()           one encoder channel, VAD off
 *   .encode(pcm)                Int16Array of N*80 samples -> Uint8Array of N*10 bytes
 *   .close()
 *
 * Every bad argument throws a TypeError or RangeError; nothing here aborts the process.
 */
#include <node_api.h>
#include <bcg729/decoder.h>
#include <bcg729/encoder.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define FRAME_SAMPLES 80
#define FRAME_BYTES 10
#define SID_BYTES 2
#define MAX_FRAMES 1000 /* 10 s in one call: far more than any RTP packet */

#define CHECK(env, call)                                                         \
  do {                                                                           \
    if ((call) != napi_ok) {                                                     \
      napi_throw_error((env), NULL, "g729: N-API call failed: " #call);          \
      return NULL;                                                               \
    }                                                                            \
  } while (0)

enum Kind { DECODER, ENCODER };

/* One bcg729 channel behind a G729Decoder or G729Encoder object. */
typedef struct {
  enum Kind kind;
  void *ctx; /* NULL once closed */
} Channel;

static void close_ctx(Channel *c) {
  if (!c->ctx) return;
  if (c->kind == DECODER)
    closeBcg729DecoderChannel((bcg729DecoderChannelContextStruct *)c->ctx);
  else
    closeBcg729EncoderChannel((bcg729EncoderChannelContextStruct *)c->ctx);
  c->ctx = NULL;
}

static void channel_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  close_ctx((Channel *)data);
  free(data);
}

/*
 * `this` as an open channel of `kind`, and up to `want` arguments; NULL with an exception pending
 * when `this` is not one (a method called on the other class, or on a plain object) or is closed.
 */
static Channel *this_channel(napi_env env, napi_callback_info info, enum Kind kind, size_t want, napi_value *argv,
                             size_t *argc) {
  napi_value self;
  *argc = want;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "g729: cannot read the arguments");
    return NULL;
  }
  void *obj = NULL;
  if (napi_unwrap(env, self, &obj) != napi_ok || obj == NULL || ((Channel *)obj)->kind != kind) {
    napi_throw_type_error(env, NULL, kind == DECODER ? "g729: not a G729Decoder" : "g729: not a G729Encoder");
    return NULL;
  }
  Channel *c = (Channel *)obj;
  if (!c->ctx) {
    napi_throw_error(env, NULL, kind == DECODER ? "g729: the decoder is closed" : "g729: the encoder is closed");
    return NULL;
  }
  return c;
}

static napi_value channel_new(napi_env env, napi_callback_info info, enum Kind kind) {
  napi_value self;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  Channel *c = (Channel *)calloc(1, sizeof(Channel));
  if (!c) {
    napi_throw_error(env, NULL, "g729: out of memory");
    return NULL;
  }
  c->kind = kind;
  c->ctx = kind == DECODER ? (void *)initBcg729DecoderChannel() : (void *)initBcg729EncoderChannel(0);
  if (!c->ctx) {
    free(c);
    napi_throw_error(env, NULL, "g729: bcg729 could not open a channel");
    return NULL;
  }
  if (napi_wrap(env, self, c, channel_finalize, NULL, NULL) != napi_ok) {
    close_ctx(c);
    free(c);
    napi_throw_error(env, NULL, "g729: cannot wrap the channel");
    return NULL;
  }
  return self;
}

/* close(): frees the channel now; closing again does nothing. */
static napi_value channel_close(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  void *obj = NULL;
  if (napi_unwrap(env, self, &obj) != napi_ok || obj == NULL) {
    napi_throw_type_error(env, NULL, "g729: not a G729Decoder or G729Encoder");
    return NULL;
  }
  close_ctx((Channel *)obj);
  return NULL;
}

/* A Float32Array of n samples, its data in *data; NULL with an exception pending. */
static napi_value new_float_samples(napi_env env, size_t n, float **data) {
  napi_value ab, arr;
  void *raw = NULL;
  if (napi_create_arraybuffer(env, n * sizeof(float), &raw, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_float32_array, n, ab, 0, &arr) != napi_ok) {
    napi_throw_error(env, NULL, "g729: cannot allocate the samples");
    return NULL;
  }
  *data = (float *)raw;
  return arr;
}

/*
 * A method taking one typed array: `this` as an open channel of `kind` (this_channel), and the
 * argument's data and length, which must be a typed array of `want`; NULL with an exception pending.
 */
static Channel *channel_and_array(napi_env env, napi_callback_info info, enum Kind kind, napi_typedarray_type want,
                                  const char *msg, void **data, size_t *len) {
  napi_value argv[1];
  size_t argc;
  Channel *c = this_channel(env, info, kind, 1, argv, &argc);
  if (!c) return NULL;
  bool is_ta = false;
  napi_typedarray_type type;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[0], &type, len, data, NULL, NULL) != napi_ok || type != want) {
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  return c;
}

/* `count` frames through the decoder into out: frame f from bits + f * step, `len` bytes (10, or 2 for SID). */
static void decode_into(Channel *d, const uint8_t *bits, size_t step, uint8_t len, uint8_t erasure, uint8_t sid,
                        size_t count, float *out) {
  int16_t pcm[FRAME_SAMPLES];
  for (size_t f = 0; f < count; f++) {
    bcg729Decoder((bcg729DecoderChannelContextStruct *)d->ctx, bits + f * step, len, erasure, sid, 0, pcm);
    for (int i = 0; i < FRAME_SAMPLES; i++) out[f * FRAME_SAMPLES + i] = pcm[i] / 32768.0f;
  }
}

static napi_value decoder_decode(napi_env env, napi_callback_info info) {
  size_t len;
  void *bytes;
  Channel *d = channel_and_array(env, info, DECODER, napi_uint8_array, "g729: decode() takes a Uint8Array payload",
                                 &bytes, &len);
  if (!d) return NULL;
  size_t frames = len / FRAME_BYTES;
  size_t rest = len % FRAME_BYTES;
  if ((rest != 0 && rest != SID_BYTES) || len == 0 || frames > MAX_FRAMES) {
    char msg[128];
    snprintf(msg, sizeof msg, "g729: a payload of %zu bytes is not N 10-byte frames and at most one 2-byte SID frame", len);
    napi_throw_range_error(env, NULL, msg);
    return NULL;
  }
  size_t n = (frames + (rest ? 1 : 0)) * FRAME_SAMPLES;
  float *out;
  napi_value arr = new_float_samples(env, n, &out);
  if (!arr) return NULL;
  const uint8_t *p = (const uint8_t *)bytes;
  decode_into(d, p, FRAME_BYTES, FRAME_BYTES, 0, 0, frames, out);
  if (rest) decode_into(d, p + frames * FRAME_BYTES, 0, SID_BYTES, 0, 1, 1, out + frames * FRAME_SAMPLES);
  return arr;
}

static napi_value decoder_conceal(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  Channel *d = this_channel(env, info, DECODER, 1, argv, &argc);
  if (!d) return NULL;
  int64_t frames = -1;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &frames) != napi_ok || frames < 1 || frames > MAX_FRAMES) {
    napi_throw_range_error(env, NULL, "g729: conceal() takes a whole number of frames, 1 to 1000");
    return NULL;
  }
  float *out;
  napi_value arr = new_float_samples(env, (size_t)frames * FRAME_SAMPLES, &out);
  if (!arr) return NULL;
  const uint8_t none[FRAME_BYTES] = {0};
  decode_into(d, none, 0, FRAME_BYTES, 1, 0, (size_t)frames, out);
  return arr;
}

static napi_value encoder_encode(napi_env env, napi_callback_info info) {
  size_t n;
  void *data;
  Channel *e = channel_and_array(env, info, ENCODER, napi_int16_array,
                                 "g729: encode() takes an Int16Array of 8 kHz samples", &data, &n);
  if (!e) return NULL;
  if (n == 0 || n % FRAME_SAMPLES != 0) {
    napi_throw_range_error(env, NULL, "g729: encode() takes a whole number of 80-sample (10 ms) frames");
    return NULL;
  }
  size_t frames = n / FRAME_SAMPLES;
  napi_value ab, arr;
  void *raw = NULL;
  CHECK(env, napi_create_arraybuffer(env, frames * FRAME_BYTES, &raw, &ab));
  CHECK(env, napi_create_typedarray(env, napi_uint8_array, frames * FRAME_BYTES, ab, 0, &arr));
  const int16_t *pcm = (const int16_t *)data;
  uint8_t *bits = (uint8_t *)raw;
  for (size_t f = 0; f < frames; f++) {
    uint8_t len = 0;
    bcg729Encoder((bcg729EncoderChannelContextStruct *)e->ctx, pcm + f * FRAME_SAMPLES, bits + f * FRAME_BYTES, &len);
    if (len != FRAME_BYTES) {
      napi_throw_error(env, NULL, "g729: the encoder returned a frame that is not 10 bytes");
      return NULL;
    }
  }
  return arr;
}

static napi_value decoder_new(napi_env env, napi_callback_info info) { return channel_new(env, info, DECODER); }
static napi_value encoder_new(napi_env env, napi_callback_info info) { return channel_new(env, info, ENCODER); }

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor dec[] = {
      {"decode", NULL, decoder_decode, NULL, NULL, NULL, napi_default_method, NULL},
      {"conceal", NULL, decoder_conceal, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, channel_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_property_descriptor enc[] = {
      {"encode", NULL, encoder_encode, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, channel_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value dcls, ecls;
  if (napi_define_class(env, "G729Decoder", NAPI_AUTO_LENGTH, decoder_new, NULL, 3, dec, &dcls) != napi_ok ||
      napi_define_class(env, "G729Encoder", NAPI_AUTO_LENGTH, encoder_new, NULL, 2, enc, &ecls) != napi_ok ||
      napi_set_named_property(env, exports, "G729Decoder", dcls) != napi_ok ||
      napi_set_named_property(env, exports, "G729Encoder", ecls) != napi_ok) {
    napi_throw_error(env, NULL, "g729: cannot define the classes");
    return NULL;
  }
  return exports;
}
