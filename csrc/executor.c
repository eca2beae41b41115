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

/* State of one communicating op of the current step. */
typedef struct {
    const cl_row *row;
    char *base;            /* first byte of the region sent from or received into */
    int64_t nbytes;
    int64_t nseg;
    int64_t posted;        /* segments posted so far */
    int64_t completed;     /* segments whose transfer completed */
    int64_t reduced;       /* reducing receives: segments reduced, always in order */
    int slot0;             /* first scratch slot (reducing receives) */
    int64_t *slot_seg;     /* reducing receives: segment held by each slot, -1 if free */
    char *seg_done;        /* reducing receives: per slot, transfer complete and not yet reduced */
    double stamp;          /* emulation: the sender's step start time, sent or received */
} op_state;

/* Request bookkeeping: which op and slot/segment each request belongs to. */
typedef struct {
    int op;
    int slot;     /* reducing receives: slot index; otherwise -1 */
    int64_t seg;
} req_info;

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

int cl_execute(MPI_Comm comm, const cl_row *rows, int64_t nrows, void *bufs[3],
               int dtype, int op, int64_t segment_bytes, int inflight,
               void *scratch, int64_t scratch_bytes, double timeout, int tag_base,
               const double *holds, cl_result *res)
{
    const double t0 = cl_now();
    const double deadline = timeout > 0 ? t0 + timeout : 0.0;
    const int itemsize = cl_dtype_size(dtype);
    memset(res, 0, sizeof *res);
    res->step = -1;
    if (itemsize <= 0) {
        set_error(res, CL_BAD_PROGRAM, -1, MPI_SUCCESS, "unknown dtype code");
        return res->status;
    }
    if (segment_bytes < itemsize) segment_bytes = itemsize;
    segment_bytes -= segment_bytes % itemsize;       /* segments hold whole elements */
    if (segment_bytes > (int64_t)INT_MAX) segment_bytes = ((int64_t)INT_MAX / itemsize) * itemsize;
    if (inflight < 1) inflight = 1;

    int64_t need = cl_scratch_needed(rows, nrows, itemsize, segment_bytes, inflight);
    if (need > scratch_bytes) {
        set_error(res, CL_BAD_PROGRAM, -1, MPI_SUCCESS, "scratch buffer too small for the program");
        return res->status;
    }
    res->peak_scratch_bytes = need;

    /* Sizes for the per-step arrays: the largest step decides. */
    int64_t max_ops = 0, max_reqs = 0, max_slots = 0;
    for (int64_t i = 0; i < nrows;) {
        int64_t step = rows[i].step, nops = 0, nreq = 0, nslots = 0;
        for (; i < nrows && rows[i].step == step; i++) {
            if (rows[i].kind == CL_OP_COPY) continue;
            int64_t ns = nsegments(rows[i].count * itemsize, segment_bytes);
            nops++;
            if (holds) nreq++;  /* the time stamp that travels with each message */
            if (rows[i].kind == CL_OP_RECV_REDUCE) {
                int64_t s = ns < inflight ? ns : inflight;
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
    op_state *ops = calloc((size_t)(max_ops ? max_ops : 1), sizeof *ops);
    MPI_Request *reqs = malloc((size_t)(max_reqs ? max_reqs : 1) * sizeof *reqs);
    req_info *info = malloc((size_t)(max_reqs ? max_reqs : 1) * sizeof *info);
    int *indices = malloc((size_t)(max_reqs ? max_reqs : 1) * sizeof *indices);
    MPI_Status *statuses = malloc((size_t)(max_reqs ? max_reqs : 1) * sizeof *statuses);
    int64_t *slot_seg = malloc((size_t)(max_slots ? max_slots : 1) * sizeof *slot_seg);
    char *seg_done = malloc((size_t)(max_slots ? max_slots : 1));
    if (!ops || !reqs || !info || !indices || !statuses || !slot_seg || !seg_done) {
        free(ops); free(reqs); free(info); free(indices); free(statuses); free(slot_seg); free(seg_done);
        set_error(res, CL_NO_MEMORY, -1, MPI_SUCCESS, "out of memory for request tables");
        return res->status;
    }

    int rc = MPI_SUCCESS;
    int64_t i = 0;
    while (i < nrows && res->status == CL_OK) {
        const int64_t step = rows[i].step;
        int64_t end = i;
        while (end < nrows && rows[end].step == step) end++;

        /* 1. local copies, in program order */
        for (int64_t k = i; k < end; k++) {
            const cl_row *r = &rows[k];
            if (r->kind != CL_OP_COPY || r->count <= 0) continue;
            char *src = (char *)bufs[r->src_buf] + r->src_off * itemsize;
            char *dst = (char *)bufs[r->dst_buf] + r->dst_off * itemsize;
            if (src != dst) memmove(dst, src, (size_t)(r->count * itemsize));
        }

        /* 2. post every send and receive of the step. Scratch slots of reducing
         * receives are as large as the step's largest segment (cl_scratch_needed). */
        int64_t slot_bytes = 0;
        for (int64_t k = i; k < end; k++) {
            if (rows[k].kind != CL_OP_RECV_REDUCE) continue;
            int64_t nb = rows[k].count * itemsize;
            if (nb > slot_bytes) slot_bytes = nb;
        }
        if (slot_bytes > segment_bytes) slot_bytes = segment_bytes;
        int nops = 0, nreq = 0, slot = 0;
        const double step_start = cl_now();
        for (int64_t k = i; k < end; k++) {
            const cl_row *r = &rows[k];
            if (r->kind == CL_OP_COPY || r->count <= 0) continue;
            op_state *o = &ops[nops];
            memset(o, 0, sizeof *o);
            o->row = r;
            o->nbytes = r->count * itemsize;
            o->nseg = nsegments(o->nbytes, segment_bytes);
            o->base = r->kind == CL_OP_SEND ? (char *)bufs[r->src_buf] + r->src_off * itemsize
                                            : (char *)bufs[r->dst_buf] + r->dst_off * itemsize;
            int tag = tag_base + (int)(r->tag % CL_TAG_SPAN);
            if (holds) {
                int stag = tag_base + CL_TAG_SPAN + (int)(r->tag % CL_TAG_SPAN);
                info[nreq] = (req_info){nops, -2, 0};
                if (r->kind == CL_OP_SEND) {
                    o->stamp = step_start;
                    rc = MPI_Isend(&o->stamp, 1, MPI_DOUBLE, (int)r->peer, stag, comm, &reqs[nreq]);
                } else {
                    rc = MPI_Irecv(&o->stamp, 1, MPI_DOUBLE, (int)r->peer, stag, comm, &reqs[nreq]);
                }
                if (rc != MPI_SUCCESS) { nops++; break; }
                nreq++;
            }
            if (r->kind == CL_OP_RECV_REDUCE) {
                int nslots = (int)(o->nseg < inflight ? o->nseg : inflight);
                o->slot0 = slot;
                o->slot_seg = slot_seg + slot;
                o->seg_done = seg_done + slot;
                for (int s = 0; s < nslots; s++) {
                    o->slot_seg[s] = s;
                    o->seg_done[s] = 0;
                    info[nreq] = (req_info){nops, s, s};
                    rc = post_segment(comm, o, s, slot + s, scratch, segment_bytes, slot_bytes, tag, &reqs[nreq]);
                    if (rc != MPI_SUCCESS) break;
                    nreq++;
                    o->posted++;
                }
                slot += nslots;
            } else {
                for (int64_t s = 0; s < o->nseg; s++) {
                    info[nreq] = (req_info){nops, -1, s};
                    rc = post_segment(comm, o, s, -1, scratch, segment_bytes, slot_bytes, tag, &reqs[nreq]);
                    if (rc != MPI_SUCCESS) break;
                    nreq++;
                    o->posted++;
                }
            }
            nops++;
            if (rc != MPI_SUCCESS) break;
        }
        if (rc != MPI_SUCCESS) {
            set_error(res, CL_MPI_ERROR, step, rc, "posting a message failed");
            break;
        }

        /* 3. wait with a deadline; reduce segments as they arrive, in program order */
        int active = nreq, idle = 0;
        int64_t checks = 0;
        while (active > 0) {
            int outcount = 0;
            rc = MPI_Testsome(nreq, reqs, &outcount, indices, statuses);
            if (rc != MPI_SUCCESS) {
                int code = rc, peer = -1;
                if (rc == MPI_ERR_IN_STATUS && outcount != MPI_UNDEFINED) {
                    for (int q = 0; q < outcount; q++) {
                        if (statuses[q].MPI_ERROR != MPI_SUCCESS) {
                            code = statuses[q].MPI_ERROR;
                            peer = (int)ops[info[indices[q]].op].row->peer;
                            break;
                        }
                    }
                }
                set_error(res, CL_MPI_ERROR, step, code, "waiting for a message failed");
                if (peer >= 0) { res->npeers = 1; res->peers[0] = peer; }
                break;
            }
            if (outcount == MPI_UNDEFINED) outcount = 0;
            int progressed = outcount > 0;
            for (int q = 0; q < outcount; q++) {
                req_info *ri = &info[indices[q]];
                op_state *o = &ops[ri->op];
                o->completed++;
                if (ri->slot >= 0) {
                    o->seg_done[ri->slot] = 1;
                } else {
                    if (ri->slot == -2) o->completed--;  /* a time stamp, not a segment */
                    active--;
                }
            }
            /* reduce whatever is ready, and reuse its slot for a later segment */
            for (int j = 0; j < nops; j++) {
                op_state *o = &ops[j];
                if (o->row->kind != CL_OP_RECV_REDUCE) continue;
                int nslots = (int)(o->nseg < inflight ? o->nseg : inflight);
                for (;;) {
                    if (o->reduced >= o->nseg) break;
                    int s = (int)(o->reduced % nslots);
                    if (!o->seg_done[s] || o->slot_seg[s] != o->reduced) break;
                    if (!may_reduce(ops, j, o->reduced, segment_bytes)) break;
                    int64_t off = o->reduced * segment_bytes;
                    int64_t len = o->nbytes - off < segment_bytes ? o->nbytes - off : segment_bytes;
                    cl_reduce(o->base + off, (char *)scratch + (int64_t)(o->slot0 + s) * slot_bytes,
                              len / itemsize, dtype, op);
                    o->reduced++;
                    o->seg_done[s] = 0;
                    progressed = 1;
                    /* find the request that owned this slot and repost it */
                    int rq = -1;
                    for (int t = 0; t < nreq; t++)
                        if (info[t].op == j && info[t].slot == s) { rq = t; break; }
                    if (o->posted < o->nseg) {
                        int tag = tag_base + (int)(o->row->tag % CL_TAG_SPAN);
                        int64_t seg = o->posted;
                        o->slot_seg[s] = seg;
                        info[rq].seg = seg;
                        rc = post_segment(comm, o, seg, o->slot0 + s, scratch, segment_bytes,
                                          slot_bytes, tag, &reqs[rq]);
                        if (rc != MPI_SUCCESS) break;
                        o->posted++;
                    } else {
                        o->slot_seg[s] = -1;
                        active--;
                    }
                }
                if (rc != MPI_SUCCESS) break;
            }
            if (rc != MPI_SUCCESS) {
                set_error(res, CL_MPI_ERROR, step, rc, "posting a message failed");
                break;
            }
            if (active <= 0) break;
            if (progressed) {
                idle = 0;
                continue;
            }
            /* nothing new: check the deadline, and let other ranks on this core run */
            if (deadline > 0 && (++checks & 15) == 0 && cl_now() > deadline) {
                res->status = CL_TIMEOUT;
                break;
            }
            if (++idle > polls_before_yield) {
                sched_yield();
                idle = 0;
            }
        }

        if (res->status == CL_OK && holds) {
            /* emulation: the step's messages arrive when the modelled network delivers them */
            double release = 0.0;
            for (int j = 0; j < nops; j++) {
                const cl_row *r = ops[j].row;
                if (r->kind == CL_OP_SEND) continue;
                double t = ops[j].stamp + holds[r - rows];
                if (t > release) release = t;
            }
            if (deadline > 0 && release > deadline) {
                hold_until(deadline);
                res->status = CL_TIMEOUT;
            } else {
                hold_until(release);
            }
        }
        if (res->status != CL_OK) {
            /* report who we were waiting for, then drop the step's requests */
            res->step = step;
            int64_t outstanding = 0;
            for (int j = 0; j < nops; j++) {
                op_state *o = &ops[j];
                int64_t done = o->row->kind == CL_OP_RECV_REDUCE ? o->reduced : o->completed;
                if (done >= o->nseg) continue;
                int64_t left = o->nbytes - done * segment_bytes;
                outstanding += left > 0 ? left : 0;
                int peer = (int)o->row->peer, seen = 0;
                for (int q = 0; q < res->npeers; q++) seen |= res->peers[q] == peer;
                if (!seen && res->npeers < CL_MAX_REPORTED_PEERS) res->peers[res->npeers++] = peer;
            }
            res->bytes_outstanding = outstanding;
            for (int t = 0; t < nreq; t++) {
                if (reqs[t] == MPI_REQUEST_NULL) continue;
                if (ops[info[t].op].row->kind != CL_OP_SEND) MPI_Cancel(&reqs[t]);
                MPI_Request_free(&reqs[t]);
            }
            if (res->status == CL_TIMEOUT)
                snprintf(res->message, sizeof res->message, "deadline of %.3g s passed", timeout);
            break;
        }
        i = end;
    }
    res->elapsed = cl_now() - t0;
    free(ops); free(reqs); free(info); free(indices); free(statuses); free(slot_seg); free(seg_done);
    return res->status;
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

int cl_native(MPI_Comm comm, int which, const void *sendbuf, void *recvbuf,
              int64_t count, const int *recvcounts, int dtype, int op, int root,
              double timeout, cl_result *res)
{
    const double t0 = cl_now();
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
    if (timeout <= 0 && count <= INT_MAX) {
        /* no deadline: the blocking call is the MPI library's own fastest path */
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
    const double deadline = timeout > 0 ? t0 + timeout : 0.0;
    int flag = 0, idle = 0;
    int64_t checks = 0;
    while (!flag) {
        rc = MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            set_error(res, CL_MPI_ERROR, 0, rc, "the MPI collective failed");
            break;
        }
        if (flag) break;
        if (deadline > 0 && (++checks & 15) == 0 && cl_now() > deadline) {
            res->status = CL_TIMEOUT;
            snprintf(res->message, sizeof res->message, "deadline of %.3g s passed", timeout);
            /* a collective request cannot be cancelled; it is left to MPI */
            break;
        }
        if (++idle > polls_before_yield) {
            sched_yield();
            idle = 0;
        }
    }
    res->elapsed = cl_now() - t0;
#if MPI_VERSION >= 4
    if (res->status != CL_TIMEOUT) free(rc64); /* after a timeout MPI may still read it */
#endif
    return res->status;
}
