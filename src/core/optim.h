/*
 * optim.h: optimizer steps on a contiguous run of parameters.
 *
 * The same function updates the whole dense region and each embedding row
 * a batch touched, so sparse (lazy) updates need no second implementation:
 * a row nobody looked up keeps its weights and its moments, and a step
 * costs O(touched rows), never O(table rows).
 */
#ifndef ESMM_OPTIM_H
#define ESMM_OPTIM_H

#include "esmm_core.h"

/*
 * Updates w[n] from g[n] with optimizer o at step t (1-based; Adam's bias
 * correction).  m1[n], m2[n] are the optimizer's state:
 *   adam     m1 = first moment, m2 = second moment;
 *            w -= lr * mhat / (sqrt(vhat) + epsilon)
 *   adagrad  m1 = accumulator (starts at initial_accumulator_value);
 *            w -= lr * g / (sqrt(m1) + epsilon)
 *   sgd      m1 = velocity; v = momentum*v - lr*g; w += v
 *   rmsprop  m1 = mean square, m2 = momentum buffer;
 *            w -= (momentum*mom + lr * g / (sqrt(ms) + epsilon))
 */
void		esmm_optim_step(const esmm_optim_spec *o, float *w, const float *g,
							float *m1, float *m2, size_t n, uint64_t t);

/*
 * The same update split in two, for a step that updates many runs (the
 * dense region and every touched embedding row): esmm_optim_begin computes
 * the step's coefficients (Adam's bias corrections) once, and
 * esmm_optim_apply updates one run with them.  esmm_optim_step is the two
 * in a row, with the same results.
 */
typedef struct esmm_optim_coef
{
	esmm_optim_spec spec;
	float		inv_c1;			/* adam: 1 / (1 - beta_1^t) */
	float		inv_c2;			/* adam: 1 / (1 - beta_2^t) */
} esmm_optim_coef;

void		esmm_optim_begin(esmm_optim_coef *c, const esmm_optim_spec *o, uint64_t t);
void		esmm_optim_apply(const esmm_optim_coef *c, float *w, const float *g,
							 float *m1, float *m2, size_t n);

/* Adds the gradients of l1*|w| and l2*w^2 (Keras' regularizers):
 * g += l1*sign(w) + 2*l2*w.  g[n]; w[n]. */
void		esmm_reg_grad(float *g, const float *w, size_t n, float l1, float l2);

/* Returns l1*sum|w| + l2*sum w^2. */
double		esmm_reg_loss(const float *w, size_t n, float l1, float l2);

/* The optimizer's initial value for m1 (adagrad's accumulator; else 0). */
float		esmm_optim_m1_init(const esmm_optim_spec *o);

#endif
