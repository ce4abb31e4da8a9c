/*
 * sgemm_rate: the machine's sgemm rate on the shapes of a forward pass, for
 * the table-scoring floor of SPEC §8.
 *
 *   OMP_NUM_THREADS=T sgemm_rate B in w1 w2 ... wn
 *
 * Each of T threads times the chain [B/T,in] x [in,w1] -> [B/T,w1] x
 * [w1,w2] -> ... on its own rows, as the extension's row blocks do, with
 * the OpenBLAS the extension links (its OpenMP build, single-threaded
 * inside the region), for half a second; prints "<GFLOP/s> <FLOPs per
 * row>", the threads' sum, 2 FLOPs per multiply-add.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_LAYERS 16

int
main(int argc, char **argv)
{
	int			B,
				n = argc - 2,
				width[MAX_LAYERS + 1];
	float	   *W[MAX_LAYERS];
	double		flops_per_row = 0.0,
				flops = 0.0,
				elapsed = 0.0;

	if (argc < 4 || n > MAX_LAYERS + 1 || (B = atoi(argv[1])) < 1)
	{
		fprintf(stderr, "usage: sgemm_rate B in w1 [w2 ...]\n");
		return 2;
	}
	for (int l = 0; l < n; l++)
		if ((width[l] = atoi(argv[l + 2])) < 1)
		{
			fprintf(stderr, "sgemm_rate: width %s is not positive\n", argv[l + 2]);
			return 2;
		}
	for (int l = 0; l + 1 < n; l++)
	{
		W[l] = malloc(sizeof(float) * (size_t) width[l] * width[l + 1]);
		if (W[l] == NULL)
			return 1;
		for (size_t i = 0; i < (size_t) width[l] * width[l + 1]; i++)
			W[l][i] = (float) ((i * 104729) % 1000) / 1000.0f - 0.5f;
		flops_per_row += 2.0 * width[l] * width[l + 1];
	}
#pragma omp parallel reduction(+:flops) reduction(max:elapsed)
	{
		int			rows = B / omp_get_num_threads() > 0 ? B / omp_get_num_threads() : 1;
		float	   *act[MAX_LAYERS + 1];
		long		reps = 0;
		double		t0;

		for (int l = 0; l < n; l++)
		{
			act[l] = malloc(sizeof(float) * (size_t) rows * width[l]);
			for (size_t i = 0; act[l] != NULL && i < (size_t) rows * width[l]; i++)
				act[l][i] = (float) ((i * 7919) % 1000) / 1000.0f - 0.5f;
		}
#pragma omp barrier
		t0 = omp_get_wtime();
		do
		{
			for (int l = 0; l + 1 < n; l++)
				if (act[l] != NULL && act[l + 1] != NULL)
					cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, width[l + 1],
								width[l], 1.0f, act[l], width[l], W[l], width[l + 1], 0.0f,
								act[l + 1], width[l + 1]);
			reps++;
		} while (omp_get_wtime() - t0 < 0.5);
		elapsed = omp_get_wtime() - t0;
		flops = flops_per_row * rows * reps;
		for (int l = 0; l < n; l++)
			free(act[l]);
	}
	printf("%.2f %.0f\n", flops / elapsed / 1e9, flops_per_row);
	return 0;
}
