/*
 * sensor._fastpath: Python bindings of the compiled core.
 *
 * Arrays cross the boundary through the buffer protocol (numpy arrays,
 * bytes, bytearray); row layouts are exported by layouts() so the Python
 * dtypes are built from the C structs and can never drift from them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"
#include "ring.h"

/* ------------------------------------------------------------ layouts */

typedef struct {
    const char *name;
    const char *fmt;   /* numpy type string */
    size_t offset;
} field_t;

#define F(type, name, fmt) {#name, fmt, offsetof(type, name)}

static const field_t pkt_fields[] = {
    F(pkt_t, ts, "<i8"), F(pkt_t, frame, "<u8"), F(pkt_t, src_hi, "<u8"),
    F(pkt_t, src_lo, "<u8"), F(pkt_t, dst_hi, "<u8"), F(pkt_t, dst_lo, "<u8"),
    F(pkt_t, frame_off, "<u4"), F(pkt_t, caplen, "<u4"), F(pkt_t, wirelen, "<u4"),
    F(pkt_t, seq, "<u4"), F(pkt_t, ack, "<u4"), F(pkt_t, ip_len, "<u4"),
    F(pkt_t, l4_len, "<u4"), F(pkt_t, l4_off, "<u4"), F(pkt_t, l3_off, "<u4"),
    F(pkt_t, frag_id, "<u4"), F(pkt_t, frag_off, "<u4"), F(pkt_t, sport, "<u2"),
    F(pkt_t, dport, "<u2"), F(pkt_t, window, "<u2"), F(pkt_t, urg_ptr, "<u2"),
    F(pkt_t, linktype, "<u2"), F(pkt_t, l3_hdr_len, "<u2"), F(pkt_t, wrong_frag, "<u2"),
    F(pkt_t, proto, "u1"), F(pkt_t, ip_ver, "u1"), F(pkt_t, tcp_flags, "u1"),
    F(pkt_t, status, "u1"), F(pkt_t, frag_more, "u1"), F(pkt_t, ip_csum_bad, "u1"),
};

static const field_t conn_fields[] = {
    F(conn_t, uid, "<u8"), F(conn_t, order, "<u8"), F(conn_t, ts_first, "<i8"),
    F(conn_t, ts_last, "<i8"), F(conn_t, orig_hi, "<u8"), F(conn_t, orig_lo, "<u8"),
    F(conn_t, resp_hi, "<u8"), F(conn_t, resp_lo, "<u8"), F(conn_t, orig_bytes, "<u8"),
    F(conn_t, resp_bytes, "<u8"), F(conn_t, orig_ip_bytes, "<u8"),
    F(conn_t, resp_ip_bytes, "<u8"), F(conn_t, orig_pkts, "<u8"), F(conn_t, resp_pkts, "<u8"),
    F(conn_t, first_frame, "<u8"), F(conn_t, urgent, "<u4"), F(conn_t, wrong_fragment, "<u4"),
    F(conn_t, orig_p, "<u2"), F(conn_t, resp_p, "<u2"), F(conn_t, proto, "u1"),
    F(conn_t, ip_ver, "u1"), F(conn_t, conn_state, "u1"), F(conn_t, hist_len, "u1"),
    F(conn_t, orig_state, "u1"), F(conn_t, resp_state, "u1"), F(conn_t, end_reason, "u1"),
    F(conn_t, ftp_data, "u1"), {"history", "S" "32", offsetof(conn_t, history)},
    F(conn_t, hot, "<u2"), F(conn_t, num_compromised, "<u2"), F(conn_t, num_root, "<u2"),
    F(conn_t, num_file_creations, "<u2"), F(conn_t, num_access_files, "<u2"),
    F(conn_t, num_failed_logins, "u1"), F(conn_t, logged_in, "u1"), F(conn_t, root_shell, "u1"),
    F(conn_t, su_attempted, "u1"), F(conn_t, num_shells, "u1"), F(conn_t, is_host_login, "u1"),
    F(conn_t, is_guest_login, "u1"),
};

static const field_t winfeat_fields[] = {
    F(winfeat_t, count, "<u2"), F(winfeat_t, srv_count, "<u2"), F(winfeat_t, serror_rate, "<f8"),
    F(winfeat_t, srv_serror_rate, "<f8"), F(winfeat_t, rerror_rate, "<f8"),
    F(winfeat_t, srv_rerror_rate, "<f8"), F(winfeat_t, same_srv_rate, "<f8"),
    F(winfeat_t, diff_srv_rate, "<f8"), F(winfeat_t, srv_diff_host_rate, "<f8"),
    F(winfeat_t, dst_host_count, "<u2"), F(winfeat_t, dst_host_srv_count, "<u2"),
    F(winfeat_t, dst_host_same_srv_rate, "<f8"), F(winfeat_t, dst_host_diff_srv_rate, "<f8"),
    F(winfeat_t, dst_host_same_src_port_rate, "<f8"),
    F(winfeat_t, dst_host_srv_diff_host_rate, "<f8"), F(winfeat_t, dst_host_serror_rate, "<f8"),
    F(winfeat_t, dst_host_srv_serror_rate, "<f8"), F(winfeat_t, dst_host_rerror_rate, "<f8"),
    F(winfeat_t, dst_host_srv_rerror_rate, "<f8"),
};

static const field_t iface_fields[] = {
    F(iface_t, linktype, "<u4"), F(iface_t, snaplen, "<u4"), F(iface_t, tsresol, "<i4"),
    F(iface_t, fcs_len, "<i4"), F(iface_t, tsoffset_ns, "<i8"),
};

static PyObject *layout(const field_t *fields, size_t n, size_t itemsize)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *t = Py_BuildValue("(ssn)", fields[i].name, fields[i].fmt,
                                    (Py_ssize_t)fields[i].offset);
        if (!t) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return Py_BuildValue("(nN)", (Py_ssize_t)itemsize, list);
}

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

static PyObject *py_layouts(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return Py_BuildValue(
        "{sNsNsNsN}", "pkt", layout(pkt_fields, NFIELDS(pkt_fields), sizeof(pkt_t)), "conn",
        layout(conn_fields, NFIELDS(conn_fields), sizeof(conn_t)), "iface",
        layout(iface_fields, NFIELDS(iface_fields), sizeof(iface_t)), "winfeat",
        layout(winfeat_fields, NFIELDS(winfeat_fields), sizeof(winfeat_t)));
}

/* ---------------------------------------------------------- buffers */

static int rows_view(Py_buffer *view, size_t itemsize, size_t *count)
{
    if (view->len < 0 || (size_t)view->len % itemsize) {
        PyErr_SetString(PyExc_ValueError, "row buffer size is not a multiple of the row size");
        return -1;
    }
    *count = (size_t)view->len / itemsize;
    return 0;
}

/* ----------------------------------------------------------- walkers */

static PyObject *walk_result(const walk_t *w)
{
    return Py_BuildValue("(nniiKL)", (Py_ssize_t)w->n, (Py_ssize_t)w->pos, w->status, w->damage,
                         (unsigned long long)w->next_frame, (long long)w->last_ts);
}

static PyObject *py_walk_pcap(PyObject *self, PyObject *args)
{
    Py_buffer buf, out;
    Py_ssize_t pos, rec_hdr_len;
    int swapped, nsec;
    unsigned int snaplen, linktype;
    unsigned long long next_frame;
    long long last_ts;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*niinIIw*KL", &buf, &pos, &swapped, &nsec, &rec_hdr_len,
                          &snaplen, &linktype, &out, &next_frame, &last_ts))
        return NULL;
    size_t max_out;
    PyObject *res = NULL;
    if (rows_view(&out, sizeof(pkt_t), &max_out) == 0) {
        if (pos < 0 || pos > buf.len || rec_hdr_len < 16) {
            PyErr_SetString(PyExc_ValueError, "bad walk position");
        } else {
            walk_t w = {(size_t)pos, 0, next_frame, last_ts, 0, 0};
            Py_BEGIN_ALLOW_THREADS
            walk_pcap(buf.buf, (size_t)buf.len, swapped, nsec, (size_t)rec_hdr_len, snaplen,
                      linktype, out.buf, max_out, &w);
            Py_END_ALLOW_THREADS
            res = walk_result(&w);
        }
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&out);
    return res;
}

static PyObject *py_walk_pcapng(PyObject *self, PyObject *args)
{
    Py_buffer buf, ifaces, out;
    Py_ssize_t pos;
    int swapped;
    unsigned long long next_frame;
    long long last_ts;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*niy*w*KL", &buf, &pos, &swapped, &ifaces, &out, &next_frame,
                          &last_ts))
        return NULL;
    size_t max_out, n_ifaces;
    PyObject *res = NULL;
    if (rows_view(&out, sizeof(pkt_t), &max_out) == 0 &&
        rows_view(&ifaces, sizeof(iface_t), &n_ifaces) == 0) {
        if (pos < 0 || pos > buf.len) {
            PyErr_SetString(PyExc_ValueError, "bad walk position");
        } else {
            walk_t w = {(size_t)pos, 0, next_frame, last_ts, 0, 0};
            walk_pcapng(buf.buf, (size_t)buf.len, swapped, ifaces.buf, n_ifaces, out.buf, max_out,
                        &w);
            res = walk_result(&w);
        }
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&ifaces);
    PyBuffer_Release(&out);
    return res;
}

static PyObject *resync_result(size_t pos, int need_more)
{
    return Py_BuildValue("(nO)", pos == (size_t)-1 ? (Py_ssize_t)-1 : (Py_ssize_t)pos,
                         need_more ? Py_True : Py_False);
}

static PyObject *py_resync_pcap(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t start, rec_hdr_len;
    int swapped, nsec, at_eof;
    unsigned int snaplen;
    long long last_ts;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*niinILp", &buf, &start, &swapped, &nsec, &rec_hdr_len,
                          &snaplen, &last_ts, &at_eof))
        return NULL;
    PyObject *res = NULL;
    if (start < 0 || start > buf.len || rec_hdr_len < 16) {
        PyErr_SetString(PyExc_ValueError, "bad resync position");
    } else {
        int need_more = 0;
        size_t p = resync_pcap(buf.buf, (size_t)start, (size_t)buf.len, swapped, nsec,
                               (size_t)rec_hdr_len, snaplen, last_ts, at_eof, &need_more);
        res = resync_result(p, need_more);
    }
    PyBuffer_Release(&buf);
    return res;
}

static PyObject *py_resync_pcapng(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t start;
    int swapped, at_eof;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*nip", &buf, &start, &swapped, &at_eof))
        return NULL;
    PyObject *res = NULL;
    if (start < 0 || start > buf.len) {
        PyErr_SetString(PyExc_ValueError, "bad resync position");
    } else {
        int need_more = 0;
        size_t p = resync_pcapng(buf.buf, (size_t)start, (size_t)buf.len, swapped, at_eof,
                                 &need_more);
        res = resync_result(p, need_more);
    }
    PyBuffer_Release(&buf);
    return res;
}

/* ------------------------------------------------------------ decode */

static PyObject *py_decode(PyObject *self, PyObject *args)
{
    Py_buffer buf, rows;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*", &buf, &rows))
        return NULL;
    size_t n;
    PyObject *res = NULL;
    if (rows_view(&rows, sizeof(pkt_t), &n) == 0) {
        Py_BEGIN_ALLOW_THREADS
        decode_rows(buf.buf, (size_t)buf.len, rows.buf, n);
        Py_END_ALLOW_THREADS
        res = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&rows);
    return res;
}

/* ----------------------------------------------------------- Tracker */

typedef struct {
    PyObject_HEAD
    tracker_t *tr;
} TrackerObject;

static int Tracker_init(TrackerObject *self, PyObject *args, PyObject *kwds)
{
    timeouts_t t;
    Py_buffer likely_tcp, likely_udp, analyzers, rules;
    unsigned long long hash_seed, uid_seed;
    Py_ssize_t reorder_limit;
    unsigned int content_cap;
    (void)kwds;
    if (!PyArg_ParseTuple(args, "(LLLLLLL)y*y*KKny*y*I", &t.tcp_inactivity, &t.tcp_handshake,
                          &t.tcp_attempt, &t.tcp_close, &t.udp_inactivity, &t.icmp_inactivity,
                          &t.max_lifetime, &likely_tcp, &likely_udp, &hash_seed, &uid_seed,
                          &reorder_limit, &analyzers, &rules, &content_cap))
        return -1;
    int rc = -1;
    if (likely_tcp.len != 65536 || likely_udp.len != 65536 || analyzers.len != 65536) {
        PyErr_SetString(PyExc_ValueError, "port tables must have 65536 entries");
    } else {
        tracker_free(self->tr);
        self->tr = tracker_new(&t, likely_tcp.buf, likely_udp.buf, hash_seed, uid_seed,
                               reorder_limit > 0 ? (size_t)reorder_limit : 1, analyzers.buf,
                               rules.buf, (size_t)rules.len, content_cap);
        if (!self->tr)
            PyErr_SetString(PyExc_ValueError, "bad content pattern table, or out of memory");
        else
            rc = 0;
    }
    PyBuffer_Release(&likely_tcp);
    PyBuffer_Release(&likely_udp);
    PyBuffer_Release(&analyzers);
    PyBuffer_Release(&rules);
    return rc;
}

static void Tracker_dealloc(TrackerObject *self)
{
    tracker_free(self->tr);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int tracker_ready(TrackerObject *self)
{
    if (!self->tr) {
        PyErr_SetString(PyExc_RuntimeError, "Tracker is not initialised");
        return 0;
    }
    return 1;
}

static PyObject *Tracker_process(TrackerObject *self, PyObject *args)
{
    Py_buffer rows, buf;
    if (!tracker_ready(self) || !PyArg_ParseTuple(args, "y*y*", &rows, &buf))
        return NULL;
    size_t n;
    int rc = -2;
    if (rows_view(&rows, sizeof(pkt_t), &n) == 0) {
        /* the core touches only its own memory and these held buffers: let
           the detector's thread run (onnxruntime, rules) meanwhile */
        Py_BEGIN_ALLOW_THREADS
        rc = tracker_process(self->tr, rows.buf, n, buf.buf, (size_t)buf.len);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&rows);
    PyBuffer_Release(&buf);
    if (rc == -1)
        return PyErr_NoMemory();
    if (rc == -2)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Tracker_expire(TrackerObject *self, PyObject *args)
{
    long long now;
    if (!tracker_ready(self) || !PyArg_ParseTuple(args, "L", &now))
        return NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = tracker_expire(self->tr, now);
    Py_END_ALLOW_THREADS
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Tracker_flush(TrackerObject *self, PyObject *args)
{
    (void)args;
    if (!tracker_ready(self))
        return NULL;
    if (tracker_flush(self->tr) < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Tracker_take_into(TrackerObject *self, PyObject *args)
{
    PyObject *dest;
    if (!tracker_ready(self) || !PyArg_ParseTuple(args, "O!", &PyByteArray_Type, &dest))
        return NULL;
    size_t n;
    conn_t *out = tracker_output(self->tr, &n);
    Py_ssize_t size = (Py_ssize_t)(n * sizeof(conn_t));
    /* the caller reuses the bytearray, so its pages are not faulted in afresh */
    if (PyByteArray_GET_SIZE(dest) < size && PyByteArray_Resize(dest, size) < 0)
        return NULL;
    memcpy(PyByteArray_AS_STRING(dest), out, (size_t)size);
    tracker_clear_output(self->tr);
    return PyLong_FromSize_t(n);
}

static PyObject *Tracker_set_limits(TrackerObject *self, PyObject *args)
{
    Py_ssize_t max_flows, max_bytes;
    long long hold_ns;
    if (!tracker_ready(self) || !PyArg_ParseTuple(args, "nnL", &max_flows, &max_bytes, &hold_ns))
        return NULL;
    if (max_flows < 0 || max_bytes < 0 || hold_ns < 0) {
        PyErr_SetString(PyExc_ValueError, "limits must be >= 0 (0: none)");
        return NULL;
    }
    tracker_set_limits(self->tr, (size_t)max_flows, (size_t)max_bytes, hold_ns);
    Py_RETURN_NONE;
}

static PyObject *Tracker_get_evicted(TrackerObject *self, void *closure)
{
    (void)closure;
    if (!tracker_ready(self))
        return NULL;
    return PyLong_FromUnsignedLongLong(tracker_evicted(self->tr));
}

static PyObject *Tracker_get_held(TrackerObject *self, void *closure)
{
    (void)closure;
    if (!tracker_ready(self))
        return NULL;
    return PyLong_FromSize_t(tracker_held(self->tr));
}

static PyObject *Tracker_get_released_late(TrackerObject *self, void *closure)
{
    (void)closure;
    if (!tracker_ready(self))
        return NULL;
    return PyLong_FromUnsignedLongLong(tracker_released_late(self->tr));
}

static PyObject *Tracker_get_active(TrackerObject *self, void *closure)
{
    (void)closure;
    if (!tracker_ready(self))
        return NULL;
    return PyLong_FromSize_t(tracker_active(self->tr));
}

static PyObject *Tracker_get_memory(TrackerObject *self, void *closure)
{
    (void)closure;
    if (!tracker_ready(self))
        return NULL;
    return PyLong_FromSize_t(tracker_memory(self->tr));
}

static PyMethodDef Tracker_methods[] = {
    {"process", (PyCFunction)Tracker_process, METH_VARARGS,
     "process(rows, buffer): feed decoded packet rows (status OK rows only) and their bytes."},
    {"expire", (PyCFunction)Tracker_expire, METH_VARARGS,
     "expire(now_ns): finish every connection whose deadline has passed."},
    {"flush", (PyCFunction)Tracker_flush, METH_NOARGS, "flush(): finish every connection."},
    {"set_limits", (PyCFunction)Tracker_set_limits, METH_VARARGS,
     "set_limits(max_connections, max_bytes, hold_ns): evict the longest idle when either count is reached; release a finished record after hold_ns even if older connections are open (0: no limit)."},
    {"take_into", (PyCFunction)Tracker_take_into, METH_VARARGS,
     "take_into(bytearray) -> n: copy the released records (conn layout, start order) to its start."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Tracker_getset[] = {
    {"active", (getter)Tracker_get_active, NULL, "open connections", NULL},
    {"evicted", (getter)Tracker_get_evicted, NULL, "connections finished early because the table was full", NULL},
    {"memory", (getter)Tracker_get_memory, NULL, "bytes held by the tracker", NULL},
    {"held", (getter)Tracker_get_held, NULL, "finished records waiting for older ones", NULL},
    {"released_late", (getter)Tracker_get_released_late, NULL,
     "records released after younger ones (reorder limit reached)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TrackerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sensor._fastpath.Tracker",
    .tp_basicsize = sizeof(TrackerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Tracker(timeouts_ns, likely_tcp, likely_udp, hash_seed, uid_seed, reorder_limit, "
              "analyzer_ports, content_patterns, content_cap)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Tracker_init,
    .tp_dealloc = (destructor)Tracker_dealloc,
    .tp_methods = Tracker_methods,
    .tp_getset = Tracker_getset,
};

/* ----------------------------------------------------------- Windows */

typedef struct {
    PyObject_HEAD
    windows_t *w;
} WindowsObject;

static int Windows_init(WindowsObject *self, PyObject *args, PyObject *kwds)
{
    window_cfg_t c;
    unsigned long long seed;
    unsigned int host_window, time_max, serror, rerror, count_cap, host_cap;
    int complement, earlier;
    (void)kwds;
    if (!PyArg_ParseTuple(args, "LIIIIIIppK", &c.time_window, &host_window, &time_max, &serror,
                          &rerror, &count_cap, &host_cap, &complement, &earlier, &seed))
        return -1;
    c.host_window = host_window;
    c.time_max_records = time_max;
    c.serror_flags = serror;
    c.rerror_flags = rerror;
    c.count_cap = (uint16_t)count_cap;
    c.host_count_cap = (uint16_t)host_cap;
    c.complement_diff = (uint8_t)complement;
    c.earlier_only = (uint8_t)earlier;
    windows_free(self->w);
    self->w = windows_new(&c, seed);
    if (!self->w) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void Windows_dealloc(WindowsObject *self)
{
    windows_free(self->w);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Windows_process(WindowsObject *self, PyObject *args)
{
    Py_buffer conns, feats;
    Py_ssize_t stride, service_at, flag_at, winfeat_at;
    if (!self->w) {
        PyErr_SetString(PyExc_RuntimeError, "Windows is not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*w*nnnn", &conns, &feats, &stride, &service_at, &flag_at, &winfeat_at))
        return NULL;
    size_t n;
    int rc = -2;
    if (rows_view(&conns, sizeof(conn_t), &n) == 0) {
        /* every row holds the service and flag bytes and the features */
        if (stride <= 0 || service_at < 0 || flag_at < 0 || winfeat_at < 0 || service_at >= stride ||
            flag_at >= stride || (size_t)winfeat_at + sizeof(winfeat_t) > (size_t)stride ||
            (size_t)feats.len < n * (size_t)stride)
            PyErr_SetString(PyExc_ValueError, "feature rows do not fit their layout");
        else {
            Py_BEGIN_ALLOW_THREADS
            rc = windows_process(self->w, conns.buf, n, feats.buf, (size_t)stride, (size_t)service_at,
                                 (size_t)flag_at, (size_t)winfeat_at);
            Py_END_ALLOW_THREADS
        }
    }
    PyBuffer_Release(&conns);
    PyBuffer_Release(&feats);
    if (rc == -1)
        return PyErr_NoMemory();
    if (rc == -2)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Windows_get_memory(WindowsObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->w ? windows_memory(self->w) : 0);
}

static PyMethodDef Windows_methods[] = {
    {"process", (PyCFunction)Windows_process, METH_VARARGS,
     "process(conns, features, stride, service_at, flag_at, winfeat_at): traffic features of "
     "records in start order; each feature row holds the record's service and flag bytes and "
     "receives its winfeat fields."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Windows_getset[] = {
    {"memory", (getter)Windows_get_memory, NULL, "bytes held by the windows", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WindowsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sensor._fastpath.Windows",
    .tp_basicsize = sizeof(WindowsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Windows(time_window_ns, host_window, time_max_records, serror_flags, rerror_flags, "
              "count_cap, host_count_cap, complement_diff, earlier_only, hash_seed)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Windows_init,
    .tp_dealloc = (destructor)Windows_dealloc,
    .tp_methods = Windows_methods,
    .tp_getset = Windows_getset,
};

static PyObject *py_kdd_rate(PyObject *self, PyObject *args)
{
    double k, n;
    (void)self;
    if (!PyArg_ParseTuple(args, "dd", &k, &n))
        return NULL;
    return PyFloat_FromDouble(kdd_rate(k, n));
}

/* ------------------------------------------------------------ format */

static size_t fmt_size(char f)
{
    switch (f) {
    case 'b': case 'B': case '?': return 1;
    case 'h': case 'H': return 2;
    case 'i': case 'I': case 'f': return 4;
    default: return 8;
    }
}

/* A 1-D column (possibly a strided field view of a record array), checked
   to hold n_rows values of `width` bytes. */
static int column_source(PyObject *obj, char fmt, size_t n_rows, size_t width, Py_buffer *view,
                         const uint8_t **base, ptrdiff_t *stride)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_STRIDED_RO) < 0)
        return -1;
    size_t w = width ? width : fmt_size(fmt);
    if (view->ndim != 1 || (size_t)view->shape[0] < n_rows || view->strides[0] < 0 ||
        (size_t)view->itemsize < w) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "column must be a 1-D array with one value per row");
        return -1;
    }
    *base = view->buf;
    *stride = view->strides[0];
    return 0;
}

static PyObject *py_format(PyObject *self, PyObject *args)
{
    PyObject *spec, *outbuf;
    Py_ssize_t n_rows;
    int csv;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!npO!", &PyList_Type, &spec, &n_rows, &csv, &PyByteArray_Type,
                          &outbuf))
        return NULL;
    if (n_rows < 0) {
        PyErr_SetString(PyExc_ValueError, "negative row count");
        return NULL;
    }
    PyObject *frozen = PyList_AsTuple(spec);
    if (!frozen)
        return NULL;
    Py_ssize_t n_cols = PyTuple_GET_SIZE(frozen);
    column_t *cols = calloc((size_t)n_cols + 1, sizeof(column_t));
    Py_buffer *views = calloc((size_t)n_cols * 2 + 1, sizeof(Py_buffer));
    const char **names = NULL;
    size_t *name_lens = NULL;
    size_t n_names_total = 0, names_used = 0;
    int n_views = 0;
    PyObject *result = NULL;
    Py_buffer out_view;
    char *out;

    if (!cols || !views) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_cols; i++) {
        PyObject *t = PyTuple_GET_ITEM(frozen, i);
        PyObject *nm = PyTuple_Check(t) && PyTuple_GET_SIZE(t) == 9 ? PyTuple_GET_ITEM(t, 8) : NULL;
        if (nm && PyTuple_Check(nm))
            n_names_total += (size_t)PyTuple_GET_SIZE(nm);
    }
    names = calloc(n_names_total + 1, sizeof(char *));
    name_lens = calloc(n_names_total + 1, sizeof(size_t));
    if (!names || !name_lens) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_cols; i++) {
        column_t *c = cols + i;
        int kind, decimals, fmt, fmt2;
        const char *key;
        Py_ssize_t key_len, width;
        PyObject *src, *src2, *name_tuple;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(frozen, i), "is#OCOCinO", &kind, &key, &key_len, &src,
                              &fmt, &src2, &fmt2, &decimals, &width, &name_tuple))
            goto done;
        c->kind = kind;
        c->key = key;
        c->key_len = (size_t)key_len;
        c->fmt = (char)fmt;
        c->fmt2 = (char)fmt2;
        c->decimals = decimals < 0 ? 0 : (decimals > 9 ? 9 : decimals);
        c->width = width < 0 ? 0 : (size_t)width;
        if (kind == COL_OPEN || kind == COL_CLOSE)
            continue;
        if (column_source(src, (char)fmt, (size_t)n_rows, kind == COL_CHARS ? c->width : 0,
                          &views[n_views], &c->base, &c->stride) < 0)
            goto done;
        n_views++;
        if (kind == COL_ADDR || kind == COL_CHARS) {
            if (column_source(src2, (char)fmt2, (size_t)n_rows, 0, &views[n_views], &c->base2,
                              &c->stride2) < 0)
                goto done;
            n_views++;
        }
        if (kind == COL_ENUM) {
            if (!PyTuple_Check(name_tuple)) {
                PyErr_SetString(PyExc_TypeError, "enum column needs a tuple of names");
                goto done;
            }
            c->names = names + names_used;
            c->name_lens = name_lens + names_used;
            c->n_names = (size_t)PyTuple_GET_SIZE(name_tuple);
            for (size_t k = 0; k < c->n_names; k++) {
                PyObject *s = PyTuple_GET_ITEM(name_tuple, (Py_ssize_t)k);
                char *p;
                Py_ssize_t len;
                if (PyBytes_AsStringAndSize(s, &p, &len) < 0)
                    goto done;
                names[names_used] = p;
                name_lens[names_used++] = (size_t)len;
            }
        }
    }
    size_t bound = format_row_bound(cols, (size_t)n_cols);
    size_t cap = bound * (size_t)n_rows + 64;  /* slack for padded copies */
    if (!bound) {
        PyErr_NoMemory();
        goto done;
    }
    /* the caller's bytearray is reused from call to call; grow it when needed */
    if ((size_t)PyByteArray_GET_SIZE(outbuf) < cap && PyByteArray_Resize(outbuf, (Py_ssize_t)cap) < 0)
        goto done;
    /* formatting runs without the GIL (the detector thread's Python runs
       meanwhile): the exported buffer stops anyone resizing the bytearray,
       the column views are held, and the names live in the tuples of
       `frozen`, an immutable copy of the spec */
    if (PyObject_GetBuffer(outbuf, &out_view, PyBUF_WRITABLE) < 0)
        goto done;
    out = out_view.buf;
    ptrdiff_t written;
    Py_BEGIN_ALLOW_THREADS
    written = format_rows(cols, (size_t)n_cols, (size_t)n_rows, csv, out, (size_t)out_view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&out_view);
    if (written == -2)
        PyErr_NoMemory();
    else if (written < 0)
        PyErr_SetString(PyExc_RuntimeError, "formatter overflow");
    else
        result = PyLong_FromSsize_t(written);
done:
    for (int i = 0; i < n_views; i++)
        PyBuffer_Release(&views[i]);
    free(cols);
    free(views);
    free(names);
    free(name_lens);
    Py_DECREF(frozen);
    return result;
}

/* -------------------------------------------------------------- Ring */

typedef struct {
    PyObject_HEAD
    ring_t ring;
    int open;
} RingObject;

static int Ring_init(RingObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"interface", "snaplen", "promiscuous", "filter", "block_size",
                             "block_count", "block_timeout_ms", NULL};
    ring_config_t c;
    Py_buffer filter;
    memset(&c, 0, sizeof c);
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sIpy*III", kwlist, &c.ifname, &c.snaplen,
                                     &c.promiscuous, &filter, &c.block_size, &c.block_count,
                                     &c.block_timeout_ms))
        return -1;
    if (self->open) {
        ring_close(&self->ring);
        self->open = 0;
    }
    int rc = -1;
    if (filter.len % 8 || filter.len / 8 > 4096) {
        PyErr_SetString(PyExc_ValueError, "filter must be whole BPF instructions (8 bytes each, at most 4096)");
    } else {
        c.filter = filter.buf;
        c.filter_len = (unsigned int)(filter.len / 8);
        char err[256];
        int ok;
        Py_BEGIN_ALLOW_THREADS
        ok = ring_open(&self->ring, &c, err, sizeof err);
        Py_END_ALLOW_THREADS
        if (ok < 0)
            PyErr_SetString(PyExc_OSError, err);
        else
            self->open = 1, rc = 0;
    }
    PyBuffer_Release(&filter);
    return rc;
}

static void Ring_dealloc(RingObject *self)
{
    if (self->open)
        ring_close(&self->ring);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ring_ready(RingObject *self)
{
    if (!self->open) {
        PyErr_SetString(PyExc_ValueError, "capture ring is closed");
        return 0;
    }
    return 1;
}

static PyObject *Ring_drain(RingObject *self, PyObject *args)
{
    Py_buffer out;
    if (!ring_ready(self) || !PyArg_ParseTuple(args, "w*", &out))
        return NULL;
    size_t used, packets;
    Py_BEGIN_ALLOW_THREADS
    used = ring_drain(&self->ring, out.buf, (size_t)out.len, &packets);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&out);
    return Py_BuildValue("(nn)", (Py_ssize_t)used, (Py_ssize_t)packets);
}

static PyObject *Ring_stats(RingObject *self, PyObject *args)
{
    (void)args;
    uint64_t packets, drops, freezes;
    if (!ring_ready(self))
        return NULL;
    if (ring_stats(&self->ring, &packets, &drops, &freezes) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return Py_BuildValue("(KKK)", (unsigned long long)packets, (unsigned long long)drops,
                         (unsigned long long)freezes);
}

static PyObject *Ring_close(RingObject *self, PyObject *args)
{
    (void)args;
    if (self->open)
        ring_close(&self->ring);
    self->open = 0;
    Py_RETURN_NONE;
}

static PyObject *Ring_fileno(RingObject *self, PyObject *args)
{
    (void)args;
    if (!ring_ready(self))
        return NULL;
    return PyLong_FromLong(self->ring.fd);
}

static PyObject *Ring_get_linktype(RingObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromLong(self->ring.linktype);
}

static PyObject *Ring_get_block_size(RingObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(self->ring.block_size);
}

static PyMethodDef Ring_methods[] = {
    {"drain", (PyCFunction)Ring_drain, METH_VARARGS,
     "drain(buffer) -> (bytes, packets): copy the ready blocks' frames as pcap records (ns, host order)."},
    {"stats", (PyCFunction)Ring_stats, METH_NOARGS,
     "stats() -> (packets, drops, freezes): the kernel's counters since the ring opened."},
    {"fileno", (PyCFunction)Ring_fileno, METH_NOARGS, "the socket, for poll()"},
    {"close", (PyCFunction)Ring_close, METH_NOARGS, "close the socket and unmap the ring"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Ring_getset[] = {
    {"linktype", (getter)Ring_get_linktype, NULL, "pcap link type of the records", NULL},
    {"block_size", (getter)Ring_get_block_size, NULL, "bytes per ring block", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject RingType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sensor._fastpath.Ring",
    .tp_basicsize = sizeof(RingObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ring(interface, snaplen, promiscuous, filter, block_size, block_count, block_timeout_ms): "
              "an AF_PACKET TPACKET_V3 capture ring.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Ring_init,
    .tp_dealloc = (destructor)Ring_dealloc,
    .tp_methods = Ring_methods,
    .tp_getset = Ring_getset,
};

/* ------------------------------------------------------------ module */

/* PyModule_Add() arrived in 3.13; this steals the reference the same way. */
static int add_owned(PyObject *m, const char *name, PyObject *value)
{
    if (!value)
        return -1;
    int rc = PyModule_AddObjectRef(m, name, value);
    Py_DECREF(value);
    return rc;
}

static PyObject *name_tuple(const char *const *names, size_t n)
{
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    if (!t)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, s);
    }
    return t;
}

static const char *const status_names[PKT_STATUS_COUNT] = {
    "ok", "fragment", "absorbed", "not_ip", "other_ip_protocol", "wlan_skipped",
    "unsupported_link_type", "truncated_link_header", "bad_ip_version", "ip_header_short",
    "ip_header_truncated", "ip_bad_total_length", "ip_length_beyond_frame", "ipv6_bad_extension",
    "tcp_bad_data_offset", "transport_header_short", "transport_header_truncated",
};

static const char *const conn_state_names[CS_COUNT] = {
    "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
};

static const char *const end_reason_names[END_COUNT] = {"timeout", "reuse", "lifetime", "flush", "evicted"};

static const char *const damage_names[DAMAGE_COUNT] = {
    "none", "caplen_over_snaplen", "caplen_over_max", "block_length", "block_trailer",
    "block_body", "unknown_interface",
};

static const char *const analyzer_names[AN_COUNT] = {
    "none", "login", "rlogin", "rsh", "rexec", "ftp", "pop3", "imap", "http", "smtp",
};

static const char *const content_group_names[CG_COUNT] = {
    "login_prompt", "password_prompt", "login_failed", "login_banner", "shell_prompt",
    "root_prompt", "compromised", "new_file", "su_command", "shell_command", "hot_word",
    "hot_prefix", "hot_contains", "hot_except", "file_creation", "access_file", "access_except",
    "guest_user", "host_user", "ftp_system_dir", "ftp_access_file", "http_hot", "http_cgi",
    "http_shell_meta",
};

static const char *const ep_state_names[] = {
    "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET",
};

static PyMethodDef module_methods[] = {
    {"layouts", py_layouts, METH_NOARGS, "Row layouts: {name: (itemsize, [(field, type, offset)])}."},
    {"walk_pcap", py_walk_pcap, METH_VARARGS, "Walk classic-pcap records into packet rows."},
    {"walk_pcapng", py_walk_pcapng, METH_VARARGS, "Walk pcapng blocks into packet rows."},
    {"resync_pcap", py_resync_pcap, METH_VARARGS, "Find the next plausible pcap record."},
    {"resync_pcapng", py_resync_pcapng, METH_VARARGS, "Find the next plausible pcapng block."},
    {"decode", py_decode, METH_VARARGS, "decode(buffer, rows): fill header columns in place."},
    {"kdd_rate", py_kdd_rate, METH_VARARGS,
     "kdd_rate(k, n): k/n rounded to 2 decimals as printf('%.2f') does."},
    {"format", py_format, METH_VARARGS,
     "format(columns, n_rows, csv, out: bytearray) -> bytes written at the start of out"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "sensor._fastpath", "The sensor's compiled core.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void)
{
    if (PyType_Ready(&TrackerType) < 0 || PyType_Ready(&WindowsType) < 0 || PyType_Ready(&RingType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "Tracker", (PyObject *)&TrackerType) < 0 ||
        PyModule_AddObjectRef(m, "Windows", (PyObject *)&WindowsType) < 0 ||
        PyModule_AddObjectRef(m, "Ring", (PyObject *)&RingType) < 0 ||
        add_owned(m, "STATUS_NAMES", name_tuple(status_names, PKT_STATUS_COUNT)) < 0 ||
        add_owned(m, "CONN_STATES", name_tuple(conn_state_names, CS_COUNT)) < 0 ||
        add_owned(m, "END_REASONS", name_tuple(end_reason_names, END_COUNT)) < 0 ||
        add_owned(m, "DAMAGE_NAMES", name_tuple(damage_names, DAMAGE_COUNT)) < 0 ||
        add_owned(m, "EP_STATES", name_tuple(ep_state_names, 7)) < 0 ||
        add_owned(m, "ANALYZERS", name_tuple(analyzer_names, AN_COUNT)) < 0 ||
        add_owned(m, "CONTENT_GROUPS", name_tuple(content_group_names, CG_COUNT)) < 0 ||
        PyModule_AddIntConstant(m, "FIRST_MALFORMED", PKT_FIRST_MALFORMED) < 0 ||
        PyModule_AddIntConstant(m, "WALK_NEED_MORE", WALK_NEED_MORE) < 0 ||
        PyModule_AddIntConstant(m, "WALK_FULL", WALK_FULL) < 0 ||
        PyModule_AddIntConstant(m, "WALK_BAD_RECORD", WALK_BAD_RECORD) < 0 ||
        PyModule_AddIntConstant(m, "WALK_CONTROL_BLOCK", WALK_CONTROL_BLOCK) < 0 ||
        PyModule_AddIntConstant(m, "MAX_CAPLEN", MAX_CAPLEN) < 0 ||
        PyModule_AddIntConstant(m, "COL_INT", COL_INT) < 0 ||
        PyModule_AddIntConstant(m, "COL_FIXED", COL_FIXED) < 0 ||
        PyModule_AddIntConstant(m, "COL_NS_SECONDS", COL_NS_SECONDS) < 0 ||
        PyModule_AddIntConstant(m, "COL_ENUM", COL_ENUM) < 0 ||
        PyModule_AddIntConstant(m, "COL_ADDR", COL_ADDR) < 0 ||
        PyModule_AddIntConstant(m, "COL_CHARS", COL_CHARS) < 0 ||
        PyModule_AddIntConstant(m, "COL_UID", COL_UID) < 0 ||
        PyModule_AddIntConstant(m, "COL_OPEN", COL_OPEN) < 0 ||
        PyModule_AddIntConstant(m, "COL_CLOSE", COL_CLOSE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
