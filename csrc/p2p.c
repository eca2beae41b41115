/* Point-to-point waits with a deadline and peer notices: see p2p.h. */
#define _POSIX_C_SOURCE 200809L
#include "p2p.h"
#include "executor.h"   /* CL_NOTICE_TAG, CL_NOTICE_PROBE_US: the notice channel's contract */

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int polls_before_yield = 64;

void cl_p2p_set_polls_before_yield(int polls) { polls_before_yield = polls < 0 ? 0 : polls; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void mpi_failed(cl_p2p_result *res, int rc, const char *what)
{
    char buf[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) len = 0;
    buf[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
    res->status = CL_P2P_MPI_ERROR;
    res->mpi_error = rc;
    snprintf(res->message, sizeof res->message, "%.80s: %.160s", what, buf);
}

/* The state every loop shares: when it started, its deadline and the notice watch. */
typedef struct {
    double t0, deadline, next_probe;
    MPI_Comm notice;
    int notice_peer;
    int idle;
    unsigned checks;
} waiter;

static void waiter_init(waiter *w, double timeout, MPI_Comm notice, int notice_peer)
{
    w->t0 = now_s();
    w->deadline = timeout > 0 ? w->t0 + timeout : 0.0;
    w->next_probe = w->t0 + CL_NOTICE_PROBE_US * 1e-6;
    w->notice = notice;
    w->notice_peer = notice_peer;
    w->idle = 0;
    w->checks = 0;
}

/* Nothing moved: every 16th time check the clock (deadline, notices), and let other
 * ranks on this core run. Returns 1 with res->status set when the wait must end. */
static int idle_turn(waiter *w, cl_p2p_result *res)
{
    if ((++w->checks & 15) == 0) {
        double now = now_s();
        if (w->deadline > 0 && now > w->deadline) {
            res->status = CL_P2P_TIMEOUT;
            return 1;
        }
        if (w->notice != MPI_COMM_NULL && now >= w->next_probe) {
            w->next_probe = now + CL_NOTICE_PROBE_US * 1e-6;
            int flag = 0;
            MPI_Status st;
            if (MPI_Iprobe(w->notice_peer, CL_NOTICE_TAG, w->notice, &flag, &st) == MPI_SUCCESS && flag) {
                res->status = CL_P2P_PEER_NOTICE;
                res->notice_from = st.MPI_SOURCE;
                return 1;
            }
        }
    }
    if (++w->idle > polls_before_yield) {
        sched_yield();
        w->idle = 0;
    }
    return 0;
}

static void start_result(cl_p2p_result *res)
{
    memset(res, 0, sizeof *res);
    res->source = -1;
    res->notice_from = -1;
}

int cl_p2p_isend(MPI_Comm comm, const void *buf, int64_t nbytes, int dest, int tag,
                 MPI_Request *req)
{
    if (nbytes <= 0) return MPI_Isend(NULL, 0, MPI_BYTE, dest, tag, comm, req);
#if MPI_VERSION >= 4
    return MPI_Isend_c(buf, (MPI_Count)nbytes, MPI_BYTE, dest, tag, comm, req);
#else
    if (nbytes > INT_MAX) return MPI_ERR_COUNT;   /* the caller sends such messages through mpi4py */
    return MPI_Isend(buf, (int)nbytes, MPI_BYTE, dest, tag, comm, req);
#endif
}

static int wait_loop(MPI_Request *req, waiter *w, cl_p2p_result *res)
{
    int flag = 0;
    for (;;) {
        int rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            mpi_failed(res, rc, "waiting for the message failed");
            return res->status;
        }
        if (flag) return CL_P2P_OK;
        if (idle_turn(w, res)) return res->status;
    }
}

int cl_p2p_wait(MPI_Request *req, double timeout, MPI_Comm notice, int notice_peer,
                cl_p2p_result *res)
{
    start_result(res);
    waiter w;
    waiter_init(&w, timeout, notice, notice_peer);
    wait_loop(req, &w, res);
    res->elapsed = now_s() - w.t0;
    return res->status;
}

int cl_p2p_send(MPI_Comm comm, const void *buf, int64_t nbytes, int dest, int tag,
                double timeout, MPI_Comm notice, MPI_Request *req, cl_p2p_result *res)
{
    start_result(res);
    waiter w;
    waiter_init(&w, timeout, notice, dest);
    int rc = cl_p2p_isend(comm, buf, nbytes, dest, tag, req);
    if (rc != MPI_SUCCESS) {
        mpi_failed(res, rc, "starting the send failed");
    } else {
        wait_loop(req, &w, res);
    }
    res->elapsed = now_s() - w.t0;
    return res->status;
}

/* The matched message `*msg` (nbytes long): start receiving it into buf, or discard it
 * when it does not fit. */
static int take_message(MPI_Message *msg, void *buf, int64_t capacity, int itemsize,
                        int64_t nbytes, MPI_Request *req, cl_p2p_result *res)
{
    int rc;
    if (nbytes > capacity || (itemsize > 0 && nbytes % itemsize)) {
        /* take it anyway, so that the channel stays in step; the caller says why it does not fit */
        void *sink = malloc(nbytes > 0 ? (size_t)nbytes : 1);
        if (!sink) {
            res->status = CL_P2P_MPI_ERROR;
            snprintf(res->message, sizeof res->message, "out of memory for a %lld-byte message",
                     (long long)nbytes);
            return res->status;
        }
#if MPI_VERSION >= 4
        rc = MPI_Mrecv_c(sink, (MPI_Count)nbytes, MPI_BYTE, msg, MPI_STATUS_IGNORE);
#else
        if (nbytes > INT_MAX) {
            free(sink);
            res->status = CL_P2P_LARGE;
            return res->status;
        }
        rc = MPI_Mrecv(sink, (int)nbytes, MPI_BYTE, msg, MPI_STATUS_IGNORE);
#endif
        free(sink);
        if (rc != MPI_SUCCESS) {
            mpi_failed(res, rc, "discarding a message that does not fit failed");
            return res->status;
        }
        res->status = CL_P2P_MISMATCH;
        return res->status;
    }
#if MPI_VERSION >= 4
    rc = MPI_Imrecv_c(nbytes ? buf : NULL, (MPI_Count)nbytes, MPI_BYTE, msg, req);
#else
    if (nbytes > INT_MAX) {
        res->status = CL_P2P_LARGE;
        return res->status;
    }
    rc = MPI_Imrecv(nbytes ? buf : NULL, (int)nbytes, MPI_BYTE, msg, req);
#endif
    if (rc != MPI_SUCCESS) mpi_failed(res, rc, "starting the receive failed");
    return res->status;
}

int cl_p2p_recv(MPI_Comm comm, void *buf, int64_t capacity, int itemsize, int source, int tag,
                int wait, int once, double timeout, MPI_Comm notice, MPI_Request *req,
                MPI_Message *message, cl_p2p_result *res)
{
    start_result(res);
    waiter w;
    waiter_init(&w, timeout, notice, source);
    *message = MPI_MESSAGE_NULL;
    for (;;) {
        int flag = 0;
        MPI_Status st;
        int rc = MPI_Improbe(source, tag, comm, &flag, message, &st);
        if (rc != MPI_SUCCESS) {
            mpi_failed(res, rc, "probing for the message failed");
            goto done;
        }
        if (flag) {
            MPI_Count count = 0;
            rc = MPI_Get_elements_x(&st, MPI_BYTE, &count);
            if (rc != MPI_SUCCESS) {
                mpi_failed(res, rc, "reading the message's size failed");
                goto done;
            }
            res->matched = 1;
            res->source = st.MPI_SOURCE;
            res->tag = st.MPI_TAG;
            res->nbytes = (int64_t)count;
            if (take_message(message, buf, capacity, itemsize, res->nbytes, req, res) != CL_P2P_OK)
                goto done;
            if (wait) wait_loop(req, &w, res);
            goto done;
        }
        if (once) {
            res->status = CL_P2P_PENDING;
            goto done;
        }
        if (idle_turn(&w, res)) goto done;
    }
done:
    res->elapsed = now_s() - w.t0;
    return res->status;
}

/* Could one message match both receives a (earlier) and b? */
static int may_take(const cl_p2p_op *a, const cl_p2p_op *b)
{
    return a->tag == b->tag && (a->peer == MPI_ANY_SOURCE || b->peer == MPI_ANY_SOURCE || a->peer == b->peer);
}

/* Match the unmatched receive ops[i] if its message is there; 1 when it moved. */
static int try_match(MPI_Comm comm, cl_p2p_op *ops, int i, int *failed, cl_p2p_result *res)
{
    cl_p2p_op *op = &ops[i];
    for (int j = 0; j < i; j++)   /* MPI's non-overtaking rule, in posting order */
        if (ops[j].is_recv && ops[j].state == CL_OP_UNMATCHED && may_take(&ops[j], op)) return 0;
    int flag = 0;
    MPI_Status st;
    int rc = MPI_Improbe(op->peer, op->tag, comm, &flag, &op->message, &st);
    if (rc != MPI_SUCCESS) {
        mpi_failed(res, rc, "probing for the message failed");
        *failed = i;
        return -1;
    }
    if (!flag) return 0;
    MPI_Count count = 0;
    rc = MPI_Get_elements_x(&st, MPI_BYTE, &count);
    if (rc != MPI_SUCCESS) {
        mpi_failed(res, rc, "reading the message's size failed");
        *failed = i;
        return -1;
    }
    op->matched = 1;
    op->source = st.MPI_SOURCE;
    op->got_tag = st.MPI_TAG;
    op->nbytes = (int64_t)count;
    res->status = CL_P2P_OK;
    if (take_message(&op->message, op->buf, op->capacity, op->itemsize, op->nbytes, &op->req, res)
        != CL_P2P_OK) {
        op->state = CL_OP_DONE;   /* the message was taken (or handed back): the caller says why */
        *failed = i;
        return -1;
    }
    op->state = CL_OP_ACTIVE;
    return 1;
}

int cl_p2p_progress(MPI_Comm comm, cl_p2p_op *ops, int n, int once, double timeout,
                    MPI_Comm notice, int notice_peer, int *failed, cl_p2p_result *res)
{
    start_result(res);
    *failed = -1;
    waiter w;
    waiter_init(&w, timeout, notice, notice_peer);
    for (;;) {
        int moved = 0, left = 0;
        for (int i = 0; i < n; i++) {
            cl_p2p_op *op = &ops[i];
            if (op->state == CL_OP_UNMATCHED) {
                int m = try_match(comm, ops, i, failed, res);
                if (m < 0) goto done;
                moved |= m;
            }
            if (op->state == CL_OP_ACTIVE) {
                int flag = 0;
                int rc = MPI_Test(&op->req, &flag, MPI_STATUS_IGNORE);
                if (rc != MPI_SUCCESS) {
                    mpi_failed(res, rc, "waiting for the message failed");
                    *failed = i;
                    goto done;
                }
                if (flag) {
                    op->state = CL_OP_DONE;
                    moved = 1;
                }
            }
            if (op->wanted && op->state != CL_OP_DONE) left = 1;
        }
        if (!left) {
            res->status = CL_P2P_OK;
            goto done;
        }
        if (once) {
            res->status = CL_P2P_PENDING;
            goto done;
        }
        if (!moved && idle_turn(&w, res)) {
            for (int i = 0; i < n; i++)
                if (ops[i].wanted && ops[i].state != CL_OP_DONE) { *failed = i; break; }
            goto done;
        }
    }
done:
    res->elapsed = now_s() - w.t0;
    return res->status;
}
