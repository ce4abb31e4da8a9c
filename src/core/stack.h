/*
 * stack.h: a stack of dense layers (dense -> batch norm -> activation ->
 * dropout, per layer), the unit that ESMM's towers and MMoE's experts and
 * task towers are made of.  A stack does not own memory: its tensors are
 * offsets into the model's flat buffers, and its activations point into
 * the model's workspace.
 */
#ifndef ESMM_STACK_H
#define ESMM_STACK_H

#include "esmm_model.h"

typedef struct esmm_stack
{
	const esmm_tower_spec *spec;
	esmm_layer_ref *ref;		/* [spec->n_layers] tensor offsets */
	esmm_layer_acts *acts;		/* [spec->n_layers] activations */
	size_t		grad_base;		/* backward writes the gradient of the tensor at
								 * offset o to grads[o - grad_base] */
	const float *wt;			/* or NULL: the kernel at offset o transposed
								 * is at wt + (o - wt_base), for backward */
	size_t		wt_base;
} esmm_stack;

/* Lays out the stack's tensors for an input of width in: parameters from
 * *cursor, batch-norm statistics from *scursor.  0 on size_t overflow. */
int			esmm_stack_layout(esmm_stack *s, uint32_t in, size_t *cursor,
							  size_t *scursor);

/* The widest layer of the stack. */
uint32_t	esmm_stack_max_width(const esmm_stack *s);

/* Glorot-uniform kernels from a stream per layer (tag mixed with the
 * layer), gamma 1, running variance 1; biases and beta stay 0. */
void		esmm_stack_init(const esmm_stack *s, float *params, float *state,
							uint64_t seed, uint64_t tag);

/* Returns the floats of activations the stack needs for B rows, and
 * points its activations into work unless work is NULL (sizing only), so
 * that a workspace's sizing and its carving are one walk. */
size_t		esmm_stack_carve(esmm_stack *s, float *work, size_t B);

/*
 * The same stack on the rows b0.. of a batch: acts[n_layers] receives the
 * stack's activation pointers advanced by b0 rows, and the returned stack
 * reads them and writes its parameter gradients to grads[o - grad_base].
 * Row blocks of one batch can then run on different threads.  Batch norm
 * in training needs the whole batch: such a stack is only run whole.
 */
esmm_stack	esmm_stack_rows(const esmm_stack *s, esmm_layer_acts *acts, size_t b0,
							size_t grad_base);

/*
 * Forward for B rows of x [B, in]; returns the output [B, out of the last
 * layer] (inside the activations).  training: batch norm on the batch's
 * statistics (moving the running ones) and dropout from *rng.
 */
const float *esmm_stack_forward(const esmm_stack *s, const float *x,
								const float *params, float *state, int B,
								int training, uint64_t *rng);

/*
 * The reverse of esmm_stack_forward: from dy [B, out] to dx [B, in],
 * accumulating the parameter gradients into grads.  dx also serves as the
 * buffer between layers, and sb, sc are scratch: each [B, max width].
 */
void		esmm_stack_backward(const esmm_stack *s, float *dx, const float *dy,
								const float *x, const float *params,
								float *grads, int B, float *sb, float *sc);

/* Writes each layer's kernel from params, transposed, to
 * wt + (offset - wt_base): what a stack with that wt reads. */
void		esmm_stack_transpose(const esmm_stack *s, const float *params,
								 float *wt, size_t wt_base);

/* Adds the kernels' L1/L2 gradients to grads; returns their loss. */
double		esmm_stack_regularize(const esmm_stack *s, const float *params,
								  float *grads);

/* Whether every batch-norm running variance of the stack is >= 0. */
int			esmm_stack_variances_valid(const esmm_stack *s, const float *state);

/* A stream per tensor: the seed mixed with a tag naming the tensor. */
uint64_t	esmm_tensor_stream(uint64_t seed, uint64_t tag);

/* w[i] uniform in (-limit, limit) from stream. */
void		esmm_fill_uniform(float *w, size_t n, float limit, uint64_t stream);

#endif
