/* optim.c: adam, adagrad, sgd and rmsprop on contiguous parameter runs. */
#include <math.h>

#include "optim.h"

void
esmm_optim_defaults(esmm_optim_spec *o, esmm_optim_kind kind)
{
	o->kind = kind;
	o->learning_rate = kind == ESMM_OPTIM_SGD ? 0.01f : 0.001f;
	o->beta_1 = 0.9f;
	o->beta_2 = 0.999f;
	o->epsilon = 1e-7f;
	o->momentum = 0.0f;
	o->rho = 0.9f;
	o->initial_accumulator_value = 0.1f;
}

float
esmm_optim_m1_init(const esmm_optim_spec *o)
{
	return o->kind == ESMM_OPTIM_ADAGRAD ? o->initial_accumulator_value : 0.0f;
}

void
esmm_optim_begin(esmm_optim_coef *c, const esmm_optim_spec *o, uint64_t t)
{
	c->spec = *o;
	c->inv_c1 = c->inv_c2 = 1.0f;
	if (o->kind == ESMM_OPTIM_ADAM)
	{
		/* bias corrections folded into the step size, as in Kingma & Ba */
		c->inv_c1 = (float) (1.0 / (1.0 - pow(o->beta_1, (double) t)));
		c->inv_c2 = (float) (1.0 / (1.0 - pow(o->beta_2, (double) t)));
	}
}

ESMM_TARGET_CLONES void
esmm_optim_apply(const esmm_optim_coef *c, float *w, const float *g,
				 float *m1, float *m2, size_t n)
{
	const esmm_optim_spec *o = &c->spec;
	const float lr = o->learning_rate;
	const float eps = o->epsilon;

	switch ((esmm_optim_kind) o->kind)
	{
		case ESMM_OPTIM_ADAM:
			{
				const float b1 = o->beta_1;
				const float b2 = o->beta_2;
				const float inv_c1 = c->inv_c1;
				const float inv_c2 = c->inv_c2;

				for (size_t i = 0; i < n; i++)
				{
					m1[i] = b1 * m1[i] + (1.0f - b1) * g[i];
					m2[i] = b2 * m2[i] + (1.0f - b2) * g[i] * g[i];
					w[i] -= lr * (m1[i] * inv_c1) / (sqrtf(m2[i] * inv_c2) + eps);
				}
				break;
			}
		case ESMM_OPTIM_ADAGRAD:
			for (size_t i = 0; i < n; i++)
			{
				m1[i] += g[i] * g[i];
				w[i] -= lr * g[i] / (sqrtf(m1[i]) + eps);
			}
			break;
		case ESMM_OPTIM_SGD:
			for (size_t i = 0; i < n; i++)
			{
				m1[i] = o->momentum * m1[i] - lr * g[i];
				w[i] += m1[i];
			}
			break;
		case ESMM_OPTIM_RMSPROP:
			for (size_t i = 0; i < n; i++)
			{
				const float rho = o->rho;

				m1[i] = rho * m1[i] + (1.0f - rho) * g[i] * g[i];
				m2[i] = o->momentum * m2[i] + lr * g[i] / (sqrtf(m1[i]) + eps);
				w[i] -= m2[i];
			}
			break;
	}
}

void
esmm_optim_step(const esmm_optim_spec *o, float *w, const float *g,
				float *m1, float *m2, size_t n, uint64_t t)
{
	esmm_optim_coef c;

	esmm_optim_begin(&c, o, t);
	esmm_optim_apply(&c, w, g, m1, m2, n);
}

void
esmm_reg_grad(float *g, const float *w, size_t n, float l1, float l2)
{
	if (l1 == 0.0f && l2 == 0.0f)
		return;
	for (size_t i = 0; i < n; i++)
	{
		float		sign = (w[i] > 0.0f) - (w[i] < 0.0f);

		g[i] += l1 * sign + 2.0f * l2 * w[i];
	}
}

double
esmm_reg_loss(const float *w, size_t n, float l1, float l2)
{
	double		s1 = 0.0,
				s2 = 0.0;

	if (l1 == 0.0f && l2 == 0.0f)
		return 0.0;
	for (size_t i = 0; i < n; i++)
	{
		s1 += fabs((double) w[i]);
		s2 += (double) w[i] * w[i];
	}
	return l1 * s1 + l2 * s2;
}
