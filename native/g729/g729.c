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

typedef struct {
  bcg729DecoderChannelContextStruct *ctx;
} Decoder;

typedef struct {
  bcg729EncoderChannelContextStruct *ctx;
} Encoder;

static void decoder_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Decoder *d = (Decoder *)data;
  if (d->ctx) closeBcg729DecoderChannel(d->ctx);
  free(d);
}

static void encoder_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Encoder *e = (Encoder *)data;
  if (e->ctx) closeBcg729EncoderChannel(e->ctx);
  free(e);
}

/* this + up to `want` arguments; returns the native object or NULL with an exception pending. */
static void *unwrap(napi_env env, napi_callback_info info, size_t want, napi_value *argv, size_t *argc) {
  napi_value self;
  *argc = want;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "g729: cannot read the arguments");
    return NULL;
  }
  void *obj = NULL;
  if (napi_unwrap(env, self, &obj) != napi_ok || obj == NULL) {
    napi_throw_type_error(env, NULL, "g729: not a G729Decoder or G729Encoder");
    return NULL;
  }
  return obj;
}

static napi_value new_float_samples(napi_env env, size_t n, float **data) {
  napi_value ab, arr;
  void *raw = NULL;
  if (napi_create_arraybuffer(env, n * sizeof(float), &raw, &ab) != napi_ok) return NULL;
  if (napi_create_typedarray(env, napi_float32_array, n, ab, 0, &arr) != napi_ok) return NULL;
  *data = (float *)raw;
  return arr;
}

static napi_value decoder_new(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  Decoder *d = (Decoder *)calloc(1, sizeof(Decoder));
  if (!d) {
    napi_throw_error(env, NULL, "g729: out of memory");
    return NULL;
  }
  d->ctx = initBcg729DecoderChannel();
  if (!d->ctx) {
    free(d);
    napi_throw_error(env, NULL, "g729: bcg729 could not open a decoder channel");
    return NULL;
  }
  if (napi_wrap(env, self, d, decoder_finalize, NULL, NULL) != napi_ok) {
    closeBcg729DecoderChannel(d->ctx);
    free(d);
    napi_throw_error(env, NULL, "g729: cannot wrap the decoder");
    return NULL;
  }
  return self;
}

static Decoder *open_decoder(napi_env env, napi_callback_info info, napi_value *argv, size_t *argc) {
  Decoder *d = (Decoder *)unwrap(env, info, 1, argv, argc);
  if (d && !d->ctx) {
    napi_throw_error(env, NULL, "g729: the decoder is closed");
    return NULL;
  }
  return d;
}

static napi_value decoder_decode(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  Decoder *d = open_decoder(env, info, argv, &argc);
  if (!d) return NULL;
  bool is_ta = false;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_ta) != napi_ok || !is_ta) {
    napi_throw_type_error(env, NULL, "g729: decode() takes a Uint8Array payload");
    return NULL;
  }
  napi_typedarray_type type;
  size_t len;
  void *bytes;
  CHECK(env, napi_get_typedarray_info(env, argv[0], &type, &len, &bytes, NULL, NULL));
  if (type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "g729: decode() takes a Uint8Array payload");
    return NULL;
  }
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
  if (!arr) {
    napi_throw_error(env, NULL, "g729: cannot allocate the samples");
    return NULL;
  }
  int16_t pcm[FRAME_SAMPLES];
  const uint8_t *p = (const uint8_t *)bytes;
  for (size_t f = 0; f < frames; f++) {
    bcg729Decoder(d->ctx, p + f * FRAME_BYTES, FRAME_BYTES, 0, 0, 0, pcm);
    for (int i = 0; i < FRAME_SAMPLES; i++) out[f * FRAME_SAMPLES + i] = pcm[i] / 32768.0f;
  }
  if (rest) {
    bcg729Decoder(d->ctx, p + frames * FRAME_BYTES, SID_BYTES, 0, 1, 0, pcm);
    for (int i = 0; i < FRAME_SAMPLES; i++) out[frames * FRAME_SAMPLES + i] = pcm[i] / 32768.0f;
  }
  return arr;
}

static napi_value decoder_conceal(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  Decoder *d = open_decoder(env, info, argv, &argc);
  if (!d) return NULL;
  int64_t frames = -1;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &frames) != napi_ok || frames < 1 || frames > MAX_FRAMES) {
    napi_throw_range_error(env, NULL, "g729: conceal() takes a whole number of frames, 1 to 1000");
    return NULL;
  }
  float *out;
  napi_value arr = new_float_samples(env, (size_t)frames * FRAME_SAMPLES, &out);
  if (!arr) {
    napi_throw_error(env, NULL, "g729: cannot allocate the samples");
    return NULL;
  }
  int16_t pcm[FRAME_SAMPLES];
  uint8_t none[FRAME_BYTES] = {0};
  for (int64_t f = 0; f < frames; f++) {
    bcg729Decoder(d->ctx, none, FRAME_BYTES, 1, 0, 0, pcm);
    for (int i = 0; i < FRAME_SAMPLES; i++) out[f * FRAME_SAMPLES + i] = pcm[i] / 32768.0f;
  }
  return arr;
}

static napi_value decoder_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  Decoder *d = (Decoder *)unwrap(env, info, 0, argv, &argc);
  if (!d) return NULL;
  if (d->ctx) closeBcg729DecoderChannel(d->ctx);
  d->ctx = NULL;
  return NULL;
}

static napi_value encoder_new(napi_env env, napi_callback_info info) {
  napi_value self;
  CHECK(env, napi_get_cb_info(env, info, NULL, NULL, &self, NULL));
  Encoder *e = (Encoder *)calloc(1, sizeof(Encoder));
  if (!e) {
    napi_throw_error(env, NULL, "g729: out of memory");
    return NULL;
  }
  e->ctx = initBcg729EncoderChannel(0);
  if (!e->ctx) {
    free(e);
    napi_throw_error(env, NULL, "g729: bcg729 could not open an encoder channel");
    return NULL;
  }
  if (napi_wrap(env, self, e, encoder_finalize, NULL, NULL) != napi_ok) {
    closeBcg729EncoderChannel(e->ctx);
    free(e);
    napi_throw_error(env, NULL, "g729: cannot wrap the encoder");
    return NULL;
  }
  return self;
}

static napi_value encoder_encode(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  Encoder *e = (Encoder *)unwrap(env, info, 1, argv, &argc);
  if (!e) return NULL;
  if (!e->ctx) {
    napi_throw_error(env, NULL, "g729: the encoder is closed");
    return NULL;
  }
  bool is_ta = false;
  napi_typedarray_type type = napi_uint8_array;
  size_t n = 0;
  void *data = NULL;
  if (argc >= 1 && napi_is_typedarray(env, argv[0], &is_ta) == napi_ok && is_ta)
    CHECK(env, napi_get_typedarray_info(env, argv[0], &type, &n, &data, NULL, NULL));
  if (!is_ta || type != napi_int16_array) {
    napi_throw_type_error(env, NULL, "g729: encode() takes an Int16Array of 8 kHz samples");
    return NULL;
  }
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
    bcg729Encoder(e->ctx, pcm + f * FRAME_SAMPLES, bits + f * FRAME_BYTES, &len);
    if (len != FRAME_BYTES) {
      napi_throw_error(env, NULL, "g729: the encoder returned a frame that is not 10 bytes");
      return NULL;
    }
  }
  return arr;
}

static napi_value encoder_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  Encoder *e = (Encoder *)unwrap(env, info, 0, argv, &argc);
  if (!e) return NULL;
  if (e->ctx) closeBcg729EncoderChannel(e->ctx);
  e->ctx = NULL;
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor dec[] = {
      {"decode", NULL, decoder_decode, NULL, NULL, NULL, napi_default_method, NULL},
      {"conceal", NULL, decoder_conceal, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, decoder_close, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_property_descriptor enc[] = {
      {"encode", NULL, encoder_encode, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, encoder_close, NULL, NULL, NULL, napi_default_method, NULL},
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
