/* stack.c: a stack of dense layers, forward and backward (see stack.h). */
#include <math.h>
#include <string.h>

#include "layers.h"
#include "optim.h"
#include "stack.h"

/* Reserves n floats at *cursor; returns the offset, or fails on overflow. */
static int
reserve(size_t *cursor, size_t n, size_t *off)
{
	*off = *cursor;
	return esmm_size_add(*cursor, n, cursor);
}

int
esmm_stack_layout(esmm_stack *s, uint32_t in, size_t *cursor, size_t *scursor)
{
	for (uint32_t l = 0; l < s->spec->n_layers; l++)
	{
		const esmm_layer_spec *ly = &s->spec->layers[l];
		esmm_layer_ref *r = &s->ref[l];
		size_t		n;

		r->in = in;
		r->out = ly->units;
		r->b = r->gamma = r->beta = r->run_mean = r->run_var = ESMM_NO_OFFSET;
		if (!esmm_size_mul(in, ly->units, &n) || !reserve(cursor, n, &r->W) ||
			(ly->use_bias && !reserve(cursor, ly->units, &r->b)) ||
			(ly->use_bn && (!reserve(cursor, ly->units, &r->gamma) ||
							!reserve(cursor, ly->units, &r->beta) ||
							!reserve(scursor, ly->units, &r->run_mean) ||
							!reserve(scursor, ly->units, &r->run_var))))
			return 0;
		in = ly->units;
	}
	return 1;
}

uint32_t
esmm_stack_max_width(const esmm_stack *s)
{
	uint32_t	w = 1;

	for (uint32_t l = 0; l < s->spec->n_layers; l++)
		if (s->ref[l].out > w)
			w = s->ref[l].out;
	return w;
}

uint64_t
esmm_tensor_stream(uint64_t seed, uint64_t tag)
{
	uint64_t	s = seed ^ (tag * 0x9E3779B97F4A7C15ULL);

	(void) esmm_rng_next(&s);
	return s;
}

void
esmm_fill_uniform(float *w, size_t n, float limit, uint64_t stream)
{
	for (size_t i = 0; i < n; i++)
		w[i] = (2.0f * esmm_rng_uniform(&stream) - 1.0f) * limit;
}

void
esmm_stack_init(const esmm_stack *s, float *params, float *state, uint64_t seed,
				uint64_t tag)
{
	for (uint32_t l = 0; l < s->spec->n_layers; l++)
	{
		const esmm_layer_ref *r = &s->ref[l];
		float		limit = sqrtf(6.0f / (float) (r->in + r->out));

		esmm_fill_uniform(params + r->W, (size_t) r->in * r->out, limit,
						  esmm_tensor_stream(seed, tag | l));
		if (r->gamma != ESMM_NO_OFFSET)
			for (uint32_t j = 0; j < r->out; j++)
			{
				params[r->gamma + j] = 1.0f;
				state[r->run_mean + j] = 0.0f;
				state[r->run_var + j] = 1.0f;
			}
	}
}

size_t
esmm_stack_carve(esmm_stack *s, float *work, size_t B)
{
	size_t		n = 0;

	for (uint32_t l = 0; l < s->spec->n_layers; l++)
	{
		const esmm_layer_spec *ly = &s->spec->layers[l];
		esmm_layer_acts *a = &s->acts[l];
		size_t		o = s->ref[l].out;
		/* batch norm's and dropout's buffers only for layers that have
		 * them: without either, a layer needs 2 of the 6 */
		size_t		bn = ly->use_bn ? 2 * B * o + o : 0,
					drop = ly->dropout > 0.0f ? 2 * B * o : 0;

		if (work != NULL)
		{
			float	   *p = work + n;

			a->pre = p;
			a->act = p + B * o;
			p += 2 * B * o;
			a->xhat = bn ? p : NULL;
			a->inv_std = bn ? p + B * o : NULL;
			a->bn = bn ? p + B * o + o : NULL;
			p += bn;
			a->mask = drop ? p : NULL;
			a->drop = drop ? p + B * o : NULL;
		}
		n += 2 * B * o + bn + drop;
	}
	return n;
}

/* p advanced by skip floats, or NULL for a buffer the layer lacks */
static inline float *
rows_from(float *p, size_t skip)
{
	return p != NULL ? p + skip : NULL;
}

esmm_stack
esmm_stack_rows(const esmm_stack *s, esmm_layer_acts *acts, size_t b0, size_t grad_base)
{
	esmm_stack	r = {s->spec, s->ref, acts, grad_base, s->wt, s->wt_base};

	for (uint32_t l = 0; l < s->spec->n_layers; l++)
	{
		const esmm_layer_acts *a = &s->acts[l];
		size_t		skip = b0 * s->ref[l].out;

		acts[l] = *a;
		acts[l].pre = a->pre + skip;
		acts[l].xhat = rows_from(a->xhat, skip);
		acts[l].bn = rows_from(a->bn, skip);
		acts[l].act = a->act + skip;
		acts[l].mask = rows_from(a->mask, skip);
		acts[l].drop = rows_from(a->drop, skip);
		acts[l].y = NULL;
	}
	return r;
}

const float *
esmm_stack_forward(const esmm_stack *s, const float *x, const float *params,
				   float *state, int B, int training, uint64_t *rng)
{
	for (uint32_t l = 0; l < s->spec->n_layers; l++)
	{
		const esmm_layer_spec *ly = &s->spec->layers[l];
		const esmm_layer_ref *r = &s->ref[l];
		esmm_layer_acts *a = &s->acts[l];
		const size_t n = (size_t) B * r->out;
		const float *h;

		esmm_dense_forward(a->pre, x, params + r->W,
						   r->b != ESMM_NO_OFFSET ? params + r->b : NULL,
						   B, (int) r->in, (int) r->out);
		h = a->pre;
		if (ly->use_bn)
		{
			if (training)
				esmm_bn_forward_train(a->bn, a->xhat, a->inv_std,
									  state + r->run_mean, state + r->run_var,
									  h, params + r->gamma, params + r->beta,
									  B, (int) r->out);
			else
				esmm_bn_forward_infer(a->bn, h, params + r->gamma, params + r->beta,
									  state + r->run_mean, state + r->run_var,
									  B, (int) r->out);
			h = a->bn;
		}
		esmm_act_forward(a->act, h, n, (esmm_act) ly->act);
		h = a->act;
		if (training && ly->dropout > 0.0f)
		{
			esmm_dropout_forward(a->drop, a->mask, h, n, ly->dropout, rng);
			h = a->drop;
		}
		a->y = h;
		x = h;
	}
	return x;
}

void
esmm_stack_backward(const esmm_stack *s, float *dx, const float *dy,
					const float *x, const float *params, float *grads, int B,
					float *sb, float *sc)
{
	for (int l = (int) s->spec->n_layers - 1; l >= 0; l--)
	{
		const esmm_layer_spec *ly = &s->spec->layers[l];
		const esmm_layer_ref *r = &s->ref[l];
		esmm_layer_acts *a = &s->acts[l];
		const size_t n = (size_t) B * r->out;
		const float *x_in = l == 0 ? x : s->acts[l - 1].y;
		const float *g,
				   *d = dy;

		if (ly->dropout > 0.0f)
		{
			esmm_dropout_backward(sb, dy, a->mask, n);
			d = sb;
		}
		/* consumes dy into sb, which dense_backward may then overwrite */
		esmm_act_backward(sb, d, ly->use_bn ? a->bn : a->pre, a->act, n,
						  (esmm_act) ly->act);
		g = sb;
		if (ly->use_bn)
		{
			esmm_bn_backward(sc, grads + (r->gamma - s->grad_base), grads + (r->beta - s->grad_base), sb,
							 a->xhat, a->inv_std, params + r->gamma, B, (int) r->out);
			g = sc;
		}
		/* dx doubles as the buffer between layers: dy was consumed into sb */
		esmm_dense_backward(dx, grads + (r->W - s->grad_base),
							r->b != ESMM_NO_OFFSET ? grads + (r->b - s->grad_base) : NULL,
							g, x_in, params + r->W,
							s->wt != NULL ? s->wt + (r->W - s->wt_base) : NULL,
							B, (int) r->in, (int) r->out);
		dy = dx;
	}
}

void
esmm_stack_transpose(const esmm_stack *s, const float *params, float *wt, size_t wt_base)
{
	for (uint32_t l = 0; l < s->spec->n_layers; l++)
	{
		const esmm_layer_ref *r = &s->ref[l];

		esmm_transpose(wt + (r->W - wt_base), params + r->W, (int) r->in, (int) r->out);
	}
}

double
esmm_stack_regularize(const esmm_stack *s, const float *params, float *grads)
{
	double		loss = 0.0;

	for (uint32_t l = 0; l < s->spec->n_layers; l++)
	{
		const esmm_layer_ref *r = &s->ref[l];
		size_t		n = (size_t) r->in * r->out;

		loss += esmm_reg_loss(params + r->W, n, s->spec->l1, s->spec->l2);
		esmm_reg_grad(grads + r->W, params + r->W, n, s->spec->l1, s->spec->l2);
	}
	return loss;
}

int
esmm_stack_variances_valid(const esmm_stack *s, const float *state)
{
	for (uint32_t l = 0; l < s->spec->n_layers; l++)
		for (uint32_t j = 0; s->ref[l].run_var != ESMM_NO_OFFSET && j < s->ref[l].out; j++)
			if (!(state[s->ref[l].run_var + j] >= 0.0f))
				return 0;
	return 1;
}
