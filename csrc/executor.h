/* The executor: runs one rank's program of a Schedule over MPI.
 *
 * A program is an array of rows ordered by step (the layout of
 * collectives.schedule.PROGRAM_DTYPE). Within a step, copies run first, then
 * every send and receive is posted and the step waits, with a deadline, until
 * all of them are done. Messages are cut into segments of at most
 * segment_bytes; a reducing receive keeps at most `inflight` segments in
 * scratch memory, reducing one while the next ones travel.
 */
#ifndef COLLECTIVES_EXECUTOR_H
#define COLLECTIVES_EXECUTOR_H

#include <stdint.h>
#include <mpi.h>

/* The codes below are the interface's single source: collectives/libexecutor.pxd
 * declares them for Cython and collectives/_constants.pyx hands them to Python
 * (collectives.schedule, collectives._executor). */
enum { CL_OP_SEND = 0, CL_OP_RECV = 1, CL_OP_RECV_REDUCE = 2, CL_OP_COPY = 3 };
enum { CL_BUF_IN = 0, CL_BUF_OUT = 1, CL_BUF_TMP = 2 };

typedef struct {
    int64_t step, kind, peer, tag, src_buf, src_off, dst_buf, dst_off, count;
} cl_row;

enum { CL_OK = 0, CL_TIMEOUT = 1, CL_MPI_ERROR = 2, CL_BAD_PROGRAM = 3, CL_NO_MEMORY = 4,
       CL_PEER_NOTICE = 5, CL_PENDING = 6 };

/* Peer notices (collectives/notices.py): a rank that leaves or fails sends a short text
 * with this tag on the communicator's notice duplicate. A wait that has made no
 * progress for a while probes for one; seeing it, the wait still lets the step finish
 * for CL_NOTICE_GRACE_MS (data sent before the notice may still be arriving), then
 * fails with CL_PEER_NOTICE naming the sender in peers[0]. */
enum { CL_NOTICE_TAG = 20047, CL_NOTICE_PROBE_US = 1000, CL_NOTICE_GRACE_MS = 50 };

#define CL_MAX_REPORTED_PEERS 16

typedef struct {
    int status;                  /* CL_OK, CL_TIMEOUT, ... */
    int64_t step;                /* step being waited on when it failed */
    int mpi_error;               /* MPI error code for CL_MPI_ERROR */
    int npeers;                  /* peers still awaited (first CL_MAX_REPORTED_PEERS) */
    int peers[CL_MAX_REPORTED_PEERS];
    int64_t bytes_outstanding;   /* bytes of that step not yet received or sent */
    double elapsed;              /* seconds since the call started */
    int64_t peak_scratch_bytes;  /* scratch memory used for reducing receives */
    char message[256];           /* MPI's error string, or what was wrong */
} cl_result;

/* Scratch bytes a program needs for its reducing receives. */
int64_t cl_scratch_needed(const cl_row *rows, int64_t nrows, int itemsize,
                          int64_t segment_bytes, int inflight);

/* Run rows[0..nrows) on comm. bufs[CL_BUF_IN/OUT/TMP] are the buffers (IN may
 * equal OUT for in-place calls: copies between identical regions are skipped).
 * timeout <= 0 waits forever. Call without the GIL. */
int cl_execute(MPI_Comm comm, const cl_row *rows, int64_t nrows, void *bufs[3],
               int dtype, int op, int64_t segment_bytes, int inflight,
               void *scratch, int64_t scratch_bytes, double timeout, int tag_base,
               const double *holds, MPI_Comm notice, cl_result *res);

/* Emulated links: with holds != NULL (one entry per row), each send also carries
 * the sender's step start time (CLOCK_MONOTONIC, shared by the processes of one
 * machine), and a receive counts as delivered only at sender start + holds[row],
 * the time the modelled network takes for that message in that step. Holds are
 * slept through, spinning only for the last microseconds. */

/* Emulation's own health: steps held since the last call, how many ended more than
 * CL_HOLD_LATE_US after the modelled time (this machine could not keep to the model:
 * load, or more ranks than cores), and the worst lateness in seconds; reset clears. */
enum { CL_HOLD_LATE_US = 50 };
void cl_emulation_lateness(int64_t *steps, int64_t *late, double *worst, int reset);
/* Where that lateness came from, over the same steps: its sum in seconds, and the steps
 * (and seconds) by which the messages themselves were complete only after the modelled time;
 * the rest of the sum is waking from a hold late. reset clears. */
void cl_emulation_delays(double *late_sum, int64_t *data_late, double *data_late_sum, int reset);

/* The MPI library's own collectives, non-blocking with the same deadline. */
enum { CL_NATIVE_ALLREDUCE = 0, CL_NATIVE_ALLTOALL = 1, CL_NATIVE_REDUCE_SCATTER = 2,
       CL_NATIVE_ALLGATHER = 3, CL_NATIVE_BROADCAST = 4, CL_NATIVE_BARRIER = 5,
       CL_NATIVE_ALLTOALLV = 6 };

/* count: elements of the input (allreduce, allgather: per rank; alltoall: the whole
 * input; reduce_scatter: recvcounts[] gives each rank's block; broadcast: elements).
 * alltoallv: count is unused and recvcounts points to 4 * size int64_t (cast to
 * const int *): send counts, send displacements, receive counts, receive
 * displacements, in elements; always non-blocking (MPI_Ialltoallv), so that a
 * deadline applies even when the caller set none. */
int cl_native(MPI_Comm comm, int which, const void *sendbuf, void *recvbuf,
              int64_t count, const int *recvcounts, int dtype, int op, int root,
              double timeout, MPI_Comm notice, cl_result *res);

/* With a deadline, an all-reduce or all-to-all of at most CL_BLOCKING_DEADLINE_MAX_BYTES
 * (the whole input) runs as the blocking MPI call under a watchdog thread that revokes
 * the communicator at the deadline or on a peer's notice, where the MPI allows it (Open
 * MPI with ULFM, mpi_ft_enable on, MPI_THREAD_MULTIPLE); the call then fails with
 * CL_TIMEOUT or CL_PEER_NOTICE as the non-blocking path does, and the communicator is
 * revoked. Larger calls keep the non-blocking path: a revoke does not interrupt a send
 * that waits for its peer. Open MPI's ob1 sends a message of at most 256 B inline (copied
 * out, the send complete at once: a constant of ob1, not an MCA variable); a larger one,
 * even under the transport's eager limit, stays a pending send until the receiver has
 * taken it in. With a silent peer, 1-4 KiB calls at 2-4 ranks were not ended by the
 * revoke until the peer woke, while 256 B calls always were: the whole input (which
 * bounds every message of the MPI's algorithm) must fit the inline size. */
enum { CL_BLOCKING_DEADLINE_MAX_BYTES = 256 };

/* want 0 switches the path off, 1 on where available, -1 leaves it; returns 1 when it
 * is active (needs MPI initialised). */
int cl_blocking_deadline(int want);

/* ---- Resumable executions: start, then test (never blocks) or wait, then free.
 *
 * An execution is one program (cl_create) or one MPI collective (cl_create_native)
 * bound to its buffers, started any number of times, one run at a time. Runs of
 * several executions may be in flight at once on one communicator when each
 * program has its own tag_base (it uses tags tag_base .. tag_base +
 * CL_TAGS_PER_EXECUTION - 1) and its own scratch and tmp memory; every rank must
 * start them in the same order. The buffers, rows, holds and scratch must stay
 * alive and unchanged in size until cl_free. cl_execute is cl_start + cl_wait on a
 * stack execution.
 *
 * cl_start, cl_test and cl_wait return CL_OK once the run is complete, CL_PENDING
 * while it is not (cl_test only), or the failure (then res says what; a failed
 * execution keeps failing). An emulated hold not yet due is CL_PENDING for
 * cl_test (never a sleep); cl_wait sleeps through it. */
enum { CL_TAGS_PER_EXECUTION = 8192 };

typedef struct cl_execution cl_execution;

/* NULL on failure (res says why). Arguments as for cl_execute. */
cl_execution *cl_create(MPI_Comm comm, const cl_row *rows, int64_t nrows, void *bufs[3],
                        int dtype, int op, int64_t segment_bytes, int inflight,
                        void *scratch, int64_t scratch_bytes, int tag_base,
                        const double *holds, MPI_Comm notice, cl_result *res);

/* The MPI library's own collective (arguments as for cl_native). With persistent != 0
 * and an MPI that has MPI-4 persistent collectives, the request is made once
 * (MPI_Allreduce_init, ...) and each cl_start is an MPI_Start; otherwise each
 * start is a non-blocking call (MPI_Iallreduce, ...). */
cl_execution *cl_create_native(MPI_Comm comm, int which, const void *sendbuf, void *recvbuf,
                               int64_t count, const int *recvcounts, int dtype, int op, int root,
                               int persistent, MPI_Comm notice, cl_result *res);

/* Begin a run; the deadline is timeout seconds from now (<= 0: none). Starting a
 * run that has not completed is CL_BAD_PROGRAM. res may be NULL. */
int cl_start(cl_execution *e, double timeout, cl_result *res);

/* Move the run on without blocking. */
int cl_test(cl_execution *e, cl_result *res);

/* Wait until the run completes or fails; deadline > 0 (cl_now's clock) replaces the
 * run's own deadline. Call without the GIL. */
int cl_wait(cl_execution *e, double deadline, cl_result *res);

/* Wait for every execution, progressing them round robin; on the first failure,
 * *failed is its index and res says what (the others are left as they are). */
int cl_wait_all(cl_execution **es, int n, double deadline, int *failed, cl_result *res);

/* 1 when the last run completed. */
int cl_done(const cl_execution *e);

/* Point an idle (never started, or completed) non-persistent native execution at new
 * buffers of the same shape, so that one execution serves many calls of that shape.
 * CL_BAD_PROGRAM (nothing changed) for any other execution. */
int cl_rebind_native(cl_execution *e, const void *sendbuf, void *recvbuf);

/* The same for an idle (never started, or completed) program execution: new input and
 * output buffers of the same sizes and a new tag_base; its tmp and scratch are kept.
 * CL_BAD_PROGRAM (nothing changed) for any other execution. */
int cl_rebind_program(cl_execution *e, void *inbuf, void *outbuf, int tag_base);

/* 1 when a native execution holds an MPI-4 persistent request. */
int cl_is_persistent(const cl_execution *e);

/* 1 when this build's MPI has persistent collectives (MPI_Allreduce_init, ...). */
int cl_have_persistent(void);

/* Release the execution (a run still in flight has its messages cancelled; a
 * native collective in flight is left to MPI). */
void cl_free(cl_execution *e);

/* Idle polls of the wait loops before sched_yield (default 64; 0 when ranks outnumber cores). */
void cl_set_polls_before_yield(int polls);

/* Monotonic clock in seconds (CLOCK_MONOTONIC: shared by all processes of a machine). */
double cl_now(void);

#endif
