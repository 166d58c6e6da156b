/*
 * trio_brod.protocol._speedups -- the two hot loops of records.py, in C (and murmur2, and
 * the producer's loop over a batch of messages).
 *
 * Every consumed message passes through decode_records() and every produced one through
 * encode_records(). In pure Python those loops run at CPython's per-bytecode limit (about
 * 1.5 M records/s decoded); here they run at the speed of allocating the result objects.
 *
 * records.py stays the reference implementation: it is used when this module cannot be
 * built or imported, or when TRIO_BROD_PURE_PYTHON is set, and the tests run every record
 * test against both and compare the two on random and mutated input. So this file keeps the
 * Python code's semantics exactly, including its error messages, and does nothing else:
 * batch headers, CRCs, compression and error *classes* stay in Python.
 *
 *   decode_records(record_class, buf, pos, end, count, base_offset, base_timestamp,
 *                  timestamp_type, append_time) -> list[Record]
 *       raises ValueError(message) for malformed records; records.py turns it into
 *       CorruptRecordError(message, base_offset), exactly what its own decoder raises.
 *
 *   encode_records(records, base_timestamp, slow) -> (bytes, max_timestamp)
 *       writes the records section of a batch; any record it does not handle itself (a
 *       bytearray value, a huge timestamp, anything invalid) goes to the Python function
 *       slow(index, record, base_timestamp) -> (body, timestamp), records.py's own slow path,
 *       which encodes it or raises the TypeError / EncodeError naming what is wrong.
 *
 *   prepare_records(messages, now, overhead, message_type) -> (records, size) | None
 *       producer/worker.py's produce_batch loop for the common case of plain messages; None for
 *       anything else, and the Python loop takes over (see "the producer's messages").
 *
 * No function here releases the GIL or keeps a borrowed reference across a call that may
 * run Python code.
 *
 * The record layout (Kafka's "Record", inside a v2 batch; all "varint" fields are zigzag
 * varints, see below):
 *
 *   length          varint   bytes of the record after this field
 *   attributes      int8     unused
 *   timestampDelta  varint   timestamp - the batch's baseTimestamp
 *   offsetDelta     varint   offset - the batch's baseOffset
 *   keyLength       varint   -1 (any negative value) for a null key
 *   key             bytes
 *   valueLength     varint   -1 (any negative value) for a null value
 *   value           bytes
 *   headerCount     varint
 *   headers         headerCount times:
 *       headerKeyLength    varint (never negative)
 *       headerKey          UTF-8
 *       headerValueLength  varint, negative for a null value
 *       headerValue        bytes
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>

/* -- varints ---------------------------------------------------------------------------------
 *
 * A zigzag varint stores the signed n as the unsigned (n << 1) ^ (n >> 63), mapping
 * 0, -1, 1, -2, 2 ... to 0, 1, 2, 3, 4 ..., so that small negative numbers are short too. The
 * result is written 7 bits at a time, least significant group first; the high bit of each byte
 * says that another byte follows. A 64-bit value takes at most 10 bytes.
 */

static inline uint64_t
zigzag(int64_t n)
{
    /* Right-shifting a negative number is implementation-defined in C: compare instead.
       Converting a negative int64 to uint64 is well defined (modulo 2^64). */
    return ((uint64_t)n << 1) ^ (n < 0 ? UINT64_MAX : 0);
}

static inline int64_t
unzigzag(uint64_t z)
{
    /* z >> 1 is below 2^63, so both results fit in an int64 without overflow. */
    return (z & 1) ? -(int64_t)(z >> 1) - 1 : (int64_t)(z >> 1);
}

/* The zigzag value of a size or index (never negative). */
static inline uint64_t
zigzag_size(Py_ssize_t n)
{
    return (uint64_t)n << 1;
}

static inline Py_ssize_t
varint_size(uint64_t z)
{
    Py_ssize_t size = 1;
    while (z >= 0x80) {
        z >>= 7;
        size++;
    }
    return size;
}

static inline char *
write_varint(char *out, uint64_t z)
{
    while (z >= 0x80) {
        *out++ = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    *out++ = (char)z;
    return out;
}

typedef enum {
    READ_OK = 0,
    READ_SHORT,     /* the buffer ends inside the varint */
    READ_TOO_LONG,  /* an 11th byte would follow */
    READ_TOO_LARGE, /* the 10th byte carries bits beyond the 64th */
} ReadStatus;

/* The messages records.py gives for each failure (ValueError; records.py adds the offset). */
static const char *const read_errors[] = {
    [READ_OK] = "no error",
    [READ_SHORT] = "the records end early",
    [READ_TOO_LONG] = "a varint is longer than 10 bytes",
    [READ_TOO_LARGE] = "a varint does not fit in 64 bits",
};

/* Read the zigzag varint at data[*pos], not reading at or past data[end]. On success store
   it in *value and move *pos past it. */
static inline ReadStatus
read_varint(const unsigned char *data, Py_ssize_t end, Py_ssize_t *pos, int64_t *value)
{
    Py_ssize_t p = *pos;
    uint64_t z = 0;
    for (int shift = 0;; shift += 7) {
        if (p >= end) {
            return READ_SHORT;
        }
        unsigned int byte = data[p++];
        if (byte < 0x80) {
            /* At shift 63 only the lowest bit of the last byte still fits. */
            if (shift == 63 && byte > 1) {
                return READ_TOO_LARGE;
            }
            z |= (uint64_t)byte << shift;
            break;
        }
        z |= (uint64_t)(byte & 0x7F) << shift; /* unsigned: bits past 64 are dropped */
        if (shift + 7 > 63) {
            return READ_TOO_LONG;
        }
    }
    *pos = p;
    *value = unzigzag(z);
    return READ_OK;
}

/* -- integers as Python sees them -------------------------------------------------------------
 *
 * Python's ints do not overflow, so base + delta of two int64s must not either: past the int64
 * range the sum is made with Python ints, as records.py would. (Only corrupt or hand-made
 * batches get there.)
 */

static PyObject *
int64_sum(int64_t a, int64_t b)
{
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) {
        PyObject *x = PyLong_FromLongLong(a);
        PyObject *y = x ? PyLong_FromLongLong(b) : NULL;
        PyObject *sum = y ? PyNumber_Add(x, y) : NULL;
        Py_XDECREF(x);
        Py_XDECREF(y);
        return sum;
    }
    return PyLong_FromLongLong(a + b);
}

/* Parse an int argument into an int64 (or Py_ssize_t); -1 with an exception set on failure. */
static int
arg_int64(PyObject *arg, const char *name, int64_t *out)
{
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    long long value = PyLong_AsLongLong(arg);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = value;
    return 0;
}

static int
arg_ssize(PyObject *arg, const char *name, Py_ssize_t *out)
{
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", name,
                     Py_TYPE(arg)->tp_name);
        return -1;
    }
    Py_ssize_t value = PyLong_AsSsize_t(arg);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = value;
    return 0;
}

/* -- decoding ---------------------------------------------------------------------------------
 *
 * No read passes `end`, the end of the batch's records. The Python decoder reads first and
 * checks afterwards (a slice past the end of its buffer is just shorter), so to report the
 * same error for the same bytes this code checks in the same order, as the comments say.
 * (One difference remains, for a batch followed by more data in the same buffer: Python may
 * read a corrupt record's fields on into the next batch, so its message can differ from this
 * one; both are CorruptRecordError.)
 */

/* Raise the ValueError that records.py turns into CorruptRecordError; returns NULL. */
static PyObject *
corrupt(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    PyErr_FormatV(PyExc_ValueError, format, args);
    va_end(args);
    return NULL;
}

static PyObject *
corrupt_read(ReadStatus status)
{
    return corrupt("%s", read_errors[status]);
}

/* A length-prefixed byte string: a new bytes object, or None for a negative length. */
static PyObject *
read_bytes(const unsigned char *data, Py_ssize_t end, Py_ssize_t *pos, int64_t length)
{
    if (length < 0) {
        /* Any negative length is null, as in Kafka's Java client. */
        Py_RETURN_NONE;
    }
    if (length > end - *pos) {
        /* Python slices what there is, and fails on the next read: there always is one. */
        return corrupt_read(READ_SHORT);
    }
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data + *pos, (Py_ssize_t)length);
    *pos += (Py_ssize_t)length;
    return bytes;
}

/* The headers of a record whose header count is not the single byte 0: a tuple of
 * (str, bytes | None) pairs.
 *
 * If the value of the last header runs past `end`, the Python decoder does not notice until
 * it compares the record's length with the bytes its fields took, counting the missing ones
 * too. So in that case this returns the headers (that value as None), moves *pos to `end` and
 * sets *overrun to the number of missing bytes, for the caller to make the same comparison.
 */
static PyObject *
read_headers(const unsigned char *data, Py_ssize_t end, Py_ssize_t *pos, uint64_t *overrun)
{
    int64_t count;
    ReadStatus status = read_varint(data, end, pos, &count);
    if (status != READ_OK) {
        return corrupt_read(status);
    }
    if (count < 0) {
        return corrupt("a record has an invalid header count %lld", (long long)count);
    }
    /* Every header takes at least two bytes. A count larger than that allows cannot be read,
       but Python reads on until it fails, and the error it meets first (a bad key length, bad
       UTF-8, the end) is the one it reports. So such headers are read the same way and
       dropped, and the tuple is only made as large as the bytes allow. */
    Py_ssize_t kept = count <= (end - *pos) / 2 ? (Py_ssize_t)count : 0;
    PyObject *headers = PyTuple_New(kept);
    if (headers == NULL) {
        return NULL;
    }
    for (int64_t i = 0; i < count; i++) {
        int64_t key_length, value_length;
        if ((status = read_varint(data, end, pos, &key_length)) != READ_OK) {
            corrupt_read(status);
            goto error;
        }
        if (key_length < 0) {
            corrupt("a header has an invalid key length %lld", (long long)key_length);
            goto error;
        }
        /* Python decodes what there is of the key before it finds out that it is cut. */
        Py_ssize_t available = end - *pos;
        Py_ssize_t key_size = key_length < available ? (Py_ssize_t)key_length : available;
        PyObject *key =
            PyUnicode_DecodeUTF8((const char *)data + *pos, key_size, "strict");
        if (key == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                corrupt("a header key is not valid UTF-8");
            }
            goto error;
        }
        if (key_length > available) {
            Py_DECREF(key);
            corrupt_read(READ_SHORT);
            goto error;
        }
        *pos += key_size;
        if ((status = read_varint(data, end, pos, &value_length)) != READ_OK) {
            Py_DECREF(key);
            corrupt_read(status);
            goto error;
        }
        PyObject *value;
        if (value_length > end - *pos && i == count - 1) {
            *overrun = (uint64_t)value_length - (uint64_t)(end - *pos);
            *pos = end;
            value = Py_NewRef(Py_None);
        }
        else if ((value = read_bytes(data, end, pos, value_length)) == NULL) {
            Py_DECREF(key);
            goto error;
        }
        if (i >= kept) { /* an impossible count: read, checked, dropped */
            Py_DECREF(key);
            Py_DECREF(value);
            continue;
        }
        PyObject *header = PyTuple_New(2);
        if (header == NULL) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto error;
        }
        PyTuple_SET_ITEM(header, 0, key); /* steals */
        PyTuple_SET_ITEM(header, 1, value);
        /* A tuple of a str and bytes (or None) can be in no reference cycle, so the cycle
           collector need not look at it: CPython would untrack it itself, but only after
           traversing it once in a collection, which thousands of headers per batch trigger.
           Measured: a third of the time to decode records with two headers. */
        PyObject_GC_UnTrack(header);
        PyTuple_SET_ITEM(headers, (Py_ssize_t)i, header);
    }
    if (kept != count) {
        /* Unreachable (see above); kept for the reader's peace of mind. */
        corrupt_read(READ_SHORT);
        goto error;
    }
    PyObject_GC_UnTrack(headers); /* a tuple of such tuples: the same */
    return headers;

error:
    Py_DECREF(headers); /* the items not yet set are NULL, which tuples allow */
    return NULL;
}

/* Is `type` a tuple subclass whose instances are plain tuples underneath (a NamedTuple)? Then
   an instance can be made by allocating it and filling its items, which is what
   tuple.__new__(type, items) does, minus the temporary tuple. (Not tuple itself: its
   instances come from its own allocator and free lists.) */
static int
is_plain_tuple_subclass(PyObject *type)
{
    return PyType_Check(type) && (PyTypeObject *)type != &PyTuple_Type &&
           PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type) &&
           ((PyTypeObject *)type)->tp_basicsize == PyTuple_Type.tp_basicsize &&
           ((PyTypeObject *)type)->tp_itemsize == PyTuple_Type.tp_itemsize &&
           ((PyTypeObject *)type)->tp_dictoffset == 0;
}

#define RECORD_FIELDS 6 /* offset, timestamp, timestamp_type, key, value, headers */

PyDoc_STRVAR(decode_records_doc,
"decode_records(record_class, buf, pos, end, count, base_offset, base_timestamp,\n"
"               timestamp_type, append_time, /)\n"
"--\n"
"\n"
"Decode the `count` records in buf[pos:end] into a list of record_class instances.\n"
"\n"
"record_class is a NamedTuple class of six fields (offset, timestamp, timestamp_type, key,\n"
"value, headers). Offsets are base_offset + offsetDelta; timestamps base_timestamp +\n"
"timestampDelta, or append_time for every record if it is not None (LOG_APPEND_TIME).\n"
"The records are not tracked by the cycle collector, so timestamp_type must outlive them\n"
"(records.py passes an enum member). Raises ValueError with records.py's message if the\n"
"records are malformed.");

static PyObject *
decode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "decode_records() takes 9 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *record_class = args[0];
    PyObject *buf = args[1];
    PyObject *timestamp_type = args[7];
    PyObject *append_time = args[8];
    Py_ssize_t pos, end, count;
    int64_t base_offset, base_timestamp;
    if (!is_plain_tuple_subclass(record_class)) {
        PyErr_SetString(PyExc_TypeError, "record_class must be a NamedTuple class");
        return NULL;
    }
    if (arg_ssize(args[2], "pos", &pos) < 0 || arg_ssize(args[3], "end", &end) < 0 ||
        arg_ssize(args[4], "count", &count) < 0 ||
        arg_int64(args[5], "base_offset", &base_offset) < 0 ||
        arg_int64(args[6], "base_timestamp", &base_timestamp) < 0) {
        return NULL;
    }
    if (append_time != Py_None && !PyLong_Check(append_time)) {
        PyErr_SetString(PyExc_TypeError, "append_time must be an int or None");
        return NULL;
    }

    Py_buffer view;
    if (PyObject_GetBuffer(buf, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *data = view.buf;
    PyObject *records = NULL;
    PyObject *empty_headers = NULL;
    /* The last timestamp made, by its delta: records of a batch often share a timestamp. */
    PyObject *last_timestamp = NULL;
    int64_t last_timestamp_delta = 0;

    if (pos < 0 || end < pos || end > view.len) {
        /* Not corrupt data but a caller's mistake: not a ValueError. */
        PyErr_SetString(PyExc_IndexError, "decode_records() needs 0 <= pos <= end <= len(buf)");
        goto error;
    }
    /* Every record takes at least 7 bytes (length, attributes, two deltas, two lengths, header
       count): checking first bounds the list a corrupt count can make us allocate. */
    if (count < 0 || count > (end - pos) / 7) {
        corrupt("the batch claims %zd records but has only %zd bytes of records", count,
                end - pos);
        goto error;
    }
    records = PyList_New(count);
    empty_headers = PyTuple_New(0);
    if (records == NULL || empty_headers == NULL) {
        goto error;
    }

    PyTypeObject *type = (PyTypeObject *)record_class;
    for (Py_ssize_t i = 0; i < count; i++) {
        int64_t length, timestamp_delta, offset_delta, key_length, value_length;
        ReadStatus status = read_varint(data, end, &pos, &length);
        if (status != READ_OK) {
            corrupt_read(status);
            goto error;
        }
        Py_ssize_t record_start = pos;
        pos += 1; /* attributes: unused, and checked by the next read */
        if ((status = read_varint(data, end, &pos, &timestamp_delta)) != READ_OK ||
            (status = read_varint(data, end, &pos, &offset_delta)) != READ_OK ||
            (status = read_varint(data, end, &pos, &key_length)) != READ_OK) {
            corrupt_read(status);
            goto error;
        }

        /* The record, filled as its fields are decoded; on an error it is released with
           whatever it holds (a tuple's unset items are NULL). Allocated as tp_alloc would,
           without being tracked by the cycle collector (see below), nor zeroed but for its
           items: tp_alloc would track it only for this loop to untrack it. */
        PyObject *record = (PyObject *)PyObject_GC_NewVar(PyTupleObject, type, RECORD_FIELDS);
        if (record == NULL) {
            goto error;
        }
        memset(((PyTupleObject *)record)->ob_item, 0, RECORD_FIELDS * sizeof(PyObject *));
        PyList_SET_ITEM(records, i, record); /* the list owns it from here */

        PyObject *key = read_bytes(data, end, &pos, key_length);
        if (key == NULL) {
            goto error;
        }
        PyTuple_SET_ITEM(record, 3, key);
        status = read_varint(data, end, &pos, &value_length);
        if (status != READ_OK) {
            corrupt_read(status);
            goto error;
        }
        PyObject *value = read_bytes(data, end, &pos, value_length);
        if (value == NULL) {
            goto error;
        }
        PyTuple_SET_ITEM(record, 4, value);

        PyObject *headers;
        uint64_t overrun = 0; /* see read_headers() */
        if (pos >= end) {
            corrupt_read(READ_SHORT);
            goto error;
        }
        if (data[pos] == 0) { /* no headers: the usual case */
            headers = Py_NewRef(empty_headers);
            pos += 1;
        }
        else if ((headers = read_headers(data, end, &pos, &overrun)) == NULL) {
            goto error;
        }
        PyTuple_SET_ITEM(record, 5, headers);

        /* Fewer than 2^62 bytes before `end`, fewer than 2^63 missing: no overflow. */
        uint64_t fields_size = (uint64_t)(pos - record_start) + overrun;
        if (length < 0 || fields_size != (uint64_t)length) {
            corrupt("a record's length says %lld bytes but its fields take %llu",
                    (long long)length, (unsigned long long)fields_size);
            goto error;
        }
        if (overrun) {
            corrupt("%s", i == count - 1 ? "the last record runs past the end of the batch"
                                         : read_errors[READ_SHORT]);
            goto error;
        }

        PyObject *offset = int64_sum(base_offset, offset_delta);
        if (offset == NULL) {
            goto error;
        }
        PyTuple_SET_ITEM(record, 0, offset);
        PyObject *timestamp;
        if (append_time != Py_None) {
            /* LOG_APPEND_TIME: the broker's time, from the batch header, for every record. */
            timestamp = Py_NewRef(append_time);
        }
        else if (last_timestamp != NULL && timestamp_delta == last_timestamp_delta) {
            timestamp = Py_NewRef(last_timestamp);
        }
        else {
            timestamp = int64_sum(base_timestamp, timestamp_delta);
            if (timestamp == NULL) {
                goto error;
            }
            Py_XSETREF(last_timestamp, Py_NewRef(timestamp));
            last_timestamp_delta = timestamp_delta;
        }
        PyTuple_SET_ITEM(record, 1, timestamp);
        PyTuple_SET_ITEM(record, 2, Py_NewRef(timestamp_type));
        /* The record is not tracked by the cycle collector: of its items only
           timestamp_type is not immutable, and it is an enum member, which outlives any
           record, so no record can be part of a cycle that becomes garbage. Tracked, the
           records of a batch (alive together, in the list) would be traversed by the
           collections their own allocation triggers: measured, that doubled the time to
           decode records without headers. */
    }
    if (pos != end) {
        /* Reads never pass `end`, so the records can only stop short of it. */
        corrupt("%zd bytes are left over after the last record", end - pos);
        goto error;
    }
    Py_DECREF(empty_headers);
    Py_XDECREF(last_timestamp);
    PyBuffer_Release(&view);
    return records;

error:
    Py_XDECREF(records);
    Py_XDECREF(empty_headers);
    Py_XDECREF(last_timestamp);
    PyBuffer_Release(&view);
    return NULL;
}

/* -- the record's fields, read as slots -----------------------------------------------------
 *
 * A NamedTuple's fields are _tuplegetter descriptors, which CPython 3.11's specializing
 * interpreter cannot specialize: every `record.value` is a full attribute lookup and a call
 * of the descriptor, about 20 ns. A member descriptor of type T_OBJECT_EX is what __slots__
 * makes, and `LOAD_ATTR_SLOT` reads it inline. A tuple's items are at fixed offsets from the
 * start of the object (ob_item), so a member descriptor at the offset of item i reads item i:
 * record_fields() puts such descriptors on the Record class in place of its _tuplegetters.
 * Measured on the consume path (benchmarks/micro_consume.py), the subscriber's two attribute
 * reads per record went from about 20 ns each to a few.
 *
 * The one hazard: a member descriptor does not look at the tuple's size, and
 * tuple.__new__(Record, (1, 2)) makes a Record of two items. So the class's tp_alloc is
 * replaced by record_alloc(), which always allocates (zeroed) room for all the fields: the
 * items past the size are NULL, and T_OBJECT_EX raises AttributeError for NULL. Subclasses of
 * Record get the same allocator (Record.__init_subclass__ calls record_fields() on them too).
 * A subclass with a __dict__ keeps it in the item past its size, which a field of a short
 * instance could then return: odd, but memory-safe, and only for tuple.__new__ abuse.
 *
 * record_fields() also gives the class record_dealloc(), which frees a record with less
 * ceremony than CPython's generic dealloc of a class defined in Python. (A __del__ added to
 * the class after that would not be called; NamedTuple classes do not get one.)
 */

static PyObject *
record_alloc(PyTypeObject *type, Py_ssize_t nitems)
{
    PyObject *obj = PyType_GenericAlloc(type, nitems < RECORD_FIELDS ? RECORD_FIELDS : nitems);
    if (obj != NULL) {
        Py_SET_SIZE(obj, nitems);
    }
    return obj;
}

/* What subtype_dealloc() and tuple's dealloc do for a record, minus what a Record class
   cannot have (a __dict__, weak references, a finalizer, slots): about a tenth of the cost
   of a decoded record's life, measured with benchmarks/micro_consume.py. record_fields()
   gives it only to classes without those. */
static void
record_dealloc(PyObject *op)
{
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, record_dealloc)
    for (Py_ssize_t i = Py_SIZE(op); --i >= 0;) {
        Py_XDECREF(((PyTupleObject *)op)->ob_item[i]);
    }
    type->tp_free(op);
    Py_DECREF(type); /* inside: a dealloc the trashcan defers comes back here later */
    Py_TRASHCAN_END
}

PyDoc_STRVAR(record_fields_doc,
"record_fields(record_class, /)\n"
"--\n"
"\n"
"Make the fields of record_class (a NamedTuple class of six fields, or a subclass of one)\n"
"member descriptors, which the interpreter reads inline, and give the class an allocator\n"
"that makes those reads safe for instances of fewer items, and (without a __dict__) a\n"
"cheaper dealloc. See the comment in the source.");

static PyObject *
record_fields(PyObject *module, PyObject *record_class)
{
    (void)module;
    if (!PyType_Check(record_class) ||
        !PyType_IsSubtype((PyTypeObject *)record_class, &PyTuple_Type) ||
        (PyTypeObject *)record_class == &PyTuple_Type ||
        ((PyTypeObject *)record_class)->tp_itemsize != PyTuple_Type.tp_itemsize ||
        ((PyTypeObject *)record_class)->tp_basicsize < PyTuple_Type.tp_basicsize ||
        !(((PyTypeObject *)record_class)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyErr_SetString(PyExc_TypeError, "record_class must be a NamedTuple class");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)record_class;
    PyObject *fields = PyObject_GetAttrString(record_class, "_fields");
    if (fields == NULL) {
        return NULL;
    }
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != RECORD_FIELDS) {
        Py_DECREF(fields);
        PyErr_SetString(PyExc_TypeError, "record_class must have six fields");
        return NULL;
    }
    /* The definitions must outlive the descriptors, which live as long as the class: they are
       allocated once per class and never freed (a few hundred bytes, for Record and any
       subclass of it). */
    PyMemberDef *defs = PyMem_Calloc(RECORD_FIELDS, sizeof(PyMemberDef));
    if (defs == NULL) {
        Py_DECREF(fields);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < RECORD_FIELDS; i++) {
        PyObject *name = PyTuple_GET_ITEM(fields, i);
        Py_ssize_t size;
        const char *utf8 = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &size) : NULL;
        if (utf8 == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "record_class._fields must hold str");
            }
            goto error;
        }
        char *copy = PyMem_Malloc((size_t)size + 1);
        char *doc = PyMem_Malloc(40);
        if (copy == NULL || doc == NULL) {
            PyMem_Free(copy);
            PyMem_Free(doc);
            PyErr_NoMemory();
            goto error;
        }
        memcpy(copy, utf8, (size_t)size + 1);
        PyOS_snprintf(doc, 40, "Alias for field number %zd", i);
        defs[i].name = copy;
        defs[i].type = T_OBJECT_EX;
        defs[i].offset = (Py_ssize_t)(offsetof(PyTupleObject, ob_item) + i * sizeof(PyObject *));
        defs[i].flags = READONLY;
        defs[i].doc = doc;
    }
    type->tp_alloc = record_alloc; /* first: no instance made from here on can be short */
    if (type->tp_dictoffset == 0 && type->tp_weaklistoffset == 0 && type->tp_finalize == NULL &&
        type->tp_del == NULL) {
        type->tp_dealloc = record_dealloc;
    }
    for (Py_ssize_t i = 0; i < RECORD_FIELDS; i++) {
        PyObject *descriptor = PyDescr_NewMember(type, &defs[i]);
        if (descriptor == NULL ||
            PyObject_SetAttr(record_class, PyTuple_GET_ITEM(fields, i), descriptor) < 0) {
            Py_XDECREF(descriptor);
            Py_DECREF(fields);
            return NULL; /* the definitions stay: descriptors set so far use them */
        }
        Py_DECREF(descriptor);
    }
    Py_DECREF(fields);
    Py_RETURN_NONE;

error:
    for (Py_ssize_t i = 0; i < RECORD_FIELDS; i++) {
        PyMem_Free((void *)defs[i].name);
        PyMem_Free((void *)defs[i].doc);
    }
    PyMem_Free(defs);
    Py_DECREF(fields);
    return NULL;
}

/* -- encoding ---------------------------------------------------------------------------------
 *
 * The fast path takes a record that is a tuple (a NamedTuple too) or a list of four items,
 * whose timestamp is an int in the int64 range, whose key is bytes or None, whose value is
 * bytes or None, and whose headers are None or a tuple or list of (str, bytes | None) tuples.
 * Apart from the record itself, the types must be exact (no subclasses), and it reads the
 * items of tuples and lists directly: so no Python code runs while it holds borrowed
 * references. It first measures the record, then writes it, so a record it gives up on has
 * written nothing.
 *
 * Everything else goes to records.py's slow path, record by record, in order: it encodes what
 * is valid (bytearray, memoryview, bytes subclasses, big deltas) and raises the TypeError or
 * EncodeError naming what is not, so both implementations accept and reject the same records
 * with the same messages. (One difference: the Python fast path unpacks any iterable of four
 * items as a record, this one only tuples and lists; the slow path, which both share, accepts
 * any Sequence, as encode_batch documents.)
 */

typedef struct {
    char *data; /* PyMem_Malloc'ed */
    Py_ssize_t size;
    Py_ssize_t capacity;
} Output;

/* Make room for `extra` more bytes; -1 with MemoryError set on failure. */
static int
output_reserve(Output *out, Py_ssize_t extra)
{
    if (extra <= out->capacity - out->size) {
        return 0;
    }
    if (extra > PY_SSIZE_T_MAX - out->size) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t needed = out->size + extra;
    Py_ssize_t capacity = out->capacity < PY_SSIZE_T_MAX / 2 ? out->capacity * 2 : needed;
    if (capacity < needed) {
        capacity = needed;
    }
    char *data = PyMem_Realloc(out->data, (size_t)capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    out->data = data;
    out->capacity = capacity;
    return 0;
}

typedef struct {
    int64_t timestamp;
    uint64_t timestamp_delta; /* zigzagged */
    const char *key;          /* NULL for a null key */
    Py_ssize_t key_size;
    const char *value; /* NULL for a null value */
    Py_ssize_t value_size;
    PyObject *headers; /* borrowed: a tuple or list of at least one header, or NULL */
    Py_ssize_t body_size; /* the record's size after its length field */
} FastRecord;

/* The size of the encoded headers (count included), or -1 if the slow path must take them. */
static Py_ssize_t
measure_headers(PyObject *headers)
{
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    PyObject **items = PySequence_Fast_ITEMS(headers);
    Py_ssize_t size = varint_size(zigzag_size(count));
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *header = items[i];
        if (!PyTuple_CheckExact(header) || PyTuple_GET_SIZE(header) != 2) {
            return -1;
        }
        PyObject *key = PyTuple_GET_ITEM(header, 0);
        PyObject *value = PyTuple_GET_ITEM(header, 1);
        if (!PyUnicode_CheckExact(key)) {
            return -1;
        }
        Py_ssize_t key_size;
        /* The UTF-8 form is cached in the str (for ASCII it is the str's own data), so
           write_headers() gets it again for free. */
        if (PyUnicode_AsUTF8AndSize(key, &key_size) == NULL) {
            /* Not encodable (a lone surrogate): the slow path raises the same error. */
            PyErr_Clear();
            return -1;
        }
        size += varint_size(zigzag_size(key_size)) + key_size;
        if (PyBytes_CheckExact(value)) {
            Py_ssize_t value_size = PyBytes_GET_SIZE(value);
            size += varint_size(zigzag_size(value_size)) + value_size;
        }
        else if (value == Py_None) {
            size += 1;
        }
        else {
            return -1;
        }
    }
    return size;
}

static char *
write_headers(char *out, PyObject *headers)
{
    Py_ssize_t count = PySequence_Fast_GET_SIZE(headers);
    PyObject **items = PySequence_Fast_ITEMS(headers);
    out = write_varint(out, zigzag_size(count));
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyTuple_GET_ITEM(items[i], 0);
        PyObject *value = PyTuple_GET_ITEM(items[i], 1);
        Py_ssize_t key_size;
        const char *utf8 = PyUnicode_AsUTF8AndSize(key, &key_size); /* cached: cannot fail */
        out = write_varint(out, zigzag_size(key_size));
        memcpy(out, utf8, (size_t)key_size);
        out += key_size;
        if (value == Py_None) {
            out = write_varint(out, zigzag(-1));
        }
        else {
            Py_ssize_t value_size = PyBytes_GET_SIZE(value);
            out = write_varint(out, zigzag_size(value_size));
            memcpy(out, PyBytes_AS_STRING(value), (size_t)value_size);
            out += value_size;
        }
    }
    return out;
}

/* Check and measure a record for the fast path. Returns 1 if it takes it (r filled in), 0 if
   the slow path must (no exception set). */
static int
measure_record(PyObject *record, Py_ssize_t index, int64_t base_timestamp, FastRecord *r)
{
    PyObject **fields;
    if (PyTuple_Check(record) && PyTuple_GET_SIZE(record) == 4) {
        fields = ((PyTupleObject *)record)->ob_item;
    }
    else if (PyList_CheckExact(record) && PyList_GET_SIZE(record) == 4) {
        fields = ((PyListObject *)record)->ob_item;
    }
    else {
        return 0;
    }
    PyObject *timestamp = fields[0], *key = fields[1], *value = fields[2],
             *headers = fields[3];

    if (!PyLong_CheckExact(timestamp)) {
        return 0;
    }
    int overflow;
    long long ts = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
    if (overflow) {
        return 0;
    }
    if ((base_timestamp > 0 && ts < INT64_MIN + base_timestamp) ||
        (base_timestamp < 0 && ts > INT64_MAX + base_timestamp)) {
        return 0; /* the delta is no int64: the slow path raises EncodeError */
    }
    r->timestamp = ts;
    r->timestamp_delta = zigzag(ts - base_timestamp);
    Py_ssize_t size = 1 + varint_size(r->timestamp_delta) + varint_size(zigzag_size(index));

    if (PyBytes_CheckExact(key)) {
        r->key = PyBytes_AS_STRING(key);
        r->key_size = PyBytes_GET_SIZE(key);
        size += varint_size(zigzag_size(r->key_size)) + r->key_size;
    }
    else if (key == Py_None) {
        r->key = NULL;
        r->key_size = 0;
        size += 1;
    }
    else {
        return 0;
    }
    if (PyBytes_CheckExact(value)) {
        r->value = PyBytes_AS_STRING(value);
        r->value_size = PyBytes_GET_SIZE(value);
        size += varint_size(zigzag_size(r->value_size)) + r->value_size;
    }
    else if (value == Py_None) {
        r->value = NULL;
        r->value_size = 0;
        size += 1;
    }
    else {
        return 0;
    }
    r->headers = NULL;
    if ((PyTuple_CheckExact(headers) || PyList_CheckExact(headers)) &&
        PySequence_Fast_GET_SIZE(headers) > 0) {
        Py_ssize_t headers_size = measure_headers(headers);
        if (headers_size < 0) {
            return 0;
        }
        r->headers = headers;
        size += headers_size;
    }
    else if (headers == Py_None || PyTuple_CheckExact(headers) || PyList_CheckExact(headers)) {
        size += 1; /* no headers: the count 0 */
    }
    else {
        return 0; /* whether it counts as "no headers" is the slow path's question */
    }
    r->body_size = size;
    return 1;
}

/* Write a measured record, its length first; the room must be reserved. */
static char *
write_record(char *out, const FastRecord *r, Py_ssize_t index)
{
    out = write_varint(out, zigzag_size(r->body_size));
    *out++ = 0; /* attributes */
    out = write_varint(out, r->timestamp_delta);
    out = write_varint(out, zigzag_size(index));
    if (r->key == NULL) {
        out = write_varint(out, zigzag(-1));
    }
    else {
        out = write_varint(out, zigzag_size(r->key_size));
        memcpy(out, r->key, (size_t)r->key_size);
        out += r->key_size;
    }
    if (r->value == NULL) {
        out = write_varint(out, zigzag(-1));
    }
    else {
        out = write_varint(out, zigzag_size(r->value_size));
        memcpy(out, r->value, (size_t)r->value_size);
        out += r->value_size;
    }
    if (r->headers == NULL) {
        *out++ = 0;
    }
    else {
        out = write_headers(out, r->headers);
    }
    return out;
}

/* The largest timestamp so far. Fast-path timestamps are int64s; a slow-path one is any int,
   and one above the int64 range is kept as an object (the batch header cannot hold it, and
   records.py reports that). One below the range can never be the largest, since the base
   timestamp, which counts too, is an int64. */
typedef struct {
    int64_t value;
    PyObject *above_int64; /* the largest one above the range, or NULL */
} MaxTimestamp;

static int
max_timestamp_add(MaxTimestamp *max, PyObject *timestamp)
{
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(timestamp, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow > 0) {
        int larger = max->above_int64 == NULL
                         ? 1
                         : PyObject_RichCompareBool(timestamp, max->above_int64, Py_GT);
        if (larger < 0) {
            return -1;
        }
        if (larger) {
            Py_XSETREF(max->above_int64, Py_NewRef(timestamp));
        }
    }
    else if (overflow == 0 && value > max->value) {
        max->value = value;
    }
    return 0;
}

/* Encode a record with records.py's slow path and append it, its length first. */
static int
encode_slow(Output *out, MaxTimestamp *max, PyObject *slow, Py_ssize_t index, PyObject *record,
            PyObject *base_timestamp)
{
    PyObject *result = PyObject_CallFunction(slow, "nOO", index, record, base_timestamp);
    if (result == NULL) {
        return -1;
    }
    if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 2 ||
        !PyBytes_Check(PyTuple_GET_ITEM(result, 0)) || !PyLong_Check(PyTuple_GET_ITEM(result, 1))) {
        PyErr_SetString(PyExc_TypeError, "the slow path must return a (bytes, int) tuple");
        Py_DECREF(result);
        return -1;
    }
    PyObject *body = PyTuple_GET_ITEM(result, 0);
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    uint64_t length = zigzag_size(size);
    if (output_reserve(out, varint_size(length) + size) < 0 ||
        max_timestamp_add(max, PyTuple_GET_ITEM(result, 1)) < 0) {
        Py_DECREF(result);
        return -1;
    }
    char *end = write_varint(out->data + out->size, length);
    memcpy(end, PyBytes_AS_STRING(body), (size_t)size);
    out->size = (end + size) - out->data;
    Py_DECREF(result);
    return 0;
}

PyDoc_STRVAR(encode_records_doc,
"encode_records(records, base_timestamp, slow, /)\n"
"--\n"
"\n"
"Encode (timestamp_ms, key, value, headers) records as the records section of a v2 batch,\n"
"with offset deltas 0, 1, ... and timestamp deltas from base_timestamp (an int64).\n"
"Records the fast path does not take go to slow(index, record, base_timestamp), which\n"
"returns (body, timestamp) or raises. Returns (bytes, the largest timestamp).");

static PyObject *
encode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "encode_records() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *records = args[0];
    PyObject *base_timestamp_object = args[1];
    PyObject *slow = args[2];
    int64_t base_timestamp;
    if (arg_int64(base_timestamp_object, "base_timestamp", &base_timestamp) < 0) {
        return NULL;
    }
    if (!PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "slow must be callable");
        return NULL;
    }
    /* Iterated like records.py's `for index, record in enumerate(records)`. */
    PyObject *iterator = PyObject_GetIter(records);
    if (iterator == NULL) {
        return NULL;
    }
    Py_ssize_t hint = PyObject_LengthHint(records, 0);
    if (hint < 0) {
        Py_DECREF(iterator);
        return NULL;
    }
    Output out = {NULL, 0, 0};
    MaxTimestamp max = {base_timestamp, NULL};
    /* A guess (key, value and overhead of a typical small record); the buffer grows. */
    if (output_reserve(&out, hint < (PY_SSIZE_T_MAX >> 8) ? 64 + hint * 128 : 1 << 20) < 0) {
        goto error;
    }

    PyObject *record;
    for (Py_ssize_t index = 0; (record = PyIter_Next(iterator)) != NULL; index++) {
        FastRecord r;
        if (measure_record(record, index, base_timestamp, &r)) {
            Py_ssize_t length_size = varint_size(zigzag_size(r.body_size));
            if (output_reserve(&out, length_size + r.body_size) < 0) {
                Py_DECREF(record);
                goto error;
            }
            out.size = write_record(out.data + out.size, &r, index) - out.data;
            if (r.timestamp > max.value) {
                max.value = r.timestamp;
            }
        }
        else if (encode_slow(&out, &max, slow, index, record, base_timestamp_object) < 0) {
            Py_DECREF(record);
            goto error;
        }
        Py_DECREF(record);
    }
    if (PyErr_Occurred()) { /* the iteration itself failed */
        goto error;
    }
    Py_CLEAR(iterator);

    PyObject *payload = PyBytes_FromStringAndSize(out.data, out.size);
    PyMem_Free(out.data);
    out.data = NULL;
    PyObject *largest =
        max.above_int64 != NULL ? Py_NewRef(max.above_int64) : PyLong_FromLongLong(max.value);
    Py_CLEAR(max.above_int64);
    PyObject *result = NULL;
    if (payload != NULL && largest != NULL) {
        result = PyTuple_Pack(2, payload, largest);
    }
    Py_XDECREF(payload);
    Py_XDECREF(largest);
    return result;

error:
    Py_XDECREF(iterator);
    Py_XDECREF(max.above_int64);
    PyMem_Free(out.data);
    return NULL;
}

/* -- the producer's messages --------------------------------------------------------------------
 *
 * PartitionProducer.produce_batch (producer/worker.py) turns the messages it is given into record
 * tuples (timestamp, key, value, headers) and adds up estimate_record_size() of each. Its loop
 * is the reference; prepare_records() does the same for the common case only, and returns
 * None for anything else, so that the loop then runs from the start and raises its own
 * TypeErrors. It reads the messages by index and never iterates them through Python, so
 * giving up has consumed nothing.
 *
 * The common case: `messages` is an exact list or tuple, and each of them is either an exact
 * tuple (key, value) or an instance of exactly `message_type` (producer.Message: value, key,
 * headers, timestamp) whose headers are the empty tuple and whose timestamp is None; keys and
 * values are exact bytes or None. The record of each is (now, key, value, ()), and its size
 * estimate is `overhead` (estimate_record_size(None, None, ()), passed in by the caller so
 * that the constant lives in records.py only) plus the lengths of its key and value.
 */

/* The key and value (borrowed) of a message prepare_records() takes; 0 if it does not. */
static int
fast_message(PyObject *message, PyObject *message_type, PyObject **key, PyObject **value)
{
    if (PyTuple_CheckExact(message)) {
        if (PyTuple_GET_SIZE(message) != 2) {
            return 0;
        }
        *key = PyTuple_GET_ITEM(message, 0);
        *value = PyTuple_GET_ITEM(message, 1);
    }
    else if ((PyObject *)Py_TYPE(message) == message_type) {
        /* A tuple subclass (checked by the caller): value, key, headers, timestamp. (Its
           length can only differ from 4 if it was made with tuple.__new__.) */
        if (PyTuple_GET_SIZE(message) != 4) {
            return 0;
        }
        PyObject *headers = PyTuple_GET_ITEM(message, 2);
        if (!PyTuple_CheckExact(headers) || PyTuple_GET_SIZE(headers) != 0 ||
            PyTuple_GET_ITEM(message, 3) != Py_None) {
            return 0;
        }
        *value = PyTuple_GET_ITEM(message, 0);
        *key = PyTuple_GET_ITEM(message, 1);
    }
    else {
        return 0;
    }
    return (*key == Py_None || PyBytes_CheckExact(*key)) &&
           (*value == Py_None || PyBytes_CheckExact(*value));
}

/* *total += n for n >= 0, or 0 if the sum would pass PY_SSIZE_T_MAX. */
static inline int
add_size(Py_ssize_t *total, Py_ssize_t n)
{
    if (n > PY_SSIZE_T_MAX - *total) {
        return 0;
    }
    *total += n;
    return 1;
}

static inline Py_ssize_t
length_or_zero(PyObject *data)
{
    return data == Py_None ? 0 : PyBytes_GET_SIZE(data);
}

PyDoc_STRVAR(prepare_records_doc,
"prepare_records(messages, now, overhead, message_type, /)\n"
"--\n"
"\n"
"produce_batch's loop over its messages, for the common case: a list or tuple of (key,\n"
"value) tuples and message_type instances without headers or timestamp, keys and values\n"
"bytes or None. Returns ([(now, key, value, ()), ...], the sum of overhead + len(key) +\n"
"len(value)), or None, having consumed nothing, if any message is not of that kind.");

static PyObject *
prepare_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "prepare_records() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *messages = args[0];
    PyObject *now = args[1];
    PyObject *message_type = args[3];
    Py_ssize_t overhead;
    /* An int: then, like the other items of a record, it cannot be part of a cycle (below). */
    if (!PyLong_CheckExact(now)) {
        PyErr_Format(PyExc_TypeError, "now must be an int, not %.100s", Py_TYPE(now)->tp_name);
        return NULL;
    }
    if (arg_ssize(args[2], "overhead", &overhead) < 0) {
        return NULL;
    }
    if (overhead < 0) {
        PyErr_SetString(PyExc_ValueError, "overhead must not be negative");
        return NULL;
    }
    /* A strict subclass: its instances are tuples underneath, and a plain 4-tuple is not one. */
    if (!PyType_Check(message_type) || (PyTypeObject *)message_type == &PyTuple_Type ||
        !PyType_IsSubtype((PyTypeObject *)message_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "message_type must be a subclass of tuple");
        return NULL;
    }
    if (!PyList_CheckExact(messages) && !PyTuple_CheckExact(messages)) {
        Py_RETURN_NONE; /* not even looked at: a generator stays unconsumed */
    }

    Py_ssize_t count = PySequence_Fast_GET_SIZE(messages);
    PyObject *no_headers = PyTuple_New(0); /* the () singleton, as in the Python loop */
    if (no_headers == NULL) {
        return NULL;
    }
    PyObject *records = PyList_New(count);
    if (records == NULL) {
        Py_DECREF(no_headers);
        return NULL;
    }
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *record = PyTuple_New(4);
        if (record == NULL) {
            goto error;
        }
        PyList_SET_ITEM(records, i, record); /* the list owns it, and releases it on failure */
        /* Read the message only now. Allocating the record may have run a garbage collection
           (CPython 3.11 collects inside the allocation that passes the threshold; later
           versions wait for the interpreter loop), and with it finalizers: Python code, which
           could even have changed `messages` (a list). From here to the next allocation no
           Python code runs, so the references borrowed from the message stay valid. */
        if (PySequence_Fast_GET_SIZE(messages) != count) {
            goto fall_back;
        }
        PyObject *message = PySequence_Fast_GET_ITEM(messages, i);
        PyObject *key, *value;
        if (!fast_message(message, message_type, &key, &value) || !add_size(&size, overhead) ||
            !add_size(&size, length_or_zero(key)) || !add_size(&size, length_or_zero(value))) {
            goto fall_back;
        }
        PyTuple_SET_ITEM(record, 0, Py_NewRef(now));
        PyTuple_SET_ITEM(record, 1, Py_NewRef(key));
        PyTuple_SET_ITEM(record, 2, Py_NewRef(value));
        PyTuple_SET_ITEM(record, 3, Py_NewRef(no_headers));
        /* An int, bytes or None, and (): the record can be in no cycle, so the collector need
           not track it (it would stop, but only after traversing it once; a producer keeps
           thousands of records alive until they are sent). */
        PyObject_GC_UnTrack(record);
    }
    Py_DECREF(no_headers);
    PyObject *total = PyLong_FromSsize_t(size);
    if (total == NULL) {
        Py_DECREF(records);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, records, total);
    Py_DECREF(records);
    Py_DECREF(total);
    return result;

fall_back:
    Py_DECREF(records);
    Py_DECREF(no_headers);
    Py_RETURN_NONE;

error:
    Py_DECREF(records);
    Py_DECREF(no_headers);
    return NULL;
}

/* -- the cycle collector and calls in flight -----------------------------------------------------
 *
 * A busy producer holds tens of thousands of produce calls (producer/_buffer.py's Call, which is also
 * the caller's DeliveryReceipt) between produce() and the broker's acknowledgement. Each is an
 * instance of a Python class, so the cycle collector tracks it, and every full collection
 * walks all of them; with calls living through several collections, full collections come
 * often, and at 8 partitions they were a quarter of the producer's CPU time.
 *
 * While in flight, a call is always reachable from its partition's producer (its channel,
 * buffer or wire queues), so it cannot be part of a garbage cycle then, and the collector
 * loses nothing by not looking at it. producer/_intake.py untracks a call once the producer
 * holds it, and producer/_buffer.py tracks it again before it is resolved or failed, which is
 * when the producer lets go of it and when callbacks and errors, which could make cycles,
 * come in.
 */

PyDoc_STRVAR(gc_untrack_doc,
"gc_untrack(obj, /)\n"
"--\n"
"\n"
"Stop the cycle collector from tracking obj, if it does. Only for an object that stays\n"
"reachable until gc_track() is called on it again (see the comment in the source).");

static PyObject *
gc_untrack(PyObject *module, PyObject *obj)
{
    (void)module;
    if (PyObject_GC_IsTracked(obj)) {
        PyObject_GC_UnTrack(obj);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(gc_track_doc,
"gc_track(obj, /)\n"
"--\n"
"\n"
"Let the cycle collector track obj again, if its type is collected and it is not tracked.");

static PyObject *
gc_track(PyObject *module, PyObject *obj)
{
    (void)module;
    if (PyObject_IS_GC(obj) && !PyObject_GC_IsTracked(obj)) {
        PyObject_GC_Track(obj);
    }
    Py_RETURN_NONE;
}

/* -- murmur2 ----------------------------------------------------------------------------------
 *
 * Kafka's partitioner hash, as org.apache.kafka.common.utils.Utils.murmur2 computes it:
 * MurmurHash2 (32-bit) with the seed 0x9747b28c, the key read as little-endian 4-byte words,
 * then the 1 to 3 bytes left over. Java's int arithmetic wraps, as uint32_t's does. (The
 * products are of uint32_t operands, which stay unsigned on every platform CPython supports,
 * where int is 32 bits.) producer/partitioners.py has the same in Python, used without this module.
 */

static uint32_t
murmur2(const unsigned char *data, Py_ssize_t length)
{
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cu ^ (uint32_t)length; /* Java: seed ^ length, an int */
    Py_ssize_t body = length & ~(Py_ssize_t)3;
    for (Py_ssize_t i = 0; i < body; i += 4) {
        uint32_t k = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 |
                     (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (length & 3) {
    case 3:
        h ^= (uint32_t)data[body + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)data[body + 1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)data[body];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

PyDoc_STRVAR(murmur2_u32_doc,
"murmur2_u32(data, /)\n"
"--\n"
"\n"
"Kafka's murmur2 hash of the bytes-like `data`, as an unsigned 32-bit int (Java's int\n"
"bits). partitioners.murmur2 gives it as Java's signed int.");

static PyObject *
murmur2_u32(PyObject *module, PyObject *data)
{
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    uint32_t h = murmur2(view.buf, view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(h);
}

/* -- the module -------------------------------------------------------------------------------- */

static PyMethodDef speedups_methods[] = {
    {"decode_records", (PyCFunction)(void (*)(void))decode_records, METH_FASTCALL,
     decode_records_doc},
    {"encode_records", (PyCFunction)(void (*)(void))encode_records, METH_FASTCALL,
     encode_records_doc},
    {"prepare_records", (PyCFunction)(void (*)(void))prepare_records, METH_FASTCALL,
     prepare_records_doc},
    {"record_fields", record_fields, METH_O, record_fields_doc},
    {"murmur2_u32", murmur2_u32, METH_O, murmur2_u32_doc},
    {"gc_untrack", gc_untrack, METH_O, gc_untrack_doc},
    {"gc_track", gc_track, METH_O, gc_track_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
    {0, NULL},
};

PyDoc_STRVAR(module_doc,
"The record codec's hot loops (and murmur2, and the producer's message loop) in C, used by\n"
"trio_brod.protocol.records, trio_brod.producer.partitioners and trio_brod.producer when\n"
"available.\n"
"\n"
"Private: call records.py's public functions, not these.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "trio_brod.protocol._speedups",
    .m_doc = module_doc,
    .m_size = 0,
    .m_methods = speedups_methods,
    .m_slots = speedups_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
