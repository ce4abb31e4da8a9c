/*
 * mmoe_model.h: MMoE v2 (seed 002): multi-gate mixture of experts with an
 * optional wide part, over the same schema, batches and flat-buffer layout
 * as ESMM (esmm_model.h).
 *
 * Forward, per row:
 *   mmoe input  m = [embeddings and values of the mmoe group]      [Dm]
 *   wide input  w = [embeddings and values of the wide group]      [Dw]
 *   wide output o = FM(wide features) | LR(wide features) | w (raw)
 *   expert/gate input x = m, or [m, w] when feature_cross is 1, 2 or 3
 *   experts     e_k = expert tower k (x)                           [E]
 *   gates       g_t = softmax(x G_t + c_t), one per task or shared [K]
 *   mixture     h_t = sum_k g_t[k] e_k                             [E]
 *   task input  u_t = h_t, [h_t, w] (cross 2, 4) or [h_t, o] (3, 5)
 *   task logit  z_t = task tower t (u_t) (+ o when output_cross = 0
 *                     and the wide part has a scalar output)
 *   prediction  sigmoid(z_t) for task_output_act sigmoid, else z_t
 * Loss: sum_t loss_weights[t] * (BCE from the logit for binary tasks,
 * MSE on z_t for regression), averaged over the batch.
 *
 * FM (wide_type FM): o = b + sum_i w_i + 1/2 sum_f [(sum_i v_if)^2 -
 * sum_i v_if^2], computed in O(k n): each wide categorical feature owns a
 * first-order table [rows, 1] and a latent table [rows, wide_width]; a
 * numeric feature owns one weight and one latent vector scaled by its
 * value.  LR: o = b + sum_i w_i.  Raw: o = w, and nothing is added to the
 * logits.
 */
#ifndef ESMM_MMOE_MODEL_H
#define ESMM_MMOE_MODEL_H

#include "esmm_model.h"

/* mmoe_arch and its helpers are in esmm_core.h, next to esmm_arch.
 * Everything else about a model (init, workspace, train_begin, step, fit,
 * evaluate, free) is esmm_model.h's, and works on both kinds. */

#define MMOE_MAX_EXPERTS 64

/*
 * Creates an MMoE model (kind ESMM_KIND_MMOE) for schema and a: validates
 * every count, width and input, lays out the tables and tensors and
 * allocates params and state (zeroed).
 */
esmm_code	mmoe_model_create(esmm_model **out, const esmm_schema *schema,
							  const mmoe_arch *a, esmm_status *st);

/* mmoe_model_create's validation and parameter count, and the bytes as
 * esmm_model_plan gives them, without allocating. */
esmm_code	mmoe_model_plan(const esmm_schema *schema, const mmoe_arch *a,
							int batch_size, unsigned what, size_t *n_params,
							size_t *bytes, esmm_status *st);

/*
 * Inference: one score per task for batch->B rows, out[B, n_tasks]
 * row-major: sigmoid(logit) for a binary task when task_output_sigmoid,
 * the logit (or the regression value) otherwise.
 */
void		mmoe_model_predict(esmm_model *m, const esmm_batch *batch, float *out);

/* Each task's probability (binary) or value (regression) for evaluation:
 * like mmoe_model_predict, but binary tasks always through the sigmoid. */
void		mmoe_model_scores(esmm_model *m, const esmm_batch *batch, float *out);

/* Widths of the parts, for tests and esmm_model_info: the expert/gate
 * input, the raw wide features, the wide output, a task tower's input. */
typedef struct mmoe_widths
{
	uint32_t	expert_in;
	uint32_t	wide_in;
	uint32_t	wide_out;
	uint32_t	task_in;
} mmoe_widths;

void		mmoe_model_widths(const esmm_model *m, mmoe_widths *w);

#endif							/* ESMM_MMOE_MODEL_H */
