/*
 * unit.h: the smallest test harness that can fail.
 *
 * CHECK records a failure with its location and goes on; the runner
 * prints "N passed, N failed" and exits non-zero when anything failed.
 * A suite is a function listed in test_main.c.
 */
#ifndef ESMM_UNIT_H
#define ESMM_UNIT_H

#include <math.h>
#include <stdio.h>

extern int	unit_passed;
extern int	unit_failed;

#define CHECK(cond, ...) \
	do { \
		if (cond) \
			unit_passed++; \
		else \
		{ \
			unit_failed++; \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* |a - b| <= tol, with the values in the message. */
#define CHECK_NEAR(a, b, tol, what) \
	CHECK(fabs((double) (a) - (double) (b)) <= (tol), "%s: %.9g vs %.9g (tol %.3g)", \
		  (what), (double) (a), (double) (b), (double) (tol))

#include "../crc32c_ref.h"

#include "esmm_core.h"

/* Fills a layer spec: the fixture builder of the model and format suites. */
void		set_layer(esmm_layer_spec *l, uint32_t units, esmm_act act, int bias,
					  int bn, float dropout);

struct esmm_model;
struct esmm_batch;

/*
 * Compares the analytic gradient an[off .. off+n) of a model's whole
 * objective (esmm_model_forward_backward) with central differences in
 * its params; skip_kink skips weights within a step of 0, where an L1
 * term's |w| has its kink.  Returns max |analytic| (infinite on a NaN),
 * so that a caller can check that a tensor got any gradient at all.
 */
double		check_fd_range(struct esmm_model *m, const struct esmm_batch *b,
						   const float *an, size_t off, size_t n, int skip_kink,
						   const char *what);

/*
 * Initializes m from seed and begins training with optimizer opt (its
 * defaults, learning rate lr when > 0) and batch_size; m, or NULL (m
 * freed, a failed check recorded) when train_begin fails.
 */
/*
 * The bytes the heap has handed out, from its arenas and through mmap
 * alike (mallinfo2), for tests that hold a memory count to what a model
 * really allocates.  ASan's allocator hides the heap from glibc, so those
 * checks run in the plain build only (UNIT_HEAP_MEASURED).
 */
#ifdef __SANITIZE_ADDRESS__
#define UNIT_HEAP_MEASURED 0
#else
#define UNIT_HEAP_MEASURED 1
#endif
size_t		unit_heap_in_use(void);

/* A training spec of batch_size rows, epochs epochs and a shuffle from
 * seed; the optimizer is the model's own (esmm_model_train_begin). */
esmm_train_spec shuffled_spec(uint32_t batch_size, uint32_t epochs, uint64_t seed);

struct esmm_model *ready_to_train(struct esmm_model *m, int opt, float lr,
								  int batch_size, uint64_t seed);

/* Runs fn(arg) in a child process and checks that it exited with 0, so
 * that a crash fails one check instead of the suite (test_main.c). */
int			survives_in_child(int (*fn) (void *), void *arg, const char *what);

/* The suites, one per file of test/unit. */
void		suite_layers(void);
void		suite_optim(void);
void		suite_model(void);
void		suite_format(void);
void		suite_metrics(void);
void		suite_mmoe(void);

#endif
