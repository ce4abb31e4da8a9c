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

typedef enum mmoe_wide_type
{
	MMOE_WIDE_FM = 0,
	MMOE_WIDE_LR = 1,
	MMOE_WIDE_RAW = 2			/* "anything else": the wide features themselves */
} mmoe_wide_type;

typedef enum mmoe_task_type
{
	MMOE_TASK_BINARY = 0,		/* BCE, sigmoid output */
	MMOE_TASK_REGRESSION = 1	/* MSE, no output activation */
} mmoe_task_type;

typedef struct mmoe_arch
{
	uint32_t	n_tasks;		/* = schema.n_labels, in label order */
	uint8_t		task_type[ESMM_MAX_LABELS];	/* mmoe_task_type */
	float		loss_weights[ESMM_MAX_LABELS];
	uint8_t		task_output_sigmoid;	/* task_output_act: sigmoid (1) or none */

	uint32_t	n_experts;
	esmm_tower_spec expert;		/* expert_layers; inputs = the mmoe group */
	uint8_t		gate_use_bias;
	float		gate_l1,
				gate_l2;
	uint8_t		share_gates;	/* one gate for every task: MoE */
	esmm_tower_spec task[ESMM_MAX_LABELS];	/* task_structs, ending in width 1 */

	uint8_t		use_wide;
	uint8_t		wide_type;		/* mmoe_wide_type */
	uint32_t	wide_width;		/* FM latent width */
	float		wide_l1,
				wide_l2;
	uint32_t	n_wide_inputs;
	uint16_t	wide_inputs[ESMM_MAX_FEATURES];	/* the wide group */
	uint8_t		feature_cross;	/* 0..5, seed 002's meanings */
	uint8_t		output_cross;	/* 0: add the wide output to each logit */

	float		l2_embedding;
} mmoe_arch;

/* Whether feature_cross puts the wide features into experts and gates. */
static inline int
mmoe_wide_into_experts(const mmoe_arch *a)
{
	return a->use_wide && a->feature_cross >= 1 && a->feature_cross <= 3;
}

/* What feature_cross puts into each task tower: 0 nothing, 1 the wide
 * features, 2 the wide model's output. */
static inline int
mmoe_wide_into_tasks(const mmoe_arch *a)
{
	if (!a->use_wide)
		return 0;
	if (a->feature_cross == 2 || a->feature_cross == 4)
		return 1;
	if (a->feature_cross == 3 || a->feature_cross == 5)
		return 2;
	return 0;
}

#endif							/* ESMM_MMOE_MODEL_H */
