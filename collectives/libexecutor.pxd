# The executor's interface, csrc/executor.h, declared once for every Cython module
# that runs programs or needs the program's codes (as mpi4py's libmpi.pxd does for mpi.h).
# MPI_Comm is mpi4py's declaration, so a communicator's ob_mpi passes straight through.

from libc.stdint cimport int64_t
from mpi4py.libmpi cimport MPI_Comm

cdef extern from "executor.h" nogil:

    # a program row's kind and buffers (collectives.schedule.SEND, BUF_IN, ...)
    enum:
        CL_OP_SEND
        CL_OP_RECV
        CL_OP_RECV_REDUCE
        CL_OP_COPY
    enum:
        CL_BUF_IN
        CL_BUF_OUT
        CL_BUF_TMP

    # cl_result.status
    enum:
        CL_OK
        CL_TIMEOUT
        CL_MPI_ERROR
        CL_BAD_PROGRAM
        CL_NO_MEMORY
        CL_PEER_NOTICE
        CL_PENDING

    # peer notices
    enum:
        CL_NOTICE_TAG
        CL_NOTICE_PROBE_US
        CL_NOTICE_GRACE_MS

    enum:
        CL_MAX_REPORTED_PEERS

    # cl_native's `which`
    enum:
        CL_NATIVE_ALLREDUCE
        CL_NATIVE_ALLTOALL
        CL_NATIVE_REDUCE_SCATTER
        CL_NATIVE_ALLGATHER
        CL_NATIVE_BROADCAST
        CL_NATIVE_BARRIER
        CL_NATIVE_ALLTOALLV

    ctypedef struct cl_row:
        int64_t step, kind, peer, tag, src_buf, src_off, dst_buf, dst_off, count

    ctypedef struct cl_result:
        int status
        int64_t step
        int mpi_error
        int npeers
        int peers[CL_MAX_REPORTED_PEERS]
        int64_t bytes_outstanding
        double elapsed
        int64_t peak_scratch_bytes
        char message[256]

    int64_t cl_scratch_needed(const cl_row *rows, int64_t nrows, int itemsize,
                              int64_t segment_bytes, int inflight)
    int cl_execute(MPI_Comm comm, const cl_row *rows, int64_t nrows, void **bufs,
                   int dtype, int op, int64_t segment_bytes, int inflight,
                   void *scratch, int64_t scratch_bytes, double timeout, int tag_base,
                   const double *holds, MPI_Comm notice, cl_result *res)
    int cl_native(MPI_Comm comm, int which, const void *sendbuf, void *recvbuf,
                  int64_t count, const int *recvcounts, int dtype, int op, int root,
                  double timeout, MPI_Comm notice, cl_result *res)
    void cl_set_polls_before_yield(int polls)
    enum:
        CL_BLOCKING_DEADLINE_MAX_BYTES
    int cl_blocking_deadline(int want)
    void cl_emulation_lateness(int64_t *steps, int64_t *late, double *worst, int reset)
    void cl_emulation_delays(double *late_sum, int64_t *data_late, double *data_late_sum, int reset)
    enum:
        CL_HOLD_LATE_US
    double cl_now()

    # resumable executions (start, test / wait, free)
    enum:
        CL_TAGS_PER_EXECUTION
    ctypedef struct cl_execution:
        pass
    cl_execution *cl_create(MPI_Comm comm, const cl_row *rows, int64_t nrows, void **bufs,
                            int dtype, int op, int64_t segment_bytes, int inflight,
                            void *scratch, int64_t scratch_bytes, int tag_base,
                            const double *holds, MPI_Comm notice, cl_result *res)
    cl_execution *cl_create_native(MPI_Comm comm, int which, const void *sendbuf, void *recvbuf,
                                   int64_t count, const int *recvcounts, int dtype, int op, int root,
                                   int persistent, MPI_Comm notice, cl_result *res)
    int cl_start(cl_execution *e, double timeout, cl_result *res)
    int cl_test(cl_execution *e, cl_result *res)
    int cl_wait(cl_execution *e, double deadline, cl_result *res)
    int cl_wait_all(cl_execution **es, int n, double deadline, int *failed, cl_result *res)
    int cl_done(const cl_execution *e)
    int cl_rebind_native(cl_execution *e, const void *sendbuf, void *recvbuf)
    int cl_rebind_program(cl_execution *e, void *inbuf, void *outbuf, int tag_base)
    int cl_is_persistent(const cl_execution *e)
    int cl_have_persistent()
    void cl_free(cl_execution *e)
