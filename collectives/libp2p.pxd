# csrc/p2p.h, declared once for Cython (as libexecutor.pxd does for executor.h).

from libc.stdint cimport int64_t
from mpi4py.libmpi cimport MPI_Comm, MPI_Message, MPI_Request

cdef extern from "p2p.h" nogil:

    # cl_p2p_result.status
    enum:
        CL_P2P_OK
        CL_P2P_TIMEOUT
        CL_P2P_MPI_ERROR
        CL_P2P_PEER_NOTICE
        CL_P2P_MISMATCH
        CL_P2P_LARGE
        CL_P2P_PENDING

    ctypedef struct cl_p2p_result:
        int status
        int matched
        int source, tag
        int64_t nbytes
        int notice_from
        int mpi_error
        double elapsed
        char message[256]

    int cl_p2p_isend(MPI_Comm comm, const void *buf, int64_t nbytes, int dest, int tag,
                     MPI_Request *req)
    int cl_p2p_wait(MPI_Request *req, double timeout, MPI_Comm notice, int notice_peer,
                    cl_p2p_result *res)
    int cl_p2p_recv(MPI_Comm comm, void *buf, int64_t capacity, int itemsize, int source, int tag,
                    int wait, int once, double timeout, MPI_Comm notice, MPI_Request *req,
                    MPI_Message *message, cl_p2p_result *res)
    int cl_p2p_send(MPI_Comm comm, const void *buf, int64_t nbytes, int dest, int tag,
                    double timeout, MPI_Comm notice, MPI_Request *req, cl_p2p_result *res)
    enum:
        CL_OP_UNMATCHED
        CL_OP_ACTIVE
        CL_OP_DONE

    ctypedef struct cl_p2p_op:
        MPI_Request req
        MPI_Message message
        void *buf
        int64_t capacity
        int itemsize
        int is_recv
        int state
        int wanted
        int peer, tag
        int matched
        int source, got_tag
        int64_t nbytes

    int cl_p2p_progress(MPI_Comm comm, cl_p2p_op *ops, int n, int once, double timeout,
                        MPI_Comm notice, int notice_peer, int *failed, cl_p2p_result *res)
    void cl_p2p_set_polls_before_yield(int polls)
