/* The executor's step loop: see executor.h. */
#define _POSIX_C_SOURCE 200809L
#include "executor.h"
#include "reduce.h"

#include <limits.h>
#include <stdint.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#if defined(OPEN_MPI) && OPEN_MPI
#include <mpi-ext.h>   /* Open MPI's extensions: ULFM (MPIX_Comm_revoke) when built with it */
#endif
#if defined(OMPI_HAVE_MPI_EXT_FTMPI) && OMPI_HAVE_MPI_EXT_FTMPI
#define CL_HAVE_REVOKE 1
#include <pthread.h>
#include <stdatomic.h>
#else
#define CL_HAVE_REVOKE 0
#endif

double cl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Tags: each op between one pair in one step gets its own tag so that
 * segments of different ops never match each other. */
#define CL_TAG_SPAN 4096

/* Idle polls before giving the core away: ranks that outnumber the cores (an
 * oversubscribed test or laptop run) must yield at once, or the peer they wait
 * for never gets to run. Set by the Communicator from the node's rank count. */
static int polls_before_yield = 64;

void cl_set_polls_before_yield(int polls) { polls_before_yield = polls < 0 ? 0 : polls; }

static int64_t nsegments(int64_t nbytes, int64_t seg)
{
    return nbytes <= 0 ? 0 : (nbytes + seg - 1) / seg;
}

/* State of one communicating op (send or receive) of the current step. */
typedef struct {
    const cl_row *row;
    char *base;            /* first byte of the region sent from or received into */
    int64_t nbytes;
    int64_t nseg;
    int64_t posted;        /* segments posted so far */
    int64_t completed;     /* segments whose transfer completed */
    int64_t reduced;       /* reducing receives: segments reduced, always in order */
    int nslots;            /* reducing receives: scratch slots, min(nseg, inflight) */
    int slot0;             /* reducing receives: first scratch slot of the step's slots */
    int64_t *slot_seg;     /* reducing receives: segment held by each slot, -1 if retired */
    char *seg_done;        /* reducing receives: per slot, transfer complete and not yet reduced */
    int *slot_req;         /* reducing receives: the request that carries each slot */
    double stamp;          /* emulation: the sender's step start time, sent or received */
} op_state;

/* What one request of the step's table carries. */
typedef enum {
    REQ_SEGMENT,       /* a segment of a send or a plain receive, in the user's buffer */
    REQ_SCRATCH_SLOT,  /* a segment of a reducing receive, in a scratch slot that is
                          reposted for a later segment once reduced */
    REQ_STAMP          /* emulation: the sender's step start time, one per message */
} req_kind;

typedef struct {
    req_kind kind;
    int op;        /* index of its op in the step's op table */
    int slot;      /* REQ_SCRATCH_SLOT: the op's slot (0 .. nslots-1); the slot's
                      current segment is the op's slot_seg[slot] */
} req_info;

/* One cl_execute call: its arguments, the tables sized once for the largest
 * step and reused by every step, and the step being run. */
typedef struct {
    MPI_Comm comm;
    const cl_row *rows;
    void **bufs;
    int dtype, op, itemsize, inflight, tag_base;
    int64_t segment_bytes;
    char *scratch;
    const double *holds;
    double timeout, deadline;
    MPI_Comm notice;       /* peers' notices arrive here (MPI_COMM_NULL: none) */
    double next_probe;     /* when to probe for a notice next */
    double notice_seen;    /* when a notice was seen (0: none yet) */
    int notice_from;       /* the rank that sent it */

    op_state *ops;
    MPI_Request *reqs;
    req_info *info;
    int *indices;
    MPI_Status *statuses;
    int64_t *slot_seg;
    char *seg_done;
    int *slot_req;

    int64_t step;          /* the step's number (rows[].step) */
    int nops, nreq;        /* ops and requests of the step */
    int64_t slot_bytes;    /* bytes of one scratch slot in the step */
} executor;

int64_t cl_scratch_needed(const cl_row *rows, int64_t nrows, int itemsize,
                          int64_t segment_bytes, int inflight)
{
    int64_t best = 0, i = 0;
    while (i < nrows) {
        int64_t step = rows[i].step, nred = 0, maxseg = 0;
        for (; i < nrows && rows[i].step == step; i++) {
            if (rows[i].kind == CL_OP_RECV_REDUCE) {
                int64_t nb = rows[i].count * itemsize;
                int64_t ns = nsegments(nb, segment_bytes);
                int64_t slots = ns < inflight ? ns : inflight;
                nred += slots;
                if (nb > maxseg) maxseg = nb;
            }
        }
        int64_t seg = maxseg < segment_bytes ? maxseg : segment_bytes;
        if (nred * seg > best) best = nred * seg;
    }
    return best;
}

/* Wait until the monotonic clock reaches `until`: sleep, then spin the last stretch.
 * Linux lets a sleeping thread wake up to 50 us late by default (timer slack);
 * emulated links need better than that, so the slack is cut to 1 us once. */
static void hold_until(double until)
{
    const double spin = 20e-6;
#ifdef __linux__
    static int slack_set = 0;
    if (!slack_set) {
        prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
        slack_set = 1;
    }
#endif
    for (;;) {
        double left = until - cl_now();
        if (left <= 0) return;
        if (left > spin) {
            double nap = left - spin;
            struct timespec ts;
            ts.tv_sec = (time_t)nap;
            ts.tv_nsec = (long)((nap - (double)ts.tv_sec) * 1e9);
            nanosleep(&ts, NULL);
        }
    }
}

/* The result of a call that a peer's notice ended: the peer, in the words every path uses. */
static void set_peer_notice(cl_result *res, int peer)
{
    res->status = CL_PEER_NOTICE;
    res->npeers = 1;
    res->peers[0] = peer;
    snprintf(res->message, sizeof res->message, "rank %d sent a notice", peer);
}

static void set_error(cl_result *res, int status, int64_t step, int mpi_error, const char *what)
{
    res->status = status;
    res->step = step;
    res->mpi_error = mpi_error;
    if (mpi_error != MPI_SUCCESS) {
        char buf[MPI_MAX_ERROR_STRING];
        int len = 0;
        if (MPI_Error_string(mpi_error, buf, &len) != MPI_SUCCESS) len = 0;
        buf[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING - 1] = '\0';
        snprintf(res->message, sizeof res->message, "%.80s: %.160s", what, buf);
    } else {
        snprintf(res->message, sizeof res->message, "%s", what);
    }
}

/* Post segment `seg` of op o. For reducing receives it lands in scratch slot `slot`. */
static int post_segment(MPI_Comm comm, op_state *o, int64_t seg, int slot, char *scratch,
                        int64_t segment_bytes, int64_t slot_bytes, int tag, MPI_Request *req)
{
    int64_t off = seg * segment_bytes;
    int64_t len = o->nbytes - off < segment_bytes ? o->nbytes - off : segment_bytes;
    int peer = (int)o->row->peer;
    switch (o->row->kind) {
    case CL_OP_SEND:
        return MPI_Isend(o->base + off, (int)len, MPI_BYTE, peer, tag, comm, req);
    case CL_OP_RECV:
        return MPI_Irecv(o->base + off, (int)len, MPI_BYTE, peer, tag, comm, req);
    default: /* CL_OP_RECV_REDUCE */
        return MPI_Irecv(scratch + (int64_t)slot * slot_bytes, (int)len, MPI_BYTE, peer, tag,
                         comm, req);
    }
}

/* May segment `seg` of reducing op j be reduced now? Earlier reducing ops of the
 * step whose destination overlaps it must have reduced past it first, so the
 * order of reduction is the program's, never the order of arrival. */
static int may_reduce(op_state *ops, int j, int64_t seg, int64_t segment_bytes)
{
    const cl_row *r = ops[j].row;
    int64_t a = (int64_t)(uintptr_t)ops[j].base + seg * segment_bytes;
    int64_t b = a + (ops[j].nbytes - seg * segment_bytes < segment_bytes
                     ? ops[j].nbytes - seg * segment_bytes : segment_bytes);
    for (int k = 0; k < j; k++) {
        if (ops[k].row->kind != CL_OP_RECV_REDUCE || ops[k].row->dst_buf != r->dst_buf) continue;
        int64_t ka = (int64_t)(uintptr_t)ops[k].base;
        int64_t kend = ka + ops[k].nbytes;
        if (kend <= a || ka >= b) continue;
        int64_t frontier = ka + ops[k].reduced * segment_bytes;
        if (frontier > kend) frontier = kend;
        int64_t need = b < kend ? b : kend;
        if (frontier < need) return 0;
    }
    return 1;
}

static void free_tables(executor *x)
{
    free(x->ops); free(x->reqs); free(x->info); free(x->indices); free(x->statuses);
    free(x->slot_seg); free(x->seg_done); free(x->slot_req);
}

/* Size the per-step tables for the largest step of the program; 0, or -1 if out of memory. */
static int alloc_tables(executor *x, int64_t nrows)
{
    const cl_row *rows = x->rows;
    int64_t max_ops = 0, max_reqs = 0, max_slots = 0;
    for (int64_t i = 0; i < nrows;) {
        int64_t step = rows[i].step, nops = 0, nreq = 0, nslots = 0;
        for (; i < nrows && rows[i].step == step; i++) {
            if (rows[i].kind == CL_OP_COPY) continue;
            int64_t ns = nsegments(rows[i].count * x->itemsize, x->segment_bytes);
            nops++;
            if (x->holds) nreq++;  /* the REQ_STAMP of each message */
            if (rows[i].kind == CL_OP_RECV_REDUCE) {
                int64_t s = ns < x->inflight ? ns : x->inflight;
                nreq += s;
                nslots += s;
            } else {
                nreq += ns;
            }
        }
        if (nops > max_ops) max_ops = nops;
        if (nreq > max_reqs) max_reqs = nreq;
        if (nslots > max_slots) max_slots = nslots;
    }
    size_t nop = (size_t)(max_ops ? max_ops : 1);
    size_t nrq = (size_t)(max_reqs ? max_reqs : 1);
    size_t nsl = (size_t)(max_slots ? max_slots : 1);
    x->ops = calloc(nop, sizeof *x->ops);
    x->reqs = malloc(nrq * sizeof *x->reqs);
    x->info = malloc(nrq * sizeof *x->info);
    x->indices = malloc(nrq * sizeof *x->indices);
    x->statuses = malloc(nrq * sizeof *x->statuses);
    x->slot_seg = malloc(nsl * sizeof *x->slot_seg);
    x->seg_done = malloc(nsl);
    x->slot_req = malloc(nsl * sizeof *x->slot_req);
    if (!x->ops || !x->reqs || !x->info || !x->indices || !x->statuses || !x->slot_seg
        || !x->seg_done || !x->slot_req) {
        free_tables(x);
        return -1;
    }
    return 0;
}

/* The step's local copies, in program order (they run before its messages). */
static void run_copies(const executor *x, int64_t begin, int64_t end)
{
    for (int64_t k = begin; k < end; k++) {
        const cl_row *r = &x->rows[k];
        if (r->kind != CL_OP_COPY || r->count <= 0) continue;
        char *src = (char *)x->bufs[r->src_buf] + r->src_off * x->itemsize;
        char *dst = (char *)x->bufs[r->dst_buf] + r->dst_off * x->itemsize;
        if (src != dst) memmove(dst, src, (size_t)(r->count * x->itemsize));
    }
}

static int op_tag(const executor *x, const cl_row *r)
{
    return x->tag_base + (int)(r->tag % CL_TAG_SPAN);
}

/* Post every send and receive of rows[begin, end): all segments of sends and plain
 * receives, the first min(nseg, inflight) segments of reducing receives (one per
 * scratch slot), and with emulation each message's time stamp. Returns MPI's
 * error code; on failure the step is abandoned where it stopped. */
static int post_step(executor *x, int64_t begin, int64_t end)
{
    /* a scratch slot is as large as the step's largest segment (cl_scratch_needed) */
    int64_t slot_bytes = 0;
    for (int64_t k = begin; k < end; k++) {
        if (x->rows[k].kind != CL_OP_RECV_REDUCE) continue;
        int64_t nb = x->rows[k].count * x->itemsize;
        if (nb > slot_bytes) slot_bytes = nb;
    }
    x->slot_bytes = slot_bytes > x->segment_bytes ? x->segment_bytes : slot_bytes;
    x->nops = 0;
    x->nreq = 0;
    int rc = MPI_SUCCESS, slot = 0;
    const double step_start = cl_now();
    for (int64_t k = begin; k < end; k++) {
        const cl_row *r = &x->rows[k];
        if (r->kind == CL_OP_COPY || r->count <= 0) continue;
        const int j = x->nops;
        op_state *o = &x->ops[j];
        memset(o, 0, sizeof *o);
        o->row = r;
        o->nbytes = r->count * x->itemsize;
        o->nseg = nsegments(o->nbytes, x->segment_bytes);
        o->base = r->kind == CL_OP_SEND ? (char *)x->bufs[r->src_buf] + r->src_off * x->itemsize
                                        : (char *)x->bufs[r->dst_buf] + r->dst_off * x->itemsize;
        const int tag = op_tag(x, r);
        x->nops++;
        if (x->holds) {
            int stag = x->tag_base + CL_TAG_SPAN + (int)(r->tag % CL_TAG_SPAN);
            x->info[x->nreq] = (req_info){REQ_STAMP, j, -1};
            if (r->kind == CL_OP_SEND) {
                o->stamp = step_start;
                rc = MPI_Isend(&o->stamp, 1, MPI_DOUBLE, (int)r->peer, stag, x->comm, &x->reqs[x->nreq]);
            } else {
                rc = MPI_Irecv(&o->stamp, 1, MPI_DOUBLE, (int)r->peer, stag, x->comm, &x->reqs[x->nreq]);
            }
            if (rc != MPI_SUCCESS) return rc;
            x->nreq++;
        }
        if (r->kind == CL_OP_RECV_REDUCE) {
            o->nslots = (int)(o->nseg < x->inflight ? o->nseg : x->inflight);
            o->slot0 = slot;
            o->slot_seg = x->slot_seg + slot;
            o->seg_done = x->seg_done + slot;
            o->slot_req = x->slot_req + slot;
            slot += o->nslots;
            for (int s = 0; s < o->nslots; s++) {
                o->slot_seg[s] = s;
                o->seg_done[s] = 0;
                o->slot_req[s] = x->nreq;
                x->info[x->nreq] = (req_info){REQ_SCRATCH_SLOT, j, s};
                rc = post_segment(x->comm, o, s, o->slot0 + s, x->scratch, x->segment_bytes,
                                  x->slot_bytes, tag, &x->reqs[x->nreq]);
                if (rc != MPI_SUCCESS) return rc;
                x->nreq++;
                o->posted++;
            }
        } else {
            for (int64_t s = 0; s < o->nseg; s++) {
                x->info[x->nreq] = (req_info){REQ_SEGMENT, j, -1};
                rc = post_segment(x->comm, o, s, -1, x->scratch, x->segment_bytes, x->slot_bytes,
                                  tag, &x->reqs[x->nreq]);
                if (rc != MPI_SUCCESS) return rc;
                x->nreq++;
                o->posted++;
            }
        }
    }
    return MPI_SUCCESS;
}

/* Reduce the arrived segments of reducing op j, in segment order and only where
 * may_reduce allows, and repost each freed slot for the op's next segment; a slot
 * with no segment left is retired (*active drops). Returns MPI's error code. */
static int reduce_arrived(executor *x, int j, int *active, int *progressed)
{
    op_state *o = &x->ops[j];
    const int64_t seg_bytes = x->segment_bytes;
    while (o->reduced < o->nseg) {
        int s = (int)(o->reduced % o->nslots);
        if (!o->seg_done[s] || o->slot_seg[s] != o->reduced) break;
        if (!may_reduce(x->ops, j, o->reduced, seg_bytes)) break;
        int64_t off = o->reduced * seg_bytes;
        int64_t len = o->nbytes - off < seg_bytes ? o->nbytes - off : seg_bytes;
        cl_reduce(o->base + off, x->scratch + (int64_t)(o->slot0 + s) * x->slot_bytes,
                  len / x->itemsize, x->dtype, x->op);
        o->reduced++;
        o->seg_done[s] = 0;
        *progressed = 1;
        if (o->posted < o->nseg) {
            int rq = o->slot_req[s];
            int64_t seg = o->posted;
            o->slot_seg[s] = seg;
            int rc = post_segment(x->comm, o, seg, o->slot0 + s, x->scratch, seg_bytes,
                                  x->slot_bytes, op_tag(x, o->row), &x->reqs[rq]);
            if (rc != MPI_SUCCESS) return rc;
            o->posted++;
        } else {
            o->slot_seg[s] = -1;
            (*active)--;
        }
    }
    return MPI_SUCCESS;
}

/* Probe for a peer's notice at most every CL_NOTICE_PROBE_US of idle waiting. Once one
 * is seen, give the wait CL_NOTICE_GRACE_MS more (what the peer sent before leaving may
 * still be on its way), then report it: returns 1 with res set to CL_PEER_NOTICE. */
static int watch_notices(MPI_Comm notice, double now, double *next_probe, double *seen,
                         int *seen_from, cl_result *res)
{
    if (notice == MPI_COMM_NULL || now < *next_probe) return 0;
    *next_probe = now + CL_NOTICE_PROBE_US * 1e-6;
    if (*seen == 0.0) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, CL_NOTICE_TAG, notice, &flag, &st) != MPI_SUCCESS || !flag)
            return 0;
        /* the first notice names the cause: others that follow (peers that gave up because of
         * it) may match an any-source probe first, as Open MPI orders by source */
        *seen = now;
        *seen_from = st.MPI_SOURCE;
    }
    if (now - *seen < CL_NOTICE_GRACE_MS * 1e-3) return 0;
    set_peer_notice(res, *seen_from);
    return 1;
}

/* One pass over the step's requests: test them and reduce what arrived, without
 * waiting. *active counts the requests (or scratch slots) not yet done; on an MPI
 * error res says which (the requests are left for report_stuck). */
static int test_step(executor *x, int *active, int *progressed, cl_result *res)
{
    int outcount = 0;
    int rc = MPI_Testsome(x->nreq, x->reqs, &outcount, x->indices, x->statuses);
    if (rc != MPI_SUCCESS) {
        int code = rc, peer = -1;
        if (rc == MPI_ERR_IN_STATUS && outcount != MPI_UNDEFINED) {
            for (int q = 0; q < outcount; q++) {
                if (x->statuses[q].MPI_ERROR != MPI_SUCCESS) {
                    code = x->statuses[q].MPI_ERROR;
                    peer = (int)x->ops[x->info[x->indices[q]].op].row->peer;
                    break;
                }
            }
        }
        set_error(res, CL_MPI_ERROR, x->step, code, "waiting for a message failed");
        if (peer >= 0) { res->npeers = 1; res->peers[0] = peer; }
        return res->status;
    }
    if (outcount == MPI_UNDEFINED) outcount = 0;
    if (outcount > 0) *progressed = 1;
    for (int q = 0; q < outcount; q++) {
        const req_info *ri = &x->info[x->indices[q]];
        op_state *o = &x->ops[ri->op];
        switch (ri->kind) {
        case REQ_SCRATCH_SLOT:   /* done once reduced (reduce_arrived) */
            o->completed++;
            o->seg_done[ri->slot] = 1;
            break;
        case REQ_SEGMENT:
            o->completed++;
            (*active)--;
            break;
        case REQ_STAMP:          /* not a segment of the op */
            (*active)--;
            break;
        }
    }
    for (int j = 0; j < x->nops; j++) {
        if (x->ops[j].row->kind != CL_OP_RECV_REDUCE) continue;
        rc = reduce_arrived(x, j, active, progressed);
        if (rc != MPI_SUCCESS) {
            set_error(res, CL_MPI_ERROR, x->step, rc, "posting a message failed");
            return res->status;
        }
    }
    return CL_OK;
}

/* How well emulation keeps to the model, since the last cl_emulation_lateness call:
 * held steps, those that ended more than CL_HOLD_LATE_US after their modelled time
 * (the real transfer, or the wake-up, was slower than the model), and the worst. */
static int64_t held_steps = 0, late_steps = 0;
static double worst_late = 0.0;
/* Where the lateness came from: all of it summed, and the part by which a step's messages
 * were only complete (as this rank saw them) after their modelled time (the real transfer,
 * or this rank getting a core to see it, was slower than the model); the rest is waking
 * from the hold late. */
static double late_total = 0.0, data_late_total = 0.0;
static int64_t data_late_steps = 0;

void cl_emulation_lateness(int64_t *steps, int64_t *late, double *worst, int reset)
{
    *steps = held_steps;
    *late = late_steps;
    *worst = worst_late;
    if (reset) { held_steps = late_steps = 0; worst_late = 0.0; }
}

void cl_emulation_delays(double *late_sum, int64_t *data_late, double *data_late_sum, int reset)
{
    *late_sum = late_total;
    *data_late = data_late_steps;
    *data_late_sum = data_late_total;
    if (reset) { late_total = data_late_total = 0.0; data_late_steps = 0; }
}

/* Emulation: when the modelled network would have delivered the step's last
 * message (sender's step start + hold); 0 for a step of sends only. */
static double step_release(const executor *x)
{
    double release = 0.0;
    for (int j = 0; j < x->nops; j++) {
        const cl_row *r = x->ops[j].row;
        if (r->kind == CL_OP_SEND) continue;
        double t = x->ops[j].stamp + x->holds[r - x->rows];
        if (t > release) release = t;
    }
    return release;
}

static void count_lateness(double release, double data_done)
{
    double late = cl_now() - release;
    held_steps++;
    if (late > 0.0) late_total += late;
    if (data_done > release) {
        data_late_steps++;
        data_late_total += data_done - release;
    }
    if (late > CL_HOLD_LATE_US * 1e-6) {
        late_steps++;
        if (late > worst_late) worst_late = late;
    }
}

/* The step failed or timed out: report the peers still awaited and the bytes not
 * yet moved, then cancel the receives and free every request still open. */
static void report_stuck(executor *x, cl_result *res)
{
    res->step = x->step;
    int64_t outstanding = 0;
    for (int j = 0; j < x->nops; j++) {
        const op_state *o = &x->ops[j];
        int64_t done = o->row->kind == CL_OP_RECV_REDUCE ? o->reduced : o->completed;
        if (done >= o->nseg) continue;
        int64_t left = o->nbytes - done * x->segment_bytes;
        outstanding += left > 0 ? left : 0;
        int peer = (int)o->row->peer, seen = 0;
        for (int q = 0; q < res->npeers; q++) seen |= res->peers[q] == peer;
        if (!seen && res->npeers < CL_MAX_REPORTED_PEERS) res->peers[res->npeers++] = peer;
    }
    res->bytes_outstanding = outstanding;
    for (int t = 0; t < x->nreq; t++) {
        if (x->reqs[t] == MPI_REQUEST_NULL) continue;
        if (x->ops[x->info[t].op].row->kind != CL_OP_SEND) MPI_Cancel(&x->reqs[t]);
        MPI_Request_free(&x->reqs[t]);
    }
    x->nreq = 0;
    if (res->status == CL_TIMEOUT)
        snprintf(res->message, sizeof res->message, "deadline of %.3g s passed", x->timeout);
}

/* ---- the resumable execution: start, test / wait, free ------------------------ */

enum { PHASE_IDLE, PHASE_STEP, PHASE_RUN, PHASE_HOLD, PHASE_DONE, PHASE_FAILED };

struct cl_execution {
    executor x;
    int64_t nrows;
    void *bufs[3];
    int64_t scratch_need;
    /* the MPI library's own collective (native != 0) */
    int native, which, root, size, persistent;
    const void *sendbuf;
    void *recvbuf;
    int64_t count;
    MPI_Datatype type;
    MPI_Op mop;
    int *counts;           /* reduce_scatter: our copy of each rank's block */
    void *counts64;        /* the same as MPI_Count, for the large-count call */
    MPI_Request req;
    /* where the run is */
    int phase;
    int64_t begin, end;    /* rows of the current step */
    int active;            /* its requests (slots) not yet done */
    double t0, release;    /* start; emulation: when the held step may end */
    double data_done;      /* emulation: when the held step's messages were complete */
    cl_result res;         /* what the run came to, kept for later calls */
};

static int fail(cl_execution *e, int status)
{
    cl_result *res = &e->res;
    if (status != CL_OK) res->status = status;
    if (!e->native) report_stuck(&e->x, res);
    else if (res->status == CL_TIMEOUT)
        snprintf(res->message, sizeof res->message, "deadline of %.3g s passed", e->x.timeout);
    res->elapsed = cl_now() - e->t0;
    e->phase = PHASE_FAILED;
    return res->status;
}

static int start_native(cl_execution *e);

/* Move the run on as far as it goes without waiting: CL_OK once done, CL_PENDING
 * while messages (or an emulated hold) are outstanding, else the failure. */
static int advance(cl_execution *e, int *progressed)
{
    executor *x = &e->x;
    cl_result *res = &e->res;
    for (;;) {
        switch (e->phase) {
        case PHASE_DONE:
            return CL_OK;
        case PHASE_FAILED:
            return res->status;
        case PHASE_IDLE:
            return CL_PENDING;
        case PHASE_STEP:
            if (e->begin >= e->nrows) {
                e->phase = PHASE_DONE;
                res->elapsed = cl_now() - e->t0;
                return CL_OK;
            }
            x->step = x->rows[e->begin].step;
            e->end = e->begin;
            while (e->end < e->nrows && x->rows[e->end].step == x->step) e->end++;
            run_copies(x, e->begin, e->end);
            {
                int rc = post_step(x, e->begin, e->end);
                if (rc != MPI_SUCCESS) {
                    set_error(res, CL_MPI_ERROR, x->step, rc, "posting a message failed");
                    return fail(e, CL_OK);
                }
            }
            e->active = x->nreq;
            e->phase = PHASE_RUN;
            *progressed = 1;
            break;
        case PHASE_RUN:
            if (e->native) {
                int flag = 0;
                int rc = MPI_Test(&e->req, &flag, MPI_STATUS_IGNORE);
                if (rc != MPI_SUCCESS) {
                    set_error(res, CL_MPI_ERROR, 0, rc, "the MPI collective failed");
                    return fail(e, CL_OK);
                }
                if (!flag) return CL_PENDING;
                *progressed = 1;
                e->phase = PHASE_DONE;
                res->elapsed = cl_now() - e->t0;
                return CL_OK;
            }
            if (e->active > 0) {
                if (test_step(x, &e->active, progressed, res) != CL_OK) return fail(e, CL_OK);
                if (e->active > 0) return CL_PENDING;
            }
            if (x->holds) {
                double release = step_release(x);
                if (release > 0.0) {
                    e->release = release;
                    e->data_done = cl_now();
                    e->phase = PHASE_HOLD;
                    break;
                }
            }
            e->begin = e->end;
            e->phase = PHASE_STEP;
            break;
        case PHASE_HOLD: {
            /* a hold not yet due is "not done", never a sleep here */
            double now = cl_now();
            if (now < e->release) {
                if (x->deadline > 0 && e->release > x->deadline && now >= x->deadline)
                    return fail(e, CL_TIMEOUT);
                return CL_PENDING;
            }
            count_lateness(e->release, e->data_done);
            e->begin = e->end;
            e->phase = PHASE_STEP;
            *progressed = 1;
            break;
        }
        }
    }
}

/* Nothing moved: has the deadline passed, or has a peer sent a notice? */
static int check_stalled(cl_execution *e, double now)
{
    executor *x = &e->x;
    if (x->deadline > 0 && now > x->deadline) return fail(e, CL_TIMEOUT);
    if (watch_notices(x->notice, now, &x->next_probe, &x->notice_seen, &x->notice_from, &e->res)) {
        e->res.step = e->native ? 0 : x->step;
        return fail(e, CL_OK);
    }
    return CL_PENDING;
}

static int report(const cl_execution *e, int status, cl_result *res)
{
    if (res && status != CL_PENDING) *res = e->res;
    return status;
}

static void set_deadline(cl_execution *e, double deadline)
{
    if (deadline > 0) {
        e->x.deadline = deadline;
        e->x.timeout = deadline - cl_now();
    }
}

/* Wait for one execution, polling as the blocking call always did: the deadline
 * and peers' notices are checked every 16 idle polls, the core is yielded after
 * polls_before_yield of them, and an emulated hold is slept through. */
static int wait_one(cl_execution *e)
{
    int idle = 0;
    int64_t checks = 0;
    for (;;) {
        int progressed = 0;
        int st = advance(e, &progressed);
        if (st != CL_PENDING) return st;
        if (e->phase == PHASE_IDLE) {
            set_error(&e->res, CL_BAD_PROGRAM, -1, MPI_SUCCESS, "waited for an execution never started");
            return CL_BAD_PROGRAM;
        }
        if (progressed) { idle = 0; continue; }
        if (e->phase == PHASE_HOLD) {
            double until = e->release;
            if (e->x.deadline > 0 && e->x.deadline < until) until = e->x.deadline;
            hold_until(until);
            continue;
        }
        if ((++checks & 15) == 0) {
            st = check_stalled(e, cl_now());
            if (st != CL_PENDING) return st;
        }
        if (++idle > polls_before_yield) {
            sched_yield();
            idle = 0;
        }
    }
}

static int init_program(cl_execution *e, MPI_Comm comm, const cl_row *rows, int64_t nrows,
                        void *bufs[3], int dtype, int op, int64_t segment_bytes, int inflight,
                        void *scratch, int64_t scratch_bytes, int tag_base, const double *holds,
                        MPI_Comm notice)
{
    cl_result *res = &e->res;
    memset(e, 0, sizeof *e);
    e->res.step = -1;
    e->req = MPI_REQUEST_NULL;
    const int itemsize = cl_dtype_size(dtype);
    if (itemsize <= 0) {
        set_error(res, CL_BAD_PROGRAM, -1, MPI_SUCCESS, "unknown dtype code");
        return res->status;
    }
    if (segment_bytes < itemsize) segment_bytes = itemsize;
    segment_bytes -= segment_bytes % itemsize;       /* segments hold whole elements */
    if (segment_bytes > (int64_t)INT_MAX) segment_bytes = ((int64_t)INT_MAX / itemsize) * itemsize;
    if (inflight < 1) inflight = 1;
    if (tag_base < 0) {
        set_error(res, CL_BAD_PROGRAM, -1, MPI_SUCCESS, "negative tag base");
        return res->status;
    }
    int64_t need = cl_scratch_needed(rows, nrows, itemsize, segment_bytes, inflight);
    if (need > scratch_bytes) {
        set_error(res, CL_BAD_PROGRAM, -1, MPI_SUCCESS, "scratch buffer too small for the program");
        return res->status;
    }
    e->scratch_need = need;
    for (int b = 0; b < 3; b++) e->bufs[b] = bufs[b];
    e->nrows = nrows;
    executor *x = &e->x;
    x->comm = comm; x->rows = rows; x->bufs = e->bufs; x->dtype = dtype; x->op = op;
    x->itemsize = itemsize; x->inflight = inflight; x->tag_base = tag_base;
    x->segment_bytes = segment_bytes; x->scratch = scratch; x->holds = holds; x->notice = notice;
    if (alloc_tables(x, nrows) != 0) {
        set_error(res, CL_NO_MEMORY, -1, MPI_SUCCESS, "out of memory for request tables");
        return res->status;
    }
    e->phase = PHASE_IDLE;
    return CL_OK;
}

static void release_execution(cl_execution *e)
{
    if (e->native) {
        if (e->req != MPI_REQUEST_NULL && e->phase != PHASE_RUN && e->phase != PHASE_FAILED)
            MPI_Request_free(&e->req);   /* an inactive persistent request */
        /* a collective still running (a timeout, a notice) may still read its counts */
        if (e->phase != PHASE_RUN && e->phase != PHASE_FAILED) {
            free(e->counts);
            free(e->counts64);
        }
        return;
    }
    if (e->phase == PHASE_RUN) {
        /* freed in flight: cancel and free the step's requests, as a timeout does */
        e->res.status = CL_TIMEOUT;
        report_stuck(&e->x, &e->res);
    }
    free_tables(&e->x);
}

cl_execution *cl_create(MPI_Comm comm, const cl_row *rows, int64_t nrows, void *bufs[3],
                        int dtype, int op, int64_t segment_bytes, int inflight,
                        void *scratch, int64_t scratch_bytes, int tag_base,
                        const double *holds, MPI_Comm notice, cl_result *res)
{
    cl_execution *e = malloc(sizeof *e);
    if (!e) {
        memset(res, 0, sizeof *res);
        set_error(res, CL_NO_MEMORY, -1, MPI_SUCCESS, "out of memory for an execution");
        return NULL;
    }
    int st = init_program(e, comm, rows, nrows, bufs, dtype, op, segment_bytes, inflight, scratch,
                          scratch_bytes, tag_base, holds, notice);
    if (st != CL_OK) {
        *res = e->res;
        free(e);
        return NULL;
    }
    return e;
}

int cl_start(cl_execution *e, double timeout, cl_result *res)
{
    if (e->phase == PHASE_STEP || e->phase == PHASE_RUN || e->phase == PHASE_HOLD) {
        cl_result busy;
        memset(&busy, 0, sizeof busy);
        set_error(&busy, CL_BAD_PROGRAM, -1, MPI_SUCCESS, "started again before it completed");
        if (res) *res = busy;
        return CL_BAD_PROGRAM;
    }
    if (e->phase == PHASE_FAILED) return report(e, e->res.status, res);
    const double t0 = cl_now();
    memset(&e->res, 0, sizeof e->res);
    e->res.step = e->native ? 0 : -1;
    e->res.peak_scratch_bytes = e->scratch_need;
    e->t0 = t0;
    executor *x = &e->x;
    x->timeout = timeout;
    x->deadline = timeout > 0 ? t0 + timeout : 0.0;
    x->next_probe = t0 + CL_NOTICE_PROBE_US * 1e-6;
    x->notice_seen = 0.0;
    x->notice_from = -1;
    x->nops = x->nreq = 0;
    e->begin = e->end = 0;
    if (e->native) {
        int rc = start_native(e);
        if (rc != MPI_SUCCESS) {
            set_error(&e->res, CL_MPI_ERROR, 0, rc, "starting the MPI collective failed");
            e->phase = PHASE_DONE;   /* nothing in flight */
            e->res.elapsed = cl_now() - t0;
            return report(e, CL_MPI_ERROR, res);
        }
        e->phase = PHASE_RUN;
    } else {
        e->phase = PHASE_STEP;
    }
    int progressed = 0;
    return report(e, advance(e, &progressed), res);
}

int cl_test(cl_execution *e, cl_result *res)
{
    int progressed = 0;
    int st = advance(e, &progressed);
    if (st == CL_PENDING && !progressed && e->phase != PHASE_IDLE) st = check_stalled(e, cl_now());
    return report(e, st, res);
}

int cl_wait(cl_execution *e, double deadline, cl_result *res)
{
    set_deadline(e, deadline);
    return report(e, wait_one(e), res);
}

int cl_wait_all(cl_execution **es, int n, double deadline, int *failed, cl_result *res)
{
    *failed = -1;
    for (int i = 0; i < n; i++) set_deadline(es[i], deadline);
    int idle = 0;
    int64_t checks = 0;
    for (;;) {
        int pending = 0, progressed = 0;
        for (int i = 0; i < n; i++) {
            int st = advance(es[i], &progressed);
            if (st == CL_OK) continue;
            if (st != CL_PENDING || es[i]->phase == PHASE_IDLE) {
                if (st == CL_PENDING) {
                    set_error(&es[i]->res, CL_BAD_PROGRAM, -1, MPI_SUCCESS,
                              "waited for an execution never started");
                    st = CL_BAD_PROGRAM;
                }
                *failed = i;
                return report(es[i], st, res);
            }
            pending++;
        }
        if (!pending) return CL_OK;
        if (progressed) { idle = 0; continue; }
        if ((++checks & 15) == 0) {
            double now = cl_now();
            for (int i = 0; i < n; i++) {
                if (es[i]->phase == PHASE_DONE) continue;
                int st = check_stalled(es[i], now);
                if (st != CL_PENDING) {
                    *failed = i;
                    return report(es[i], st, res);
                }
            }
        }
        if (++idle > polls_before_yield) {
            sched_yield();
            idle = 0;
        }
    }
}

int cl_done(const cl_execution *e) { return e->phase == PHASE_DONE; }

void cl_free(cl_execution *e)
{
    if (!e) return;
    release_execution(e);
    free(e);
}

int cl_execute(MPI_Comm comm, const cl_row *rows, int64_t nrows, void *bufs[3],
               int dtype, int op, int64_t segment_bytes, int inflight,
               void *scratch, int64_t scratch_bytes, double timeout, int tag_base,
               const double *holds, MPI_Comm notice, cl_result *res)
{
    cl_execution e;
    int st = init_program(&e, comm, rows, nrows, bufs, dtype, op, segment_bytes, inflight, scratch,
                          scratch_bytes, tag_base, holds, notice);
    if (st != CL_OK) {
        *res = e.res;
        return st;
    }
    st = cl_start(&e, timeout, NULL);
    if (st == CL_PENDING) st = wait_one(&e);
    *res = e.res;
    release_execution(&e);
    return st;
}

/* ---- the MPI library's own collectives ------------------------------------ */

static MPI_Datatype half_types[2] = {MPI_DATATYPE_NULL, MPI_DATATYPE_NULL};
static MPI_Op half_ops[2][CL_NUM_OPS];
static int half_ready = 0;

/* MPI has no bfloat16 (and float16 only as an MPICH extension), so for those
 * the native path uses a 2-byte datatype and our kernels as user ops. */
#define DEFINE_USER_OP(NAME, DT, OPC)                                              \
    static void NAME(void *in, void *inout, int *len, MPI_Datatype *type)          \
    {                                                                              \
        (void)type;                                                                \
        cl_reduce(inout, in, *len, DT, OPC);                                       \
    }
DEFINE_USER_OP(f16_sum, CL_FLOAT16, CL_SUM)
DEFINE_USER_OP(f16_prod, CL_FLOAT16, CL_PROD)
DEFINE_USER_OP(f16_min, CL_FLOAT16, CL_MIN)
DEFINE_USER_OP(f16_max, CL_FLOAT16, CL_MAX)
DEFINE_USER_OP(bf16_sum, CL_BFLOAT16, CL_SUM)
DEFINE_USER_OP(bf16_prod, CL_BFLOAT16, CL_PROD)
DEFINE_USER_OP(bf16_min, CL_BFLOAT16, CL_MIN)
DEFINE_USER_OP(bf16_max, CL_BFLOAT16, CL_MAX)

static int init_half(void)
{
    if (half_ready) return MPI_SUCCESS;
    MPI_User_function *fns[2][CL_NUM_OPS] = {{f16_sum, f16_prod, f16_min, f16_max},
                                              {bf16_sum, bf16_prod, bf16_min, bf16_max}};
    for (int t = 0; t < 2; t++) {
        int rc = MPI_Type_contiguous(2, MPI_BYTE, &half_types[t]);
        if (rc == MPI_SUCCESS) rc = MPI_Type_commit(&half_types[t]);
        if (rc != MPI_SUCCESS) return rc;
        for (int o = 0; o < CL_NUM_OPS; o++) {
            rc = MPI_Op_create(fns[t][o], 1, &half_ops[t][o]);
            if (rc != MPI_SUCCESS) return rc;
        }
    }
    half_ready = 1;
    return MPI_SUCCESS;
}

static MPI_Datatype mpi_type(int dtype)
{
    switch (dtype) {
    case CL_INT8: return MPI_INT8_T;
    case CL_INT16: return MPI_INT16_T;
    case CL_INT32: return MPI_INT32_T;
    case CL_INT64: return MPI_INT64_T;
    case CL_UINT8: return MPI_UINT8_T;
    case CL_UINT16: return MPI_UINT16_T;
    case CL_UINT32: return MPI_UINT32_T;
    case CL_UINT64: return MPI_UINT64_T;
    case CL_FLOAT32: return MPI_FLOAT;
    case CL_FLOAT64: return MPI_DOUBLE;
    case CL_FLOAT16: return half_types[0];
    case CL_BFLOAT16: return half_types[1];
    default: return MPI_DATATYPE_NULL;
    }
}

static MPI_Op mpi_op(int dtype, int op)
{
    if (dtype == CL_FLOAT16 || dtype == CL_BFLOAT16) return half_ops[dtype == CL_BFLOAT16][op];
    switch (op) {
    case CL_SUM: return MPI_SUM;
    case CL_PROD: return MPI_PROD;
    case CL_MIN: return MPI_MIN;
    case CL_MAX: return MPI_MAX;
    default: return MPI_OP_NULL;
    }
}

static int wait_native(MPI_Request *req, double timeout, MPI_Comm notice, cl_result *res);

/* CL_NATIVE_ALLTOALLV: counts4 holds send counts, send displacements, receive counts and
 * receive displacements (size int64_t each, in elements of type). The arrays MPI reads
 * stay allocated until the call completes; after a timeout or a notice MPI may still
 * read them, so they are left to it. */
static int native_alltoallv(MPI_Comm comm, const void *sendbuf, void *recvbuf,
                            const int64_t *counts4, int size, MPI_Datatype type, double timeout,
                            MPI_Comm notice, cl_result *res)
{
    MPI_Request req = MPI_REQUEST_NULL;
    int rc;
#if MPI_VERSION >= 4
    MPI_Count *counts = malloc(sizeof(MPI_Count) * 2 * (size_t)size);
    MPI_Aint *displs = malloc(sizeof(MPI_Aint) * 2 * (size_t)size);
    if (!counts || !displs) {
        free(counts); free(displs);
        set_error(res, CL_NO_MEMORY, 0, MPI_SUCCESS, "out of memory");
        return res->status;
    }
    for (int q = 0; q < size; q++) {
        counts[q] = (MPI_Count)counts4[q];
        displs[q] = (MPI_Aint)counts4[size + q];
        counts[size + q] = (MPI_Count)counts4[2 * size + q];
        displs[size + q] = (MPI_Aint)counts4[3 * size + q];
    }
    rc = MPI_Ialltoallv_c(sendbuf, counts, displs, type, recvbuf, counts + size, displs + size, type,
                          comm, &req);
#else
    int *counts = malloc(sizeof(int) * 4 * (size_t)size), *displs = NULL;
    if (!counts) {
        set_error(res, CL_NO_MEMORY, 0, MPI_SUCCESS, "out of memory");
        return res->status;
    }
    for (int q = 0; q < 4 * size; q++) {
        if (counts4[q] > INT_MAX) {
            free(counts);
            set_error(res, CL_BAD_PROGRAM, 0, MPI_SUCCESS,
                      "this MPI (before MPI 4) cannot take a block or offset of more than 2^31-1 "
                      "elements in one native call");
            return res->status;
        }
        counts[q] = (int)counts4[q];
    }
    rc = MPI_Ialltoallv(sendbuf, counts, counts + size, type, recvbuf, counts + 2 * size,
                        counts + 3 * size, type, comm, &req);
#endif
    if (rc != MPI_SUCCESS) {
        free(counts); free(displs);
        set_error(res, CL_MPI_ERROR, 0, rc, "starting the MPI collective failed");
        return res->status;
    }
    wait_native(&req, timeout, notice, res);
    if (res->status == CL_OK || res->status == CL_MPI_ERROR) {
        free(counts); free(displs);
    }
    return res->status;
}

/* Test a native collective's request until done, the deadline or a peer's notice. A small
 * call is often complete at its first test: then no clock is read at all, and the deadline
 * counts from just after that test (microseconds late at most). */
static int wait_native(MPI_Request *req, double timeout, MPI_Comm notice, cl_result *res)
{
    int flag = 0, idle = 0;
    int rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        set_error(res, CL_MPI_ERROR, 0, rc, "the MPI collective failed");
        return res->status;
    }
    if (flag)
        return res->status;
    const double t0 = cl_now();
    const double deadline = timeout > 0 ? t0 + timeout : 0.0;
    double next_probe = t0 + CL_NOTICE_PROBE_US * 1e-6, seen = 0.0;
    int seen_from = -1;
    int64_t checks = 0;
    while (!flag) {
        rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            set_error(res, CL_MPI_ERROR, 0, rc, "the MPI collective failed");
            break;
        }
        if (flag) break;
        if ((++checks & 15) == 0) {
            double now = cl_now();
            if (deadline > 0 && now > deadline) {
                res->status = CL_TIMEOUT;
                snprintf(res->message, sizeof res->message, "deadline of %.3g s passed", timeout);
                break;   /* a collective request cannot be cancelled; it is left to MPI */
            }
            if (watch_notices(notice, now, &next_probe, &seen, &seen_from, res))
                break;   /* the request is left to MPI too */
        }
        if (++idle > polls_before_yield) {
            sched_yield();
            idle = 0;
        }
    }
    res->elapsed = cl_now() - t0;
    return res->status;
}

/* ---- the blocking-deadline path: a watchdog that revokes ------------------
 *
 * A blocking MPI call cannot be interrupted, so a deadline normally needs the
 * non-blocking call and a test loop; Open MPI's non-blocking collectives (libnbc)
 * are much slower than its blocking ones at small sizes. With ULFM (Open MPI built
 * with it and run with mpi_ft_enable) one long-lived watchdog thread can revoke the
 * call's communicator (MPIX_Comm_revoke) when the deadline passes or a peer's notice
 * arrives; the blocked call then returns MPI_ERR_REVOKED. A call arms the watchdog
 * with a few stores and disarms it with one compare-and-swap; the thread only naps
 * and reads them. Revoking interrupts a receive, not a send waiting for its peer, so
 * only calls whose messages are sent inline (complete at once) take this path. */
#if CL_HAVE_REVOKE
/* wd_word = generation << 3 | state. IDLE -> CLAIMED (a caller writes the fields) ->
 * ARMED -> IDLE (the caller's CAS: the call ended first) or FIRING (the watchdog's CAS)
 * -> FIRED (revoked; the caller reads why) -> IDLE. */
enum { WD_IDLE = 0, WD_CLAIMED = 1, WD_ARMED = 2, WD_FIRING = 3, WD_FIRED = 4, WD_STATE = 7 };
static _Atomic uint64_t wd_word;
static _Atomic(MPI_Comm) wd_comm, wd_notice;
static _Atomic double wd_deadline;
static _Atomic int wd_status, wd_peer;
/* the first notice the watchdog saw during the armed call wd_seen_word (published at once,
 * before its grace: another rank's revoke may end the call first) */
static _Atomic uint64_t wd_seen_word;
/* the armed word the watchdog is probing notices for: the caller, once disarmed, waits
 * until it is no longer its own, so no probe runs on a notice communicator freed after */
static _Atomic uint64_t wd_busy;
static _Atomic int wd_seen_peer;
static int wd_state;            /* 0: not decided yet, 1: available (thread running), -1: not */
static int wd_wanted = 1;       /* cl_blocking_deadline's switch */
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;

static void wd_nap(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void *wd_main(void *arg)
{
    (void)arg;
#ifdef __linux__
    prctl(PR_SET_NAME, "cl-watchdog", 0, 0, 0);
#endif
    uint64_t watching = 0;               /* the armed word last seen (0: none) */
    double next_probe = 0.0, seen = 0.0;
    int seen_from = -1, idle_naps = 0;
    cl_result scratch;
    for (;;) {
        uint64_t w = atomic_load_explicit(&wd_word, memory_order_acquire);
        if ((w & WD_STATE) != WD_ARMED) {
            watching = 0;
            /* a nap of 1 ms while calls come often, 20 ms once they stopped */
            wd_nap(++idle_naps > 200 ? 20000 : CL_NOTICE_PROBE_US);
            continue;
        }
        idle_naps = 0;
        MPI_Comm comm = atomic_load_explicit(&wd_comm, memory_order_relaxed);
        MPI_Comm notice = atomic_load_explicit(&wd_notice, memory_order_relaxed);
        double deadline = atomic_load_explicit(&wd_deadline, memory_order_relaxed);
        if (atomic_load_explicit(&wd_word, memory_order_acquire) != w) continue;   /* moved on */
        double now = cl_now();
        if (w != watching) {
            /* a new call: as in wait_native, the first probe after 1 ms of waiting */
            watching = w;
            next_probe = now + CL_NOTICE_PROBE_US * 1e-6;
            seen = 0.0;
            seen_from = -1;
        }
        int why = CL_OK;
        if (deadline > 0 && now > deadline)
            why = CL_TIMEOUT;
        else if (notice != MPI_COMM_NULL && now >= next_probe) {
            /* announce the probe, then check the call is still armed (seq_cst on both sides:
             * either the caller sees wd_busy and waits, or this sees the word changed) */
            atomic_store(&wd_busy, w);
            if (atomic_load(&wd_word) == w &&
                watch_notices(notice, now, &next_probe, &seen, &seen_from, &scratch))
                why = CL_PEER_NOTICE;
            atomic_store(&wd_busy, 0);
        }
        if (seen_from >= 0 && atomic_load_explicit(&wd_seen_word, memory_order_relaxed) != w) {
            atomic_store_explicit(&wd_seen_peer, seen_from, memory_order_relaxed);
            atomic_store_explicit(&wd_seen_word, w, memory_order_release);
        }
        if (why != CL_OK) {
            uint64_t expect = w;
            if (atomic_compare_exchange_strong(&wd_word, &expect, (w & ~(uint64_t)WD_STATE) | WD_FIRING)) {
                atomic_store_explicit(&wd_status, why, memory_order_relaxed);
                atomic_store_explicit(&wd_peer, seen_from, memory_order_relaxed);
                MPIX_Comm_revoke(comm);
                atomic_store_explicit(&wd_word, (w & ~(uint64_t)WD_STATE) | WD_FIRED,
                                      memory_order_release);
            }
            watching = 0;
        }
        wd_nap(CL_NOTICE_PROBE_US);
    }
    return NULL;
}

/* Is ULFM on in this run? Open MPI's mpi_ft_enable, read through the tools interface. */
static int wd_ft_enabled(void)
{
    int provided = 0, index = -1, count = 0, value = 0, on = 0;
    if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return 0;
    if (MPI_T_cvar_get_index("mpi_ft_enable", &index) == MPI_SUCCESS) {
        MPI_T_cvar_handle h;
        if (MPI_T_cvar_handle_alloc(index, NULL, &h, &count) == MPI_SUCCESS) {
            if (count == 1 && MPI_T_cvar_read(h, &value) == MPI_SUCCESS) on = value != 0;
            MPI_T_cvar_handle_free(&h);
        }
    }
    MPI_T_finalize();
    return on;
}

/* Decide once (needs MPI initialised): ULFM on, MPI_THREAD_MULTIPLE (the watchdog calls
 * MPI while the caller is in MPI), and the thread started. */
static int wd_active(void)
{
    if (!__atomic_load_n(&wd_wanted, __ATOMIC_RELAXED)) return 0;
    int state = __atomic_load_n(&wd_state, __ATOMIC_ACQUIRE);
    if (state) return state > 0;
    pthread_mutex_lock(&wd_lock);
    if (!wd_state) {
        int level = MPI_THREAD_SINGLE, ok = 0;
        pthread_t t;
        pthread_attr_t attr;
        /* opt-in (COLLECTIVES_BLOCKING_DEADLINE=1, or blocking_deadline(True)): a 3-rank run
         * of the silent-peer test once hung on this path, so ULFM alone does not switch it on */
        const char *env = getenv("COLLECTIVES_BLOCKING_DEADLINE");
        if (!env || strcmp(env, "1") != 0) __atomic_store_n(&wd_wanted, 0, __ATOMIC_RELAXED);
        if (MPI_Query_thread(&level) == MPI_SUCCESS && level == MPI_THREAD_MULTIPLE &&
            wd_ft_enabled() && pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            ok = pthread_create(&t, &attr, wd_main, NULL) == 0;
            pthread_attr_destroy(&attr);
        }
        __atomic_store_n(&wd_state, ok ? 1 : -1, __ATOMIC_RELEASE);
    }
    state = wd_state;
    pthread_mutex_unlock(&wd_lock);
    return state > 0 && __atomic_load_n(&wd_wanted, __ATOMIC_RELAXED);
}

/* The blocking call under the watchdog. Returns 0 (nothing done: the caller takes the
 * non-blocking path) when the watchdog is busy with another thread's call. */
static int blocking_with_deadline(MPI_Comm comm, int which, const void *sb, void *recvbuf,
                                  int count, int size, MPI_Datatype type, MPI_Op mop,
                                  double timeout, MPI_Comm notice, cl_result *res)
{
    uint64_t w = atomic_load_explicit(&wd_word, memory_order_relaxed);
    if ((w & WD_STATE) != WD_IDLE) return 0;
    const uint64_t gen = (w >> 3) + 1, armed = gen << 3 | WD_ARMED;
    if (!atomic_compare_exchange_strong(&wd_word, &w, gen << 3 | WD_CLAIMED)) return 0;
    const double t0 = cl_now();
    atomic_store_explicit(&wd_comm, comm, memory_order_relaxed);
    atomic_store_explicit(&wd_notice, notice, memory_order_relaxed);
    atomic_store_explicit(&wd_deadline, t0 + timeout, memory_order_relaxed);
    atomic_store_explicit(&wd_word, armed, memory_order_release);
    int rc = which == CL_NATIVE_ALLREDUCE
                 ? MPI_Allreduce(sb, recvbuf, count, type, mop, comm)
                 : MPI_Alltoall(sb, count / size, type, recvbuf, count / size, type, comm);
    uint64_t expect = armed;
    if (atomic_compare_exchange_strong(&wd_word, &expect, gen << 3 | WD_IDLE)) {
        while (atomic_load(&wd_busy) == armed)   /* a probe of this call's notices in flight */
            sched_yield();
        if (rc != MPI_SUCCESS) {
            int cls = rc, revoked = 0;
            MPI_Error_class(rc, &cls);
            /* A revoke does not always surface as MPI_ERR_REVOKED: Open MPI's all-to-all is
             * built on point-to-point requests and its error can come back as MPI_ERR_OTHER
             * (seen at 3 ranks, about one run in four). Taken for a failure of MPI, the caller
             * raised CommunicationError where its peers raised CollectiveTimeout; the test then
             * left its peers in a barrier, which hung. The communicator's own flag decides. */
            if (cls != MPIX_ERR_REVOKED && MPIX_Comm_is_revoked(comm, &revoked) == MPI_SUCCESS &&
                revoked)
                cls = MPIX_ERR_REVOKED;
            if (cls == MPIX_ERR_REVOKED) {
                /* another rank's watchdog revoked it: its deadline passed first, or it saw a
                 * peer's notice. That notice was sent to every rank: give it the notice grace
                 * (twice) to arrive here too, so the error names the same peer. */
                int from = -1;
                if (atomic_load_explicit(&wd_seen_word, memory_order_acquire) == armed)
                    from = atomic_load_explicit(&wd_seen_peer, memory_order_relaxed);
                const double until = cl_now() + 2 * CL_NOTICE_GRACE_MS * 1e-3;
                while (notice != MPI_COMM_NULL && from < 0) {
                    int flag = 0;
                    MPI_Status st;
                    if (MPI_Iprobe(MPI_ANY_SOURCE, CL_NOTICE_TAG, notice, &flag, &st) != MPI_SUCCESS)
                        break;
                    if (flag) from = st.MPI_SOURCE;
                    else if (cl_now() > until) break;
                    else sched_yield();
                }
                if (from >= 0) {
                    set_peer_notice(res, from);
                } else {
                    res->status = CL_TIMEOUT;
                    snprintf(res->message, sizeof res->message,
                             "another rank gave up on this call and revoked the communicator");
                }
            } else {
                set_error(res, CL_MPI_ERROR, 0, rc, "the MPI collective failed");
            }
        }
        res->elapsed = cl_now() - t0;
        return 1;
    }
    /* the watchdog fired: wait until its revoke is done, then say why (even if the call
     * itself completed meanwhile: the communicator is revoked all the same) */
    while ((atomic_load_explicit(&wd_word, memory_order_acquire) & WD_STATE) != WD_FIRED)
        sched_yield();
    int why = atomic_load_explicit(&wd_status, memory_order_relaxed);
    int peer = atomic_load_explicit(&wd_peer, memory_order_relaxed);
    atomic_store_explicit(&wd_word, gen << 3 | WD_IDLE, memory_order_release);
    res->elapsed = cl_now() - t0;
    if (why == CL_PEER_NOTICE) {
        set_peer_notice(res, peer);
    } else {
        res->status = CL_TIMEOUT;
        snprintf(res->message, sizeof res->message, "deadline of %.3g s passed", timeout);
    }
    return 1;
}
#endif

int cl_blocking_deadline(int want)
{
#if CL_HAVE_REVOKE
    /* availability is decided once; the switch only chooses whether to use it (the thread,
     * once started, stays: it only naps while nothing is armed) */
    if (want >= 0) {
        pthread_mutex_lock(&wd_lock);
        __atomic_store_n(&wd_wanted, want ? 1 : 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&wd_lock);
    }
    return wd_active();
#else
    (void)want;
    return 0;
#endif
}

int cl_native(MPI_Comm comm, int which, const void *sendbuf, void *recvbuf,
              int64_t count, const int *recvcounts, int dtype, int op, int root,
              double timeout, MPI_Comm notice, cl_result *res)
{
    memset(res, 0, sizeof *res);
    res->step = 0;
    int rc = init_half();
    if (rc != MPI_SUCCESS) {
        set_error(res, CL_MPI_ERROR, 0, rc, "creating the 16-bit float datatypes failed");
        return res->status;
    }
    MPI_Datatype type = which == CL_NATIVE_BARRIER ? MPI_BYTE : mpi_type(dtype);
    MPI_Op mop = (which == CL_NATIVE_ALLREDUCE || which == CL_NATIVE_REDUCE_SCATTER)
                     ? mpi_op(dtype, op) : MPI_OP_NULL;
    if (type == MPI_DATATYPE_NULL) {
        set_error(res, CL_BAD_PROGRAM, 0, MPI_SUCCESS, "unknown dtype code");
        return res->status;
    }
    int size = 1;
    MPI_Comm_size(comm, &size);
    const void *sb = sendbuf == recvbuf ? MPI_IN_PLACE : sendbuf;
    if (which == CL_NATIVE_ALLTOALLV)
        return native_alltoallv(comm, sendbuf, recvbuf, (const int64_t *)(const void *)recvcounts,
                                size, type, timeout, notice, res);
    if (timeout <= 0 && count <= INT_MAX) {
        /* no deadline: the blocking call is the MPI library's own fastest path */
        const double t0 = cl_now();
        switch (which) {
        case CL_NATIVE_ALLREDUCE:
            rc = MPI_Allreduce(sb, recvbuf, (int)count, type, mop, comm); break;
        case CL_NATIVE_ALLTOALL:
            rc = MPI_Alltoall(sb, (int)(count / size), type, recvbuf, (int)(count / size), type, comm);
            break;
        case CL_NATIVE_REDUCE_SCATTER:
            rc = MPI_Reduce_scatter(sendbuf, recvbuf, recvcounts, type, mop, comm); break;
        case CL_NATIVE_ALLGATHER:
            rc = MPI_Allgather(sendbuf, (int)count, type, recvbuf, (int)count, type, comm); break;
        case CL_NATIVE_BROADCAST:
            rc = MPI_Bcast(recvbuf, (int)count, type, root, comm); break;
        default:
            rc = MPI_Barrier(comm);
        }
        if (rc != MPI_SUCCESS) set_error(res, CL_MPI_ERROR, 0, rc, "the MPI collective failed");
        res->elapsed = cl_now() - t0;
        return res->status;
    }
#if CL_HAVE_REVOKE
    if ((which == CL_NATIVE_ALLREDUCE || which == CL_NATIVE_ALLTOALL) && count <= INT_MAX &&
        wd_active()) {
        int itemsize = 0;
        MPI_Type_size(type, &itemsize);
        if ((int64_t)itemsize * count <= CL_BLOCKING_DEADLINE_MAX_BYTES &&
            blocking_with_deadline(comm, which, sb, recvbuf, (int)count, size, type, mop, timeout,
                                   notice, res))
            return res->status;
    }
#endif
    MPI_Request req = MPI_REQUEST_NULL;
#if MPI_VERSION >= 4
    MPI_Count *rc64 = NULL;
    switch (which) {
    case CL_NATIVE_ALLREDUCE:
        rc = MPI_Iallreduce_c(sb, recvbuf, (MPI_Count)count, type, mop, comm, &req); break;
    case CL_NATIVE_ALLTOALL:
        rc = MPI_Ialltoall_c(sb, (MPI_Count)(count / size), type, recvbuf, (MPI_Count)(count / size),
                             type, comm, &req); break;
    case CL_NATIVE_REDUCE_SCATTER: {
        rc64 = malloc(sizeof(MPI_Count) * (size_t)size);
        if (!rc64) { set_error(res, CL_NO_MEMORY, 0, MPI_SUCCESS, "out of memory"); return res->status; }
        for (int q = 0; q < size; q++) rc64[q] = recvcounts[q];
        /* a non-blocking collective reads its count array until it completes: freed below */
        rc = MPI_Ireduce_scatter_c(sendbuf, recvbuf, rc64, type, mop, comm, &req);
        break;
    }
    case CL_NATIVE_ALLGATHER:
        rc = MPI_Iallgather_c(sendbuf, (MPI_Count)count, type, recvbuf, (MPI_Count)count, type, comm,
                              &req); break;
    case CL_NATIVE_BROADCAST:
        rc = MPI_Ibcast_c(recvbuf, (MPI_Count)count, type, root, comm, &req); break;
    default:
        rc = MPI_Ibarrier(comm, &req);
    }
#else
    if (count > INT_MAX) {
        set_error(res, CL_BAD_PROGRAM, 0, MPI_SUCCESS,
                  "this MPI (before MPI 4) cannot take more than 2^31-1 elements in one native call");
        return res->status;
    }
    switch (which) {
    case CL_NATIVE_ALLREDUCE:
        rc = MPI_Iallreduce(sb, recvbuf, (int)count, type, mop, comm, &req); break;
    case CL_NATIVE_ALLTOALL:
        rc = MPI_Ialltoall(sb, (int)(count / size), type, recvbuf, (int)(count / size), type, comm, &req);
        break;
    case CL_NATIVE_REDUCE_SCATTER:
        rc = MPI_Ireduce_scatter(sendbuf, recvbuf, recvcounts, type, mop, comm, &req); break;
    case CL_NATIVE_ALLGATHER:
        rc = MPI_Iallgather(sendbuf, (int)count, type, recvbuf, (int)count, type, comm, &req); break;
    case CL_NATIVE_BROADCAST:
        rc = MPI_Ibcast(recvbuf, (int)count, type, root, comm, &req); break;
    default:
        rc = MPI_Ibarrier(comm, &req);
    }
#endif
    if (rc != MPI_SUCCESS) {
        set_error(res, CL_MPI_ERROR, 0, rc, "starting the MPI collective failed");
        return res->status;
    }
    wait_native(&req, timeout, notice, res);
#if MPI_VERSION >= 4
    if (res->status == CL_OK || res->status == CL_MPI_ERROR)
        free(rc64); /* after a timeout or a notice MPI may still read it */
#endif
    return res->status;
}

/* ---- the MPI library's own collectives as executions ---------------------- */

/* MPI-4 persistent collectives (MPI_Allreduce_init, ...): MPICH 4+ has them as an
 * MPI 4 library; Open MPI 5.0 has them too while it still reports MPI 3.1. */
#if MPI_VERSION >= 4 || (defined(OMPI_MAJOR_VERSION) && OMPI_MAJOR_VERSION >= 5)
#define CL_HAVE_PERSISTENT 1
#else
#define CL_HAVE_PERSISTENT 0
#endif

int cl_have_persistent(void) { return CL_HAVE_PERSISTENT; }

/* One non-blocking call of the collective (each start of a non-persistent execution). */
static int start_nonblocking(cl_execution *e)
{
    const void *sb = e->sendbuf == e->recvbuf ? MPI_IN_PLACE : e->sendbuf;
    const int size = e->size;
    MPI_Comm comm = e->x.comm;
    MPI_Request *req = &e->req;
#if MPI_VERSION >= 4
    const MPI_Count count = (MPI_Count)e->count;
    switch (e->which) {
    case CL_NATIVE_ALLREDUCE:
        return MPI_Iallreduce_c(sb, e->recvbuf, count, e->type, e->mop, comm, req);
    case CL_NATIVE_ALLTOALL:
        return MPI_Ialltoall_c(sb, count / size, e->type, e->recvbuf, count / size, e->type, comm, req);
    case CL_NATIVE_REDUCE_SCATTER:
        return MPI_Ireduce_scatter_c(e->sendbuf, e->recvbuf, (const MPI_Count *)e->counts64, e->type,
                                     e->mop, comm, req);
    case CL_NATIVE_ALLGATHER:
        return MPI_Iallgather_c(e->sendbuf, count, e->type, e->recvbuf, count, e->type, comm, req);
    case CL_NATIVE_BROADCAST:
        return MPI_Ibcast_c(e->recvbuf, count, e->type, e->root, comm, req);
    default:
        return MPI_Ibarrier(comm, req);
    }
#else
    const int count = (int)e->count;
    switch (e->which) {
    case CL_NATIVE_ALLREDUCE:
        return MPI_Iallreduce(sb, e->recvbuf, count, e->type, e->mop, comm, req);
    case CL_NATIVE_ALLTOALL:
        return MPI_Ialltoall(sb, count / size, e->type, e->recvbuf, count / size, e->type, comm, req);
    case CL_NATIVE_REDUCE_SCATTER:
        return MPI_Ireduce_scatter(e->sendbuf, e->recvbuf, e->counts, e->type, e->mop, comm, req);
    case CL_NATIVE_ALLGATHER:
        return MPI_Iallgather(e->sendbuf, count, e->type, e->recvbuf, count, e->type, comm, req);
    case CL_NATIVE_BROADCAST:
        return MPI_Ibcast(e->recvbuf, count, e->type, e->root, comm, req);
    default:
        return MPI_Ibarrier(comm, req);
    }
#endif
}

#if CL_HAVE_PERSISTENT
/* The persistent request, made once (MPI_Allreduce_init, ...). */
static int init_persistent(cl_execution *e)
{
    const void *sb = e->sendbuf == e->recvbuf ? MPI_IN_PLACE : e->sendbuf;
    const int count = (int)e->count, size = e->size;
    MPI_Comm comm = e->x.comm;
    MPI_Request *req = &e->req;
    switch (e->which) {
    case CL_NATIVE_ALLREDUCE:
        return MPI_Allreduce_init(sb, e->recvbuf, count, e->type, e->mop, comm, MPI_INFO_NULL, req);
    case CL_NATIVE_ALLTOALL:
        return MPI_Alltoall_init(sb, count / size, e->type, e->recvbuf, count / size, e->type, comm,
                                 MPI_INFO_NULL, req);
    case CL_NATIVE_REDUCE_SCATTER:
        return MPI_Reduce_scatter_init(e->sendbuf, e->recvbuf, e->counts, e->type, e->mop, comm,
                                       MPI_INFO_NULL, req);
    case CL_NATIVE_ALLGATHER:
        return MPI_Allgather_init(e->sendbuf, count, e->type, e->recvbuf, count, e->type, comm,
                                  MPI_INFO_NULL, req);
    case CL_NATIVE_BROADCAST:
        return MPI_Bcast_init(e->recvbuf, count, e->type, e->root, comm, MPI_INFO_NULL, req);
    default:
        return MPI_Barrier_init(comm, MPI_INFO_NULL, req);
    }
}
#endif

static int start_native(cl_execution *e)
{
    if (e->persistent) return MPI_Start(&e->req);
    return start_nonblocking(e);
}

cl_execution *cl_create_native(MPI_Comm comm, int which, const void *sendbuf, void *recvbuf,
                               int64_t count, const int *recvcounts, int dtype, int op, int root,
                               int persistent, MPI_Comm notice, cl_result *res)
{
    memset(res, 0, sizeof *res);
    int rc = init_half();
    if (rc != MPI_SUCCESS) {
        set_error(res, CL_MPI_ERROR, 0, rc, "creating the 16-bit float datatypes failed");
        return NULL;
    }
    MPI_Datatype type = which == CL_NATIVE_BARRIER ? MPI_BYTE : mpi_type(dtype);
    if (type == MPI_DATATYPE_NULL) {
        set_error(res, CL_BAD_PROGRAM, 0, MPI_SUCCESS, "unknown dtype code");
        return NULL;
    }
#if MPI_VERSION < 4
    if (count > INT_MAX) {
        set_error(res, CL_BAD_PROGRAM, 0, MPI_SUCCESS,
                  "this MPI (before MPI 4) cannot take more than 2^31-1 elements in one native call");
        return NULL;
    }
#endif
    cl_execution *e = calloc(1, sizeof *e);
    if (!e) {
        set_error(res, CL_NO_MEMORY, 0, MPI_SUCCESS, "out of memory for an execution");
        return NULL;
    }
    e->res.step = 0;
    e->native = 1;
    e->which = which;
    e->root = root;
    e->sendbuf = sendbuf;
    e->recvbuf = recvbuf;
    e->count = count;
    e->type = type;
    e->mop = (which == CL_NATIVE_ALLREDUCE || which == CL_NATIVE_REDUCE_SCATTER) ? mpi_op(dtype, op)
                                                                                  : MPI_OP_NULL;
    e->req = MPI_REQUEST_NULL;
    e->x.comm = comm;
    e->x.notice = notice;
    e->x.step = 0;
    e->nrows = 0;
    MPI_Comm_size(comm, &e->size);
    if (which == CL_NATIVE_REDUCE_SCATTER) {
        /* a collective in flight reads its count array until it completes: our own copy */
        e->counts = malloc(sizeof(int) * (size_t)e->size);
#if MPI_VERSION >= 4
        e->counts64 = malloc(sizeof(MPI_Count) * (size_t)e->size);
#endif
        if (!e->counts
#if MPI_VERSION >= 4
            || !e->counts64
#endif
            ) {
            free(e->counts); free(e->counts64); free(e);
            set_error(res, CL_NO_MEMORY, 0, MPI_SUCCESS, "out of memory");
            return NULL;
        }
        for (int q = 0; q < e->size; q++) {
            e->counts[q] = recvcounts[q];
#if MPI_VERSION >= 4
            ((MPI_Count *)e->counts64)[q] = recvcounts[q];
#endif
        }
    }
#if CL_HAVE_PERSISTENT
    int64_t largest = count;
    if (which == CL_NATIVE_ALLTOALL) largest = count / (e->size > 0 ? e->size : 1);
    if (persistent && largest <= INT_MAX) {
        /* larger counts fall back to one non-blocking (large-count) call per start */
        rc = init_persistent(e);
        if (rc != MPI_SUCCESS) {
            free(e->counts); free(e->counts64); free(e);
            set_error(res, CL_MPI_ERROR, 0, rc, "creating the persistent MPI collective failed");
            return NULL;
        }
        e->persistent = 1;
    }
#else
    (void)persistent;
#endif
    e->phase = PHASE_IDLE;
    return e;
}

int cl_is_persistent(const cl_execution *e) { return e->persistent; }

int cl_rebind_program(cl_execution *e, void *inbuf, void *outbuf, int tag_base)
{
    /* a run in flight, or a failed one, may still have MPI reading and writing the old ones */
    if (e->native || tag_base < 0 || (e->phase != PHASE_IDLE && e->phase != PHASE_DONE))
        return CL_BAD_PROGRAM;
    e->bufs[CL_BUF_IN] = inbuf;
    e->bufs[CL_BUF_OUT] = outbuf;
    e->x.tag_base = tag_base;
    return CL_OK;
}

int cl_rebind_native(cl_execution *e, const void *sendbuf, void *recvbuf)
{
    /* a persistent request is bound to its buffers by MPI; a run in flight, or a failed
     * one, may still have MPI reading and writing the old ones */
    if (!e->native || e->persistent || (e->phase != PHASE_IDLE && e->phase != PHASE_DONE))
        return CL_BAD_PROGRAM;
    e->sendbuf = sendbuf;
    e->recvbuf = recvbuf;
    return CL_OK;
}
