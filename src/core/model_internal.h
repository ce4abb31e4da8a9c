/*
 * model_internal.h: what esmm_model.c (the shared model machinery:
 * tables, input assembly, lazy embedding updates, the trainer) and
 * mmoe_model.c (MMoE's own layout and passes) give each other.  Not part
 * of the core's interface: the glue and the tests use esmm_model.h and
 * mmoe_model.h.
 */
#ifndef ESMM_MODEL_INTERNAL_H
#define ESMM_MODEL_INTERNAL_H

#include "esmm_model.h"

/* ------------------------------------------------ from esmm_model.c */

#define MODEL_TOWER_INPUTS 1		/* check the tower's feature inputs */
#define MODEL_TOWER_UNIT_OUTPUT 2	/* the last layer has width 1 */

/* Validates a stack's layers (and, with flags, its inputs and output). */
esmm_code	model_validate_tower(const esmm_tower_spec *t, const esmm_schema *s,
								 const char *name, int flags, esmm_status *st);

/* calloc'd n floats (at least one); NULL on failure or overflow. */
float	   *model_alloc_floats(size_t n);

/* Appends a table of rows x dim at *cursor; returns its index, or
 * ESMM_NO_TABLE on overflow or when the model has ESMM_MAX_TABLES. */
uint16_t	model_add_table(esmm_model *m, uint32_t f, esmm_table_role role,
							uint32_t rows, uint32_t dim, float l1, float l2,
							size_t *cursor);

/* The width the features inputs[n] fill when read through tables of role:
 * a feature's own width for ESMM_TABLE_MAIN, its wide table's otherwise. */
uint32_t	model_input_width(const esmm_model *m, const uint16_t *inputs,
							  uint32_t n, esmm_table_role role);

/*
 * Fills x [B, D] (D >= model_input_width) with the features inputs[n],
 * concatenated in order: embeddings (mean-pooled for arrays) and
 * normalized values for ESMM_TABLE_MAIN; for the wide roles, the wide
 * table's row, a numeric feature's one row scaled by its normalized value.
 */
void		model_input_forward(esmm_model *m, float *x, int D,
								const uint16_t *inputs, uint32_t n,
								esmm_table_role role, const esmm_batch *batch);

/* model_input_forward for the rows [b0, b1) of the batch only: x points
 * at row b0's input, [b1 - b0, D].  Calls on disjoint rows may run on
 * different threads. */
void		model_input_forward_rows(esmm_model *m, float *x, int D,
									 const uint16_t *inputs, uint32_t n,
									 esmm_table_role role, const esmm_batch *batch,
									 int b0, int b1);

/* The reverse of model_input_forward: accumulates dx [B, D] into the
 * tables' gradients.  It reads the id columns the forward pass gathered:
 * call it after model_input_forward over the same batch and features. */
void		model_input_backward(esmm_model *m, const float *dx, int D,
								 const uint16_t *inputs, uint32_t n,
								 esmm_table_role role, const esmm_batch *batch);

/* Marks every row the batch looked up in an active table for the lazy
 * step, and adds the tables' L1/L2 terms on those rows; returns their
 * loss. */
double		model_embedding_touch(esmm_model *m, const esmm_batch *batch);

/* How many row blocks a batch of B rows is cut into: ESMM_BLOCK_ROWS
 * rows or more each, at most ESMM_MAX_BLOCKS, a function of B only. */
static inline int
model_row_blocks(int B)
{
	int			n = (B + ESMM_BLOCK_ROWS - 1) / ESMM_BLOCK_ROWS;

	return n < 1 ? 1 : n > ESMM_MAX_BLOCKS ? ESMM_MAX_BLOCKS : n;
}

/* Cuts B rows into at most n blocks of equal size: sets *rows to the rows
 * of each but the last and returns how many blocks that makes. */
static inline int
model_cut_blocks(int B, int n, int *rows)
{
	*rows = (B + n - 1) / n;
	return (B + *rows - 1) / *rows;
}

/* How many row blocks a training batch of B rows runs as: one when batch
 * norm, which normalizes over the whole batch, is in the model;
 * model_row_blocks(B) otherwise. */
int			model_train_blocks(const esmm_model *m, int B);

/* How a batch of B rows is cut into row blocks, for training or for
 * scoring (model_train_blocks, model_row_blocks): returns the number of
 * blocks and sets *rows to the rows of each but the last. */
int			model_batch_blocks(const esmm_model *m, int B, int training, int *rows);

/* Sums the dense gradients of a batch's n_blocks row blocks (block_grads)
 * into m->grads' dense region, each element in block order whatever the
 * thread count. */
void		model_sum_block_grads(esmm_model *m, int n_blocks);

/* ------------------------------------------------ from mmoe_model.c */

/* Validates m->mmoe against m->schema. */
esmm_code	mmoe_validate(const esmm_model *m, esmm_status *st);

/* Whether an MMoE model reads feature f's own table. */
int			mmoe_feature_uses_table(const esmm_model *m, uint32_t f);

/* Feature f's wide table of role (linear or FM), or ESMM_NO_TABLE. */
uint16_t	mmoe_wide_table(const esmm_model *m, uint32_t f, esmm_table_role role);

/* Lays out the wide tables after the features' own (0 on overflow). */
int			mmoe_layout_tables(esmm_model *m, size_t *cursor);

/* Lays out the wide bias, experts, gates and task towers (0 on overflow
 * or out of memory). */
int			mmoe_layout_dense(esmm_model *m, size_t *cursor, size_t *scursor);

/* Seeded initialization of everything but the features' own tables. */
void		mmoe_init(esmm_model *m, uint64_t seed);

/* MMoE's activations and scratch for batches of up to max_B rows. */
esmm_code	mmoe_workspace(esmm_model *m, int max_B, esmm_status *st);
size_t		mmoe_workspace_floats(const esmm_model *m, size_t B);
void		mmoe_free_workspace(esmm_model *m);

/* Whether every expert's and task tower's batch-norm variance is >= 0. */
int			mmoe_variances_valid(const esmm_model *m);

/* Frees the layout (and workspace); NULL parts are allowed. */
void		mmoe_free_parts(esmm_model *m);

/* The bytes of an MMoE model's parts and its experts' layer arrays. */
size_t		mmoe_parts_bytes(const esmm_model *m);

/* Whether any expert or task layer uses batch norm. */
int			mmoe_uses_bn(const esmm_model *m);

/*
 * Forward in training mode, the weighted task losses, and backward into
 * grads (tables included).  Returns the data loss (a mean over the batch)
 * and the dense regularization terms in *reg.
 */
double		mmoe_forward_backward(esmm_model *m, const esmm_batch *batch, double *reg);

#endif							/* ESMM_MODEL_INTERNAL_H */
