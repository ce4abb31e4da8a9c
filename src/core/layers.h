/*
 * layers.h: forward/backward pairs on plain float buffers.
 *
 * Argument order is always: outputs, inputs, dims.  Backward functions
 * take the upstream gradient and write the downstream gradients; a
 * parameter gradient is ACCUMULATED (+=) so that a caller can sum over
 * several uses, while an input gradient is OVERWRITTEN (=).
 * Nothing here allocates, and nothing is thread-aware: the caller decides
 * what runs in parallel.
 */
#ifndef ESMM_LAYERS_H
#define ESMM_LAYERS_H

#include "esmm_core.h"

/* ------------------------------------------------------------------ dense */

/* y = x W + b.  y[B,out]; x[B,in]; W[in,out]; b[out] or NULL.
 * Uses cblas_sgemm. */
void		esmm_dense_forward(float *y, const float *x, const float *W,
							   const float *b, int B, int in, int out);

/* The naive-loop twin of esmm_dense_forward, kept for tests. */
void		esmm_dense_forward_naive(float *y, const float *x, const float *W,
									 const float *b, int B, int in, int out);

/* dW += x^T dy; db += sum_rows dy (when db is not NULL);
 * dx = dy W^T (when dx is not NULL).
 * dx[B,in]; dW[in,out]; db[out]; dy[B,out]; x[B,in]; W[in,out];
 * Wt[out,in], W transposed, or NULL.  With Wt, dx = dy Wt is a plain
 * product, which OpenBLAS runs about 1.4 times as fast as dy W^T on a
 * block's shapes (its small NN kernel against its NT one).
 * Uses cblas_sgemm. */
void		esmm_dense_backward(float *dx, float *dW, float *db,
								const float *dy, const float *x, const float *W,
								const float *Wt, int B, int in, int out);

/* dst[cols,rows] = src[rows,cols] transposed. */
void		esmm_transpose(float *dst, const float *src, int rows, int cols);

/* The naive-loop twin of esmm_dense_backward, kept for tests. */
void		esmm_dense_backward_naive(float *dx, float *dW, float *db,
									  const float *dy, const float *x,
									  const float *W, int B, int in, int out);

/* ------------------------------------------------------------ activations */

/* y = act(x), elementwise over n values.  y may equal x. */
void		esmm_act_forward(float *y, const float *x, size_t n, esmm_act act);

/* dx = dy * act'(x), from the layer's input x and output y (either may be
 * what a given activation needs).  dx may equal dy. */
void		esmm_act_backward(float *dx, const float *dy, const float *x,
							  const float *y, size_t n, esmm_act act);

/* ------------------------------------------------------------- batch norm */

#define ESMM_BN_EPSILON 1e-3f   /* Keras' BatchNormalization defaults */
#define ESMM_BN_MOMENTUM 0.99f

/*
 * Training mode: normalizes with the batch's mean and (biased) variance,
 * and moves the running statistics toward them:
 * running = momentum*running + (1-momentum)*batch.
 * y[B,n]; xhat[B,n] (saved for backward); inv_std[n] (saved);
 * running_mean[n], running_var[n] (updated); x[B,n]; gamma[n]; beta[n].
 */
void		esmm_bn_forward_train(float *y, float *xhat, float *inv_std,
								  float *running_mean, float *running_var,
								  const float *x, const float *gamma,
								  const float *beta, int B, int n);

/* Inference mode, with the running statistics.  y may equal x.
 * y[B,n]; x[B,n]; gamma[n]; beta[n]; running_mean[n]; running_var[n]. */
void		esmm_bn_forward_infer(float *y, const float *x, const float *gamma,
								  const float *beta, const float *running_mean,
								  const float *running_var, int B, int n);

/* dx = BN'(dy); dgamma += sum dy*xhat; dbeta += sum dy.
 * dx[B,n]; dgamma[n]; dbeta[n]; dy[B,n]; xhat[B,n]; inv_std[n]; gamma[n]. */
void		esmm_bn_backward(float *dx, float *dgamma, float *dbeta,
							 const float *dy, const float *xhat,
							 const float *inv_std, const float *gamma,
							 int B, int n);

/* ---------------------------------------------------------------- dropout */

/*
 * Inverted dropout, training only: mask[i] is 0 or 1/(1-rate), drawn from
 * the generator state *rng (splitmix64, advanced in place); y = x * mask.
 * y[n]; mask[n]; x[n].  rate in [0,1).  y may equal x.
 */
void		esmm_dropout_forward(float *y, float *mask, const float *x,
								 size_t n, float rate, uint64_t *rng);

/* dx = dy * mask.  dx may equal dy. */
void		esmm_dropout_backward(float *dx, const float *dy, const float *mask,
								  size_t n);

/* -------------------------------------------------------------- embedding */

/*
 * Writes each row's embedding into a strided output, so that features can
 * be concatenated in place: out[b*out_stride + j] = table[ids[b]*dim + j].
 * out[B, >=dim] (stride out_stride); ids[B]; table[rows,dim].
 */
void		esmm_embedding_forward(float *out, const int32_t *ids,
								   const float *table, int B, int dim,
								   int out_stride);

/* dtable[ids[b]] += dout[b] (strided like the forward).
 * dtable[rows,dim]; dout[B, >=dim]; ids[B]. */
void		esmm_embedding_backward(float *dtable, const float *dout,
									const int32_t *ids, int B, int dim,
									int out_stride);

/*
 * Mean-pooled multi-valued lookup: row b averages the rows
 * ids[offsets[b] .. offsets[b+1]-1]; an empty list gives the row
 * missing_id, and so does an id outside [0, missing_id].  out[B, >=dim] (stride out_stride); offsets[B+1]; ids[...].
 */
void		esmm_embedding_mean_forward(float *out, const uint32_t *offsets,
										const int32_t *ids, const float *table,
										int32_t missing_id, int B, int dim,
										int out_stride);

/* The backward of esmm_embedding_mean_forward: each looked-up row gets
 * dout[b] / count. */
void		esmm_embedding_mean_backward(float *dtable, const float *dout,
										 const uint32_t *offsets,
										 const int32_t *ids, int32_t missing_id,
										 int B, int dim, int out_stride);

/* ---------------------------------------------------------- mixture of experts */

/* Row-wise softmax, shifted by the row's maximum.  y[B,n]; x[B,n]; y may
 * equal x. */
void		esmm_softmax_forward(float *y, const float *x, int B, int n);

/* dx[b,i] = y[b,i] (dy[b,i] - sum_j y[b,j] dy[b,j]).  dx[B,n]; dy[B,n];
 * y[B,n] the forward's output.  dx may equal dy. */
void		esmm_softmax_backward(float *dx, const float *dy, const float *y,
								  int B, int n);

/* The gated mixture h[b] = sum_k g[b,k] e_k[b].  h[B,H]; g[B,K];
 * e[K] pointers to [B,H]. */
void		esmm_mixture_forward(float *h, const float *g, const float *const *e,
								 int B, int K, int H);

/* de_k[b] += g[b,k] dh[b] (when de is not NULL); dg[b,k] = dh[b] . e_k[b].
 * de[K] pointers to [B,H]; dg[B,K]; dh[B,H]; g[B,K]; e[K] pointers to [B,H]. */
void		esmm_mixture_backward(float *const *de, float *dg, const float *dh,
								  const float *g, const float *const *e,
								  int B, int K, int H);

/* ------------------------------------------------ factorization machine */

/*
 * The second-order FM term over n fields of k latent dimensions, in
 * O(n k): y[b] = 1/2 sum_f [(sum_i e[b,i,f])^2 - sum_i e[b,i,f]^2].
 * y[B]; e[B, n*k] (field i's vector at e[b*n*k + i*k]).
 */
void		esmm_fm_forward(float *y, const float *e, int B, int n, int k);

/* de[b,i,f] = dy[b] (sum_j e[b,j,f] - e[b,i,f]).  de[B, n*k]; dy[B];
 * e[B, n*k]. */
void		esmm_fm_backward(float *de, const float *dy, const float *e, int B,
							 int n, int k);

/* ----------------------------------------------------------------- losses */

/* Stable log(sigmoid(z)) and log(1 - sigmoid(z)). */
double		esmm_log_sigmoid(double z);

/*
 * Binary cross-entropy from a logit: returns sum_b BCE(y[b], sigmoid(z[b]))
 * computed stably; dz[b] = (sigmoid(z[b]) - y[b]) * scale.
 * dz[B] or NULL; z[B]; y[B] in [0,1].
 */
double		esmm_bce_logits(float *dz, const float *z, const float *y, int B,
							float scale);

/*
 * BCE of a product of two sigmoids, p = sigmoid(a) * sigmoid(b): ESMM's
 * pCTCVR = pCTR * pCVR.  Computed from the logits so that log(p) and
 * log(1-p) never see a rounded zero.  Returns the summed loss;
 * da[b] += dL/da * scale and db[b] += dL/db * scale when not NULL.
 * da[B]; db[B]; a[B]; b[B]; y[B].
 */
double		esmm_bce_product_logits(float *da, float *db, const float *a,
									const float *b, const float *y, int B,
									float scale);

/*
 * ESMM's two losses at once, for training: BCE(click, sigmoid(a)) and
 * BCE(ctcvr, sigmoid(a) sigmoid(b)), as esmm_bce_logits and
 * esmm_bce_product_logits compute them, but in float with the
 * exponentials shared (5 transcendentals a row, not 19 in double).  A row
 * with a logit beyond +-30 goes through those two functions.  Adds the
 * summed losses to *loss_ctr and *loss_ctcvr; writes
 * da[b] = dL_ctr/da * w_ctr + dL_ctcvr/da * w_ctcvr and
 * db[b] = dL_ctcvr/db * w_ctcvr.
 * da[B]; db[B]; a[B]; b[B]; y_click[B]; y_ctcvr[B].
 */
void		esmm_ctr_ctcvr_loss(float *da, float *db, const float *a, const float *b,
								const float *y_click, const float *y_ctcvr, int B,
								float w_ctr, float w_ctcvr, double *loss_ctr,
								double *loss_ctcvr);

/* Mean squared error on a prediction: returns sum_b (p[b]-y[b])^2;
 * dp[b] = 2 (p[b]-y[b]) * scale.  dp[B] or NULL; p[B]; y[B]. */
double		esmm_mse(float *dp, const float *p, const float *y, int B,
					 float scale);

/* -------------------------------------------------------------------- rng */

/* splitmix64: advances *state and returns 64 random bits. */
uint64_t	esmm_rng_next(uint64_t *state);

/* A float uniform in [0,1). */
float		esmm_rng_uniform(uint64_t *state);

/* A standard normal draw (Box-Muller). */
float		esmm_rng_normal(uint64_t *state);

#endif							/* ESMM_LAYERS_H */
