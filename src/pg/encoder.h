/*
 * encoder.h: rows to ids, raw floats and labels.
 *
 * The encoder finds each feature by column name in the row's type once
 * per query (esmm_encoder_bind), then turns each row into the compact
 * form the core reads: an int32 id per categorical feature (hashed with
 * PostgreSQL's own hash functions, or a vocab id), a raw float per
 * numeric feature (NaN for NULL; normalization happens in the core with
 * statistics stored in the model), a list of ids per array feature, and
 * the labels as floats.
 */
#ifndef ESMM_ENCODER_H
#define ESMM_ENCODER_H

#include "postgres.h"
#include "access/htup.h"
#include "access/tupdesc.h"

#include "esmm_config.h"
#include "esmm_data.h"

/* A growable id list in one memory context (array features). */
typedef struct esmm_idbuf
{
	int32_t    *ids;
	size_t		len;
	size_t		cap;
	MemoryContext mcxt;
} esmm_idbuf;

typedef struct esmm_encoder
{
	const esmm_schema *schema;	/* not owned */
	Oid			rowtype;		/* the bound row type */
	int32		rowtypmod;
	uint64		rowtype_id;		/* its typcache identifier: changes with ALTER */
	TupleDesc	tupdesc;		/* a copy, in mcxt */
	MemoryContext mcxt;
	int			attnum[ESMM_MAX_FEATURES];	/* 0-based, per feature */
	int			label_attnum[ESMM_MAX_LABELS];	/* -1: not needed */
	Oid			type[ESMM_MAX_FEATURES];	/* base type of each feature's column */
	Oid			label_type[ESMM_MAX_LABELS];
	bool		label_regression[ESMM_MAX_LABELS];	/* read as a float target */
	Oid			elem_type[ESMM_MAX_FEATURES];	/* array features */
	int16		elem_len[ESMM_MAX_FEATURES];
	bool		elem_byval[ESMM_MAX_FEATURES];
	char		elem_align[ESMM_MAX_FEATURES];
	uint32_t	n_ids,
				n_nums,
				n_multi;
	uint32_t	slot[ESMM_MAX_FEATURES];
	bool		skip_bad_rows;
	Datum	   *values;			/* [natts] heap_deform_tuple output */
	bool	   *nulls;
	int64		row_number;		/* rows seen, for error messages */
} esmm_encoder;

/* How a row ended up. */
typedef enum esmm_row_status
{
	ESMM_ROW_OK = 0,
	ESMM_ROW_NULL_LABEL,		/* a label was NULL */
	ESMM_ROW_BAD				/* a non-finite value, with skip_bad_rows */
} esmm_row_status;

/*
 * Builds a training schema and towers from the config and the row type:
 * inputs.defs (or every column but the labels and inputs.exclude), each
 * feature's kind, buckets and width, the towers' inputs from
 * inputs.groups, and the labels.  ERRORs name the column.
 */
void		esmm_schema_resolve(esmm_schema *schema, esmm_arch *arch,
								const esmm_config *cfg, TupleDesc tupdesc);

/* The same for MMoE: the labels in task order, the experts' inputs from
 * inputs.groups.mmoe (every feature when absent) and the wide part's from
 * inputs.groups.wide. */
void		mmoe_schema_resolve(esmm_schema *schema, mmoe_arch *arch,
								const esmm_config *cfg, TupleDesc tupdesc);

/*
 * Binds enc to schema and to the row type of tup: finds every feature (and
 * with_labels, every label) by name and checks its type.  label_regression
 * (NULL: none) marks the labels read as float targets rather than 0/1.  A missing column
 * or a column of the wrong type is an ERROR that names the column.
 */
void		esmm_encoder_bind(esmm_encoder *enc, const esmm_schema *schema,
							  HeapTupleHeader tup, bool with_labels,
							  const uint8_t *label_regression, MemoryContext mcxt);

/* The same for rows of the plain tuple descriptor td (SPI's result rows),
 * without labels; such a binding never matches a row type. */
void		esmm_encoder_bind_desc(esmm_encoder *enc, const esmm_schema *schema,
								   TupleDesc td, MemoryContext mcxt);

/* True when tup has the row type enc was bound to. */
bool		esmm_encoder_matches(esmm_encoder *enc, HeapTupleHeader tup);

/*
 * Encodes one row: ids[n_ids], nums[n_nums], the array features' ids
 * appended to multi (with their per-feature counts in multi_counts[n_multi]),
 * and when labels is not NULL, labels[n_labels].
 */
esmm_row_status esmm_encode_row(esmm_encoder *enc, HeapTupleHeader tup,
								int32_t *ids, float *nums, esmm_idbuf *multi,
								uint32_t *multi_counts, float *labels);

/*
 * The same for a row already split into values[] and nulls[], indexed as
 * the tuple descriptor enc was bound to (a slot's tts_values and
 * tts_isnull): what a DestReceiver hands over, with no tuple to deform.
 */
esmm_row_status esmm_encode_datums(esmm_encoder *enc, const Datum *values,
								   const bool *nulls, int32_t *ids, float *nums,
								   esmm_idbuf *multi, uint32_t *multi_counts,
								   float *labels);

/*
 * Checks what the core stores but cannot judge: every column name is valid
 * in the database encoding, and every column type in a
 * decoded model's schema is one the encoder supports for its kind.  An
 * ERROR "invalid esmm model: ..." otherwise, since only a crafted or
 * corrupted model can fail it.
 */
void		esmm_schema_check(const esmm_schema *schema);

/* Appends n ids to buf. */
void		esmm_idbuf_append(esmm_idbuf *buf, const int32_t *ids, size_t n);

#endif							/* ESMM_ENCODER_H */
