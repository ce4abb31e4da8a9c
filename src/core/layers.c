/*
 * layers.c: the forward/backward kernels of the core, on plain float
 * buffers.  See layers.h for shapes and semantics.
 *
 * Reductions over a batch are carried in double where that costs nothing,
 * so that a result depends little on the batch size.  Nothing here is
 * parallel: the caller splits the work between threads.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "layers.h"

#define ESMM_SQRT1_2 0.70710678118654752440	/* 1/sqrt(2) */
#define ESMM_INV_SQRT_2PI 0.39894228040143267794	/* 1/sqrt(2 pi) */
#define ESMM_2PI 6.28318530717958647693
#define ESMM_LRELU_SLOPE 0.2f

/* ------------------------------------------------------------------ dense */

void
esmm_dense_forward(float *y, const float *x, const float *W,
				   const float *b, int B, int in, int out)
{
	float		beta = 0.0f;

	if (B <= 0 || out <= 0)
		return;
	if (b != NULL)
	{
		/* let sgemm add onto the broadcast bias (beta = 1) */
		for (int r = 0; r < B; r++)
			esmm_copy_floats(y + (size_t) r * out, b, (size_t) out);
		beta = 1.0f;
	}
	if (in <= 0)
	{
		/* an empty sum; sgemm would reject lda = 0 */
		if (b == NULL)
			for (size_t i = 0; i < (size_t) B * out; i++)
				y[i] = 0.0f;
		return;
	}
	/* one row (per-row scoring): sgemm would pack W for a single dot per
	 * column; sgemv reads it once.  y[out] = W^T[out,in] x[in] */
	if (B == 1)
		cblas_sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, W, out, x, 1, beta, y, 1);
	else
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, out, in,
					1.0f, x, in, W, out, beta, y, out);
}

void
esmm_dense_forward_naive(float *y, const float *x, const float *W,
						 const float *b, int B, int in, int out)
{
	for (int r = 0; r < B; r++)
		for (int o = 0; o < out; o++)
		{
			double		s = b != NULL ? b[o] : 0.0;

			for (int i = 0; i < in; i++)
				s += (double) x[(size_t) r * in + i] * W[(size_t) i * out + o];
			y[(size_t) r * out + o] = (float) s;
		}
}

ESMM_TARGET_CLONES void
esmm_dense_backward(float *dx, float *dW, float *db,
					const float *dy, const float *x, const float *W,
					const float *Wt, int B, int in, int out)
{
	if (B <= 0)
		return;
	if (db != NULL)
		for (int r = 0; r < B; r++)
			for (int o = 0; o < out; o++)
				db[o] += dy[(size_t) r * out + o];
	if (in <= 0)
		return;
	if (out <= 0)
	{
		if (dx != NULL)
			for (size_t i = 0; i < (size_t) B * in; i++)
				dx[i] = 0.0f;
		return;
	}
	/* dW[in,out] += x^T[in,B] dy[B,out] */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, B,
				1.0f, x, in, dy, out, 1.0f, dW, out);
	/* dx[B,in] = dy[B,out] W^T[out,in] */
	if (dx != NULL && Wt != NULL)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out,
					1.0f, dy, out, Wt, in, 0.0f, dx, in);
	else if (dx != NULL)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, in, out,
					1.0f, dy, out, W, out, 0.0f, dx, in);
}

void
esmm_transpose(float *dst, const float *src, int rows, int cols)
{
	for (int c = 0; c < cols; c++)
		for (int r = 0; r < rows; r++)
			dst[(size_t) c * rows + r] = src[(size_t) r * cols + c];
}

void
esmm_dense_backward_naive(float *dx, float *dW, float *db,
						  const float *dy, const float *x,
						  const float *W, int B, int in, int out)
{
	for (int o = 0; o < out; o++)
	{
		if (db != NULL)
		{
			double		s = 0.0;

			for (int r = 0; r < B; r++)
				s += dy[(size_t) r * out + o];
			db[o] += (float) s;
		}
		for (int i = 0; i < in; i++)
		{
			double		s = 0.0;

			for (int r = 0; r < B; r++)
				s += (double) x[(size_t) r * in + i] * dy[(size_t) r * out + o];
			dW[(size_t) i * out + o] += (float) s;
		}
	}
	if (dx == NULL)
		return;
	for (int r = 0; r < B; r++)
		for (int i = 0; i < in; i++)
		{
			double		s = 0.0;

			for (int o = 0; o < out; o++)
				s += (double) dy[(size_t) r * out + o] * W[(size_t) i * out + o];
			dx[(size_t) r * in + i] = (float) s;
		}
}

/* ------------------------------------------------------------ activations */

/* exp() only ever sees a non-positive argument, so neither tail overflows */
static inline float
sigmoid_f(float x)
{
	float		e;

	if (x >= 0.0f)
		return 1.0f / (1.0f + expf(-x));
	e = expf(x);
	return e / (1.0f + e);
}

static inline double
sigmoid_d(double x)
{
	double		e;

	if (x >= 0.0)
		return 1.0 / (1.0 + exp(-x));
	e = exp(x);
	return e / (1.0 + e);
}

/*
 * Unknown activation codes act as the identity: the caller validated the
 * configuration, and this layer has no way to report an error.
 */
ESMM_TARGET_CLONES void
esmm_act_forward(float *y, const float *x, size_t n, esmm_act act)
{
	switch (act)
	{
		case ESMM_ACT_RELU:
			for (size_t i = 0; i < n; i++)
				y[i] = x[i] > 0.0f ? x[i] : 0.0f;
			break;
		case ESMM_ACT_LRELU:
			for (size_t i = 0; i < n; i++)
				y[i] = x[i] * (x[i] > 0.0f ? 1.0f : ESMM_LRELU_SLOPE);
			break;
		case ESMM_ACT_SIGMOID:
			for (size_t i = 0; i < n; i++)
				y[i] = sigmoid_f(x[i]);
			break;
		case ESMM_ACT_TANH:
			for (size_t i = 0; i < n; i++)
				y[i] = tanhf(x[i]);
			break;
		case ESMM_ACT_ELU:
			/* expm1 keeps the precision near zero */
			for (size_t i = 0; i < n; i++)
				y[i] = x[i] > 0.0f ? x[i] : expm1f(x[i]);
			break;
		case ESMM_ACT_GELU:
			for (size_t i = 0; i < n; i++)
			{
				float		v = x[i];

				y[i] = 0.5f * v * (1.0f + erff(v * (float) ESMM_SQRT1_2));
			}
			break;
		case ESMM_ACT_SWISH:
			for (size_t i = 0; i < n; i++)
			{
				float		v = x[i];

				y[i] = v * sigmoid_f(v);
			}
			break;
		default:
			if (y != x)
				memmove(y, x, n * sizeof(float));
			break;
	}
}

/*
 * What each activation reads: relu, lrelu and elu take x when it is not
 * NULL and y otherwise (the sign of y is the sign of x); sigmoid and tanh
 * take y when it is not NULL and recompute it from x otherwise; gelu and
 * swish need x; none needs neither.  Each element is read before dx[i] is
 * written, which is what makes dx == dy safe.
 */
ESMM_TARGET_CLONES void
esmm_act_backward(float *dx, const float *dy, const float *x,
				  const float *y, size_t n, esmm_act act)
{
	switch (act)
	{
		case ESMM_ACT_RELU:
			{
				const float *s = x != NULL ? x : y;

				for (size_t i = 0; i < n; i++)
					dx[i] = s[i] > 0.0f ? dy[i] : 0.0f;
			}
			break;
		case ESMM_ACT_LRELU:
			{
				const float *s = x != NULL ? x : y;

				for (size_t i = 0; i < n; i++)
					dx[i] = dy[i] * (s[i] > 0.0f ? 1.0f : ESMM_LRELU_SLOPE);
			}
			break;
		case ESMM_ACT_SIGMOID:
			for (size_t i = 0; i < n; i++)
			{
				float		s = y != NULL ? y[i] : sigmoid_f(x[i]);

				dx[i] = dy[i] * s * (1.0f - s);
			}
			break;
		case ESMM_ACT_TANH:
			for (size_t i = 0; i < n; i++)
			{
				float		t = y != NULL ? y[i] : tanhf(x[i]);

				dx[i] = dy[i] * (1.0f - t * t);
			}
			break;
		case ESMM_ACT_ELU:
			if (x != NULL)
				for (size_t i = 0; i < n; i++)
				{
					float		v = x[i];

					dx[i] = v > 0.0f ? dy[i] : dy[i] * expf(v);
				}
			else
				/* below zero, elu' = exp(x) = y + 1 */
				for (size_t i = 0; i < n; i++)
				{
					float		v = y[i];

					dx[i] = v > 0.0f ? dy[i] : dy[i] * (v + 1.0f);
				}
			break;
		case ESMM_ACT_GELU:
			/* Phi(x) + x phi(x) */
			for (size_t i = 0; i < n; i++)
			{
				float		v = x[i];
				float		cdf = 0.5f * (1.0f + erff(v * (float) ESMM_SQRT1_2));
				float		pdf = (float) ESMM_INV_SQRT_2PI * expf(-0.5f * v * v);

				dx[i] = dy[i] * (cdf + v * pdf);
			}
			break;
		case ESMM_ACT_SWISH:
			/* s + x s (1-s), written so that x s (1-s) -> 0 in both tails */
			for (size_t i = 0; i < n; i++)
			{
				float		v = x[i];
				float		s = sigmoid_f(v);

				dx[i] = dy[i] * (s + v * s * (1.0f - s));
			}
			break;
		default:
			if (dx != dy)
				memmove(dx, dy, n * sizeof(float));
			break;
	}
}

/* ------------------------------------------------------------- batch norm */

/*
 * The running variance is updated with the biased batch variance, the one
 * used to normalize.  That is what Keras' non-fused BatchNormalization
 * does, which is the path it takes for 2-D (dense) inputs; PyTorch would
 * use the unbiased one.  Columns are walked with stride n, trading cache
 * locality for two-pass statistics in double without scratch memory.
 * y may equal x: column j is read in full before any of it is written.
 */
void
esmm_bn_forward_train(float *y, float *xhat, float *inv_std,
					  float *running_mean, float *running_var,
					  const float *x, const float *gamma,
					  const float *beta, int B, int n)
{
	const double m = ESMM_BN_MOMENTUM;

	if (B <= 0)
		return;
	for (int j = 0; j < n; j++)
	{
		double		sum = 0.0;
		double		ss = 0.0;
		double		mean;
		double		var;
		double		istd;

		for (int r = 0; r < B; r++)
			sum += x[(size_t) r * n + j];
		mean = sum / B;
		for (int r = 0; r < B; r++)
		{
			double		d = x[(size_t) r * n + j] - mean;

			ss += d * d;
		}
		var = ss / B;
		istd = 1.0 / sqrt(var + (double) ESMM_BN_EPSILON);
		inv_std[j] = (float) istd;
		for (int r = 0; r < B; r++)
		{
			size_t		k = (size_t) r * n + j;
			float		xh = (float) ((x[k] - mean) * istd);

			xhat[k] = xh;
			y[k] = gamma[j] * xh + beta[j];
		}
		running_mean[j] = (float) (m * running_mean[j] + (1.0 - m) * mean);
		running_var[j] = (float) (m * running_var[j] + (1.0 - m) * var);
	}
}

void
esmm_bn_forward_infer(float *y, const float *x, const float *gamma,
					  const float *beta, const float *running_mean,
					  const float *running_var, int B, int n)
{
	for (int j = 0; j < n; j++)
	{
		float		istd = 1.0f / sqrtf(running_var[j] + ESMM_BN_EPSILON);

		for (int r = 0; r < B; r++)
		{
			size_t		k = (size_t) r * n + j;

			y[k] = gamma[j] * ((x[k] - running_mean[j]) * istd) + beta[j];
		}
	}
}

/*
 * With g = dy * gamma:
 * dx = inv_std * (g - mean_b(g) - xhat * mean_b(g * xhat)).
 */
void
esmm_bn_backward(float *dx, float *dgamma, float *dbeta,
				 const float *dy, const float *xhat,
				 const float *inv_std, const float *gamma,
				 int B, int n)
{
	if (B <= 0)
		return;
	for (int j = 0; j < n; j++)
	{
		double		sum_dy = 0.0;
		double		sum_dy_xhat = 0.0;
		double		mean_g;
		double		mean_g_xhat;

		for (int r = 0; r < B; r++)
		{
			size_t		k = (size_t) r * n + j;

			sum_dy += dy[k];
			sum_dy_xhat += (double) dy[k] * xhat[k];
		}
		dgamma[j] += (float) sum_dy_xhat;
		dbeta[j] += (float) sum_dy;
		mean_g = gamma[j] * sum_dy / B;
		mean_g_xhat = gamma[j] * sum_dy_xhat / B;
		for (int r = 0; r < B; r++)
		{
			size_t		k = (size_t) r * n + j;
			double		g = (double) gamma[j] * dy[k];

			dx[k] = (float) (inv_std[j] * (g - mean_g - xhat[k] * mean_g_xhat));
		}
	}
}

/* ---------------------------------------------------------------- dropout */

/*
 * rate 0 draws nothing, so that a model without dropout leaves the
 * generator where it was.  A rate of 1 or more (outside the contract)
 * drops everything rather than dividing by zero.
 */
void
esmm_dropout_forward(float *y, float *mask, const float *x,
					 size_t n, float rate, uint64_t *rng)
{
	float		keep;

	if (rate <= 0.0f)
	{
		for (size_t i = 0; i < n; i++)
		{
			mask[i] = 1.0f;
			y[i] = x[i];
		}
		return;
	}
	keep = rate < 1.0f ? 1.0f / (1.0f - rate) : 0.0f;
	for (size_t i = 0; i < n; i++)
	{
		mask[i] = esmm_rng_uniform(rng) < rate ? 0.0f : keep;
		y[i] = x[i] * mask[i];
	}
}

void
esmm_dropout_backward(float *dx, const float *dy, const float *mask,
					  size_t n)
{
	for (size_t i = 0; i < n; i++)
		dx[i] = dy[i] * mask[i];
}

/* -------------------------------------------------------------- embedding */

/* Ids are trusted: the caller mapped them into [0, rows). */
void
esmm_embedding_forward(float *out, const int32_t *ids,
					   const float *table, int B, int dim,
					   int out_stride)
{
	if (dim <= 0)
		return;
	for (int r = 0; r < B; r++)
		esmm_copy_floats(out + (size_t) r * out_stride,
						 table + (size_t) ids[r] * dim, (size_t) dim);
}

ESMM_TARGET_CLONES void
esmm_embedding_backward(float *dtable, const float *dout,
						const int32_t *ids, int B, int dim,
						int out_stride)
{
	for (int r = 0; r < B; r++)
	{
		float	   *t = dtable + (size_t) ids[r] * dim;
		const float *g = dout + (size_t) r * out_stride;

		for (int j = 0; j < dim; j++)
			t[j] += g[j];
	}
}

/*
 * The list of row r is ids[offsets[r] .. offsets[r+1]-1]; a list that is
 * empty (or malformed, offsets[r+1] < offsets[r]) stands for missing_id.
 * Sets *first and returns the count, 0 meaning "use missing_id".
 */
static inline uint32_t
mean_list(const uint32_t *offsets, int r, uint32_t *first)
{
	*first = offsets[r];
	return offsets[r + 1] > offsets[r] ? offsets[r + 1] - offsets[r] : 0;
}

/* A list id outside the table [0, missing_id] reads the missing row: the
 * ids come from callers the core cannot vouch for. */
static inline int32_t
list_id(int32_t id, int32_t missing_id)
{
	return (id < 0 || id > missing_id) ? missing_id : id;
}

void
esmm_embedding_mean_forward(float *out, const uint32_t *offsets,
							const int32_t *ids, const float *table,
							int32_t missing_id, int B, int dim,
							int out_stride)
{
	if (dim <= 0)
		return;
	for (int r = 0; r < B; r++)
	{
		float	   *o = out + (size_t) r * out_stride;
		uint32_t	first;
		uint32_t	count = mean_list(offsets, r, &first);
		float		w;

		if (count == 0)
		{
			esmm_copy_floats(o, table + (size_t) missing_id * dim, (size_t) dim);
			continue;
		}
		/* accumulate in place: out is the only memory we may use */
		esmm_copy_floats(o, table + (size_t) list_id(ids[first], missing_id) * dim,
						 (size_t) dim);
		for (uint32_t k = 1; k < count; k++)
		{
			const float *t = table + (size_t) list_id(ids[first + k], missing_id) * dim;

			for (int j = 0; j < dim; j++)
				o[j] += t[j];
		}
		w = 1.0f / (float) count;
		for (int j = 0; j < dim; j++)
			o[j] *= w;
	}
}

void
esmm_embedding_mean_backward(float *dtable, const float *dout,
							 const uint32_t *offsets,
							 const int32_t *ids, int32_t missing_id,
							 int B, int dim, int out_stride)
{
	for (int r = 0; r < B; r++)
	{
		const float *g = dout + (size_t) r * out_stride;
		uint32_t	first;
		uint32_t	count = mean_list(offsets, r, &first);
		float		w;

		if (count == 0)
		{
			float	   *t = dtable + (size_t) missing_id * dim;

			for (int j = 0; j < dim; j++)
				t[j] += g[j];
			continue;
		}
		w = 1.0f / (float) count;
		for (uint32_t k = 0; k < count; k++)
		{
			float	   *t = dtable + (size_t) list_id(ids[first + k], missing_id) * dim;

			for (int j = 0; j < dim; j++)
				t[j] += g[j] * w;
		}
	}
}

/* ----------------------------------------------------------------- losses */

/* log(1 - sigmoid(z)) is esmm_log_sigmoid(-z). */
double
esmm_log_sigmoid(double z)
{
	if (z >= 0.0)
		return -log1p(exp(-z));
	return z - log1p(exp(z));
}

/* log(exp(u) + exp(v) + exp(w)), shifted by the largest term */
static double
logsumexp3(double u, double v, double w)
{
	double		m = u;

	if (v > m)
		m = v;
	if (w > m)
		m = w;
	return m + log(exp(u - m) + exp(v - m) + exp(w - m));
}

/*
 * The loss is softplus(z) - y z, which equals
 * -(y log sigmoid(z) + (1-y) log(1 - sigmoid(z))) for any y in [0,1].
 */
double
esmm_bce_logits(float *dz, const float *z, const float *y, int B,
				float scale)
{
	double		total = 0.0;

	for (int r = 0; r < B; r++)
	{
		double		zr = z[r];
		double		yr = y[r];

		total += (zr > 0.0 ? zr : 0.0) - yr * zr + log1p(exp(-fabs(zr)));
		if (dz != NULL)
			dz[r] = (float) ((sigmoid_d(zr) - yr) * scale);
	}
	return total;
}

/*
 * 1 - sigmoid(a) sigmoid(b) = sigmoid(a) sigmoid(b) (e^-a + e^-b + e^-a-b),
 * which gives log(1-p) without forming 1-p.  In the gradient,
 * 1 + e^(a-b) + e^-b >= 1, and when an exp() overflows to inf the quotient
 * is an honest 0 (its limit), never inf/inf.
 */
double
esmm_bce_product_logits(float *da, float *db, const float *a,
						const float *b, const float *y, int B,
						float scale)
{
	double		total = 0.0;

	for (int r = 0; r < B; r++)
	{
		double		ar = a[r];
		double		br = b[r];
		double		yr = y[r];
		double		ls = esmm_log_sigmoid(ar) + esmm_log_sigmoid(br);
		double		log_p = ls;
		double		log_1mp = logsumexp3(-ar, -br, -ar - br) + ls;

		total -= yr * log_p + (1.0 - yr) * log_1mp;
		if (da != NULL)
		{
			double		g = (1.0 - yr) * sigmoid_d(ar) /
				(1.0 + exp(ar - br) + exp(-br)) - yr * sigmoid_d(-ar);

			da[r] += (float) (g * scale);
		}
		if (db != NULL)
		{
			double		g = (1.0 - yr) * sigmoid_d(br) /
				(1.0 + exp(br - ar) + exp(-ar)) - yr * sigmoid_d(-br);

			db[r] += (float) (g * scale);
		}
	}
	return total;
}

/*
 * log(1 + x) for x > -1 through logf, which glibc makes several times
 * faster than log1pf: with u = 1 + x rounded, log(u) x / (u - 1) cancels
 * the rounding of u (Goldberg's trick), within a few ulps.
 */
static inline float
log1p_via_logf(float x)
{
	float		u = 1.0f + x;

	return u == 1.0f ? x : logf(u) * x / (u - 1.0f);
}

/* Beyond this |logit|, e^-|logit| leaves float's normal range in the
 * product's 1 - p: such rows take the double path. */
#define ESMM_FAST_LOSS_MAX_LOGIT 30.0f

void
esmm_ctr_ctcvr_loss(float *da, float *db, const float *a, const float *b,
					const float *y_click, const float *y_ctcvr, int B,
					float w_ctr, float w_ctcvr, double *loss_ctr, double *loss_ctcvr)
{
	for (int r = 0; r < B; r++)
	{
		const float ar = a[r],
					br = b[r],
					y0 = y_click[r],
					y1 = y_ctcvr[r];
		float		ea,
					eb,
					la,
					lb,
					sa,
					sna,
					sb,
					snb,
					q,
					g;

		if (!(fabsf(ar) <= ESMM_FAST_LOSS_MAX_LOGIT && fabsf(br) <= ESMM_FAST_LOSS_MAX_LOGIT))
		{
			*loss_ctr += esmm_bce_logits(&da[r], &a[r], &y_click[r], 1, w_ctr);
			db[r] = 0.0f;
			*loss_ctcvr += esmm_bce_product_logits(&da[r], &db[r], &a[r], &b[r], &y_ctcvr[r], 1,
												   w_ctcvr);
			continue;
		}
		/* sigmoid(z) and sigmoid(-z) from e^-|z|, without cancellation */
		ea = expf(-fabsf(ar));
		eb = expf(-fabsf(br));
		la = log1p_via_logf(ea);
		lb = log1p_via_logf(eb);
		sa = (ar >= 0.0f ? 1.0f : ea) / (1.0f + ea);
		sna = (ar >= 0.0f ? ea : 1.0f) / (1.0f + ea);
		sb = (br >= 0.0f ? 1.0f : eb) / (1.0f + eb);
		snb = (br >= 0.0f ? eb : 1.0f) / (1.0f + eb);

		/*
		 * softplus(a) - y a = (1 - y) a + log1p(e^-a) for a >= 0, and
		 * -y a + log1p(e^a) below; its gradient sigmoid(a) - y, as
		 * (1 - y) - sigmoid(-a) for a >= 0.  Both forms keep their
		 * digits where float's 12 + 6e-6 - 12 or 1 - tiny would not.
		 */
		*loss_ctr += (double) ((ar >= 0.0f ? (1.0f - y0) * ar : -y0 * ar) + la);
		da[r] = (ar >= 0.0f ? (1.0f - y0) - sna : sa - y0) * w_ctr;

		/*
		 * p = sa sb, and 1 - p = sna + sa snb: a sum of two positive terms,
		 * so log(1 - p) keeps its digits as p nears 1.  d log p / da =
		 * sna; d log(1-p) / da = -p sna / (1-p).
		 */
		q = sna + sa * snb;
		*loss_ctcvr -= (double) (y1 * (fminf(ar, 0.0f) - la + fminf(br, 0.0f) - lb) +
								 (1.0f - y1) * (q > 0.5f ? log1p_via_logf(-sa * sb) : logf(q)));
		g = (1.0f - y1) * (sa * sb / q) - y1;
		da[r] += sna * g * w_ctcvr;
		db[r] = snb * g * w_ctcvr;
	}
}

double
esmm_mse(float *dp, const float *p, const float *y, int B, float scale)
{
	double		total = 0.0;

	for (int r = 0; r < B; r++)
	{
		double		d = (double) p[r] - y[r];

		total += d * d;
		if (dp != NULL)
			dp[r] = (float) (2.0 * d * scale);
	}
	return total;
}

/* -------------------------------------------------------------------- rng */

uint64_t
esmm_rng_next(uint64_t *state)
{
	return esmm_mix64(*state += UINT64_C(0x9E3779B97F4A7C15));
}

/* 24 bits: every value is exact in a float, and the largest is below 1 */
float
esmm_rng_uniform(uint64_t *state)
{
	return (float) (esmm_rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

/*
 * Box-Muller on two 53-bit uniforms, keeping one of the pair.  u1 is in
 * (0,1], so log(u1) is finite; the tails reach about 8.6 sigma.
 */
float
esmm_rng_normal(uint64_t *state)
{
	double		u1 = ((esmm_rng_next(state) >> 11) + 1) * (1.0 / 9007199254740992.0);
	double		u2 = (esmm_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);

	return (float) (sqrt(-2.0 * log(u1)) * cos(ESMM_2PI * u2));
}

/* ---------------------------------------------------------- mixture of experts */

void
esmm_softmax_forward(float *y, const float *x, int B, int n)
{
	for (int b = 0; b < B; b++)
	{
		const float *xr = x + (size_t) b * n;
		float	   *yr = y + (size_t) b * n;
		float		mx = xr[0],
					sum = 0.0f;

		for (int i = 1; i < n; i++)
			if (xr[i] > mx)
				mx = xr[i];
		for (int i = 0; i < n; i++)
		{
			yr[i] = expf(xr[i] - mx);
			sum += yr[i];
		}
		for (int i = 0; i < n; i++)
			yr[i] /= sum;
	}
}

void
esmm_softmax_backward(float *dx, const float *dy, const float *y, int B, int n)
{
	for (int b = 0; b < B; b++)
	{
		const float *dyr = dy + (size_t) b * n,
				   *yr = y + (size_t) b * n;
		float	   *dxr = dx + (size_t) b * n;
		float		dot = 0.0f;

		for (int i = 0; i < n; i++)
			dot += yr[i] * dyr[i];
		for (int i = 0; i < n; i++)
			dxr[i] = yr[i] * (dyr[i] - dot);
	}
}

void
esmm_mixture_forward(float *h, const float *g, const float *const *e, int B,
					 int K, int H)
{
	memset(h, 0, (size_t) B * H * sizeof(float));
	for (int k = 0; k < K; k++)
		for (int b = 0; b < B; b++)
		{
			const float gk = g[(size_t) b * K + k];
			const float *er = e[k] + (size_t) b * H;
			float	   *hr = h + (size_t) b * H;

			for (int j = 0; j < H; j++)
				hr[j] += gk * er[j];
		}
}

void
esmm_mixture_backward(float *const *de, float *dg, const float *dh,
					  const float *g, const float *const *e, int B, int K,
					  int H)
{
	for (int k = 0; k < K; k++)
		for (int b = 0; b < B; b++)
		{
			const float gk = g[(size_t) b * K + k];
			const float *er = e[k] + (size_t) b * H,
					   *dhr = dh + (size_t) b * H;
			float		dot = 0.0f;

			for (int j = 0; j < H; j++)
				dot += dhr[j] * er[j];
			dg[(size_t) b * K + k] = dot;
			if (de != NULL)
			{
				float	   *der = de[k] + (size_t) b * H;

				for (int j = 0; j < H; j++)
					der[j] += gk * dhr[j];
			}
		}
}

/* ------------------------------------------------ factorization machine */

void
esmm_fm_forward(float *y, const float *e, int B, int n, int k)
{
	for (int b = 0; b < B; b++)
	{
		const float *eb = e + (size_t) b * n * k;
		double		out = 0.0;

		for (int f = 0; f < k; f++)
		{
			double		sum = 0.0,
						sq = 0.0;

			for (int i = 0; i < n; i++)
			{
				double		v = eb[(size_t) i * k + f];

				sum += v;
				sq += v * v;
			}
			out += sum * sum - sq;
		}
		y[b] = (float) (0.5 * out);
	}
}

void
esmm_fm_backward(float *de, const float *dy, const float *e, int B, int n, int k)
{
	for (int b = 0; b < B; b++)
	{
		const float *eb = e + (size_t) b * n * k;
		float	   *db = de + (size_t) b * n * k;

		for (int f = 0; f < k; f++)
		{
			float		sum = 0.0f;

			for (int i = 0; i < n; i++)
				sum += eb[(size_t) i * k + f];
			for (int i = 0; i < n; i++)
				db[(size_t) i * k + f] = dy[b] * (sum - eb[(size_t) i * k + f]);
		}
	}
}
