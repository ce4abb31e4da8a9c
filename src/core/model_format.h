/*
 * model_format.h: the model bytea, format version 1 (SPEC §6).
 *
 * All integers and floats are little-endian.
 *
 *   offset  size  field
 *   0       4     magic "ESMM"
 *   4       2     format version (1)
 *   6       2     model kind (esmm_model_kind)
 *   8       4     CRC-32C of every byte from offset 12 to the end
 *   12      4     section count
 *   16      ...   sections, each: u32 tag, u32 zero, u64 length, payload
 *
 * Sections, in this order:
 *   1 CONF  the normalized config, JSON text (not NUL-terminated)
 *   2 SCHM  the feature schema: u32 n_features, then per feature:
 *           name[64], u32 src_type, u8 kind, u8 hashed, u8 norm,
 *           u8 null_indicator, u32 n_buckets, u32 dim, f32 mean, f32 std;
 *           u32 n_labels, then per label name[64], u32 src_type
 *   3 ARCH  the towers: per tower present (CTR first), u32 n_layers, per
 *           layer u32 units, u8 use_bias, u8 act, u8 use_bn, u8 0,
 *           f32 dropout; f32 l1, f32 l2, u32 n_inputs, u16 inputs[n];
 *           then f32 loss_weights[2], f32 l2_embedding, u8 label_is_ctcvr,
 *           u8 loss, u16 0
 *   4 REPT  the training report: u64 rows_seen, rows_trained,
 *           rows_dropped, rows_null_label, rows_bad; f64 seconds;
 *           u32 threads; u32 n_epochs; per epoch u32 epoch, f64 loss,
 *           u64 rows, f64 seconds, u32 n_metrics, per metric name[32] and
 *           f64 value; then u64 rows_validation, u32 best_epoch (0: the
 *           last epoch's weights), u8 stopped_early
 *   5 PARM  u64 count, f32[count]: the flat parameter buffer, embedding
 *           tables in feature order, then per tower and layer W[in,out],
 *           b[out], gamma[out], beta[out] (those present)
 *   6 STAT  u64 count, f32[count]: batch-norm running mean and variance
 *   7 OPTS  optional: u32 optimizer kind, u64 step, u64 count,
 *           f32 m1[count], f32 m2[count]
 *
 * The decoder checks every length and count against the bytes that
 * remain before it allocates or reads, so a crafted bytea cannot make it
 * read outside it, nor allocate more than its own size for the parameters
 * and statistics; the decoded history takes at most ESMM_MAX_EPOCHS
 * entries (about 68 MB at worst).
 */
#ifndef ESMM_MODEL_FORMAT_H
#define ESMM_MODEL_FORMAT_H

#include "esmm_model.h"

#define ESMM_FORMAT_VERSION 1
#define ESMM_HEADER_SIZE 16

/* CRC-32C over len bytes; the glue passes PostgreSQL's pg_crc32c. */
typedef uint32_t (*esmm_crc_fn) (const void *data, size_t len);

/* Bytes esmm_model_encode will write (with_optimizer: add OPTS). */
size_t		esmm_model_encoded_size(const esmm_model *m, int with_optimizer);

/* Writes the model into buf[len], len = esmm_model_encoded_size(). */
esmm_code	esmm_model_encode(const esmm_model *m, int with_optimizer,
							  uint8_t *buf, size_t len, esmm_crc_fn crc,
							  esmm_status *st);

/*
 * Decodes buf[len] into a new model (params, state, report, config; the
 * optimizer state too when present and with_optimizer).  On a corrupt,
 * truncated or foreign input returns ESMM_ERR_FORMAT with the reason in
 * st->msg, and *out stays NULL.
 */
esmm_code	esmm_model_decode(esmm_model **out, const uint8_t *buf, size_t len,
							  esmm_crc_fn crc, int with_optimizer,
							  esmm_status *st);

/* Reads the kind from a header without validating the rest; 0 if buf is
 * not an esmm model header. */
esmm_model_kind esmm_model_peek_kind(const uint8_t *buf, size_t len);

#endif
