/* Point-to-point waits: a send or a receive of collectives.p2p completed with a
 * deadline and peer notices, without returning to Python between polls.
 *
 * A receive is matched with a matched probe (MPI_Improbe) and its size checked
 * against the output buffer before any byte lands there: a message that does
 * not fit is taken into a temporary buffer and discarded (CL_P2P_MISMATCH), so
 * the channel stays in step. The loops test, then every few idle polls read the
 * clock, check the deadline and at most once every CL_NOTICE_PROBE_US probe the
 * notice duplicate for a peer that left (collectives/notices.py).
 */
#ifndef COLLECTIVES_P2P_H
#define COLLECTIVES_P2P_H

#include <stdint.h>
#include <mpi.h>

/* cl_p2p_result.status. CL_P2P_LARGE: a matched message too long for one call of
 * this MPI (over 2^31-1 bytes before MPI 4); its MPI_Message is handed back to be
 * received another way. CL_P2P_PENDING: a single probe found nothing yet. */
enum { CL_P2P_OK = 0, CL_P2P_TIMEOUT = 1, CL_P2P_MPI_ERROR = 2, CL_P2P_PEER_NOTICE = 3,
       CL_P2P_MISMATCH = 4, CL_P2P_LARGE = 5, CL_P2P_PENDING = 6 };

typedef struct {
    int status;          /* CL_P2P_OK, ... */
    int matched;         /* a receive: its message was matched (the transfer may be under way) */
    int source, tag;     /* a matched receive's message */
    int64_t nbytes;      /* a matched receive's message length in bytes */
    int notice_from;     /* CL_P2P_PEER_NOTICE: the rank whose notice arrived */
    int mpi_error;       /* CL_P2P_MPI_ERROR: MPI's error code */
    double elapsed;      /* seconds since the wait began */
    char message[256];   /* MPI's error string */
} cl_p2p_result;

/* Start sending nbytes bytes of buf to dest. Returns MPI's error code. */
int cl_p2p_isend(MPI_Comm comm, const void *buf, int64_t nbytes, int dest, int tag,
                 MPI_Request *req);

/* Wait for *req (a send, or a matched receive) until done, the deadline (timeout
 * seconds from now; <= 0: none) or a notice from notice_peer (MPI_ANY_SOURCE: any
 * rank) on notice (MPI_COMM_NULL: none). *req is MPI_REQUEST_NULL once done. */
int cl_p2p_wait(MPI_Request *req, double timeout, MPI_Comm notice, int notice_peer,
                cl_p2p_result *res);

/* Match a message from source (or MPI_ANY_SOURCE) with tag, check that it fits
 * capacity bytes in whole items of itemsize, and start receiving it into buf
 * (*req); with wait, also wait for it to arrive. once: probe a single time and
 * return CL_P2P_PENDING if nothing is there yet (timeout is then ignored).
 * On CL_P2P_LARGE, *message holds the matched message. */
int cl_p2p_recv(MPI_Comm comm, void *buf, int64_t capacity, int itemsize, int source, int tag,
                int wait, int once, double timeout, MPI_Comm notice, MPI_Request *req,
                MPI_Message *message, cl_p2p_result *res);

/* Send and wait: cl_p2p_isend, then cl_p2p_wait; *req is left open on a timeout or notice. */
int cl_p2p_send(MPI_Comm comm, const void *buf, int64_t nbytes, int dest, int tag,
                double timeout, MPI_Comm notice, MPI_Request *req, cl_p2p_result *res);

/* One operation of a Communicator's point-to-point queue, as cl_p2p_progress moves it. */
enum { CL_OP_UNMATCHED = 0, CL_OP_ACTIVE = 1, CL_OP_DONE = 2 };

typedef struct {
    MPI_Request req;      /* in/out: the send or matched receive (MPI_REQUEST_NULL otherwise) */
    MPI_Message message;  /* out, CL_P2P_LARGE: the matched message, to be received another way */
    void *buf;            /* a receive's output buffer */
    int64_t capacity;     /* its bytes */
    int itemsize;
    int is_recv;
    int state;            /* in/out: CL_OP_UNMATCHED (a receive not matched yet), _ACTIVE, _DONE */
    int wanted;           /* in: the call returns once every wanted operation is done */
    int peer, tag;        /* a receive: the source (or MPI_ANY_SOURCE) and tag it takes */
    int matched;          /* out: matched in this call; then source, got_tag, nbytes say what */
    int source, got_tag;
    int64_t nbytes;
} cl_p2p_op;

/* Move the queue ops[0..n) on until every wanted operation is done: receives are matched
 * in queue order (a receive does not probe while an earlier unmatched one with the same
 * tag could take its message), matched receives and sends are tested. once: one pass,
 * CL_P2P_PENDING if a wanted operation is not done. Otherwise waits, with the deadline and
 * notice watch of cl_p2p_wait. *failed is the operation a failure concerns (a message that
 * does not fit, an MPI error, CL_P2P_LARGE; on a timeout or notice the first wanted
 * operation not done), -1 if none. */
int cl_p2p_progress(MPI_Comm comm, cl_p2p_op *ops, int n, int once, double timeout,
                    MPI_Comm notice, int notice_peer, int *failed, cl_p2p_result *res);

/* Idle polls before the loops yield the core (default 64; 0 when ranks outnumber cores). */
void cl_p2p_set_polls_before_yield(int polls);

#endif
