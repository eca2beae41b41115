/* One collective call, timed in simulated time under SimGrid's SMPI.
 *
 *   smpirun -np P -platform plat.xml -hostfile hosts.txt ./coll_bench allreduce 1048576
 *
 * nbytes is each rank's whole buffer (for all-to-all: all the blocks one rank
 * sends), as in collectives.model.predict. Which algorithm runs is chosen on
 * the smpirun command line (--cfg=smpi/allreduce:rab_rdb and so on).
 *
 * The call is the first thing after MPI_Init, so every rank starts it at the
 * same simulated instant (no barrier skew). Buffers come from
 * SMPI_SHARED_MALLOC: all ranks share one copy, which keeps 256 ranks x 64 MiB
 * in memory and lets SMPI skip payload copies; the data is garbage, the
 * timing is not (timing never depends on values).
 *
 * Prints one line from rank 0:
 *   coll=<c> nbytes=<n> ranks=<p> time=<max over ranks of end> start_spread=<max-min start>
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 3) {
        if (rank == 0)
            fprintf(stderr, "usage: coll_bench allreduce|alltoall NBYTES\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const char *coll = argv[1];
    long long nbytes = atoll(argv[2]);
    int is_allreduce = strcmp(coll, "allreduce") == 0;
    if (!is_allreduce && strcmp(coll, "alltoall") != 0) {
        if (rank == 0)
            fprintf(stderr, "coll_bench: unknown collective %s (allreduce or alltoall)\n", coll);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (nbytes <= 0 || (is_allreduce && nbytes % sizeof(float)) ||
        (!is_allreduce && nbytes % size)) {
        if (rank == 0)
            fprintf(stderr, "coll_bench: %lld bytes: allreduce needs a multiple of 4, "
                    "alltoall a multiple of the rank count %d\n", nbytes, size);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    void *sendbuf = SMPI_SHARED_MALLOC((size_t)nbytes);
    void *recvbuf = SMPI_SHARED_MALLOC((size_t)nbytes);

    double start = MPI_Wtime();
    if (is_allreduce)
        MPI_Allreduce(sendbuf, recvbuf, (int)(nbytes / sizeof(float)), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
    else
        MPI_Alltoall(sendbuf, (int)(nbytes / size), MPI_BYTE, recvbuf, (int)(nbytes / size),
                     MPI_BYTE, MPI_COMM_WORLD);
    double end = MPI_Wtime();

    double last_end, first_start, last_start;
    MPI_Reduce(&end, &last_end, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    MPI_Reduce(&start, &first_start, 1, MPI_DOUBLE, MPI_MIN, 0, MPI_COMM_WORLD);
    MPI_Reduce(&start, &last_start, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("coll=%s nbytes=%lld ranks=%d time=%.12e start_spread=%.3e\n", coll, nbytes, size,
               last_end - first_start, last_start - first_start);
    SMPI_SHARED_FREE(sendbuf);
    SMPI_SHARED_FREE(recvbuf);
    MPI_Finalize();
    return 0;
}
