/* ext_buffer.c owns EvSSH::Buffer, the Ruby face of evssh_reader/evssh_buf:
 * a binary String plus a read position, whose every read and write goes
 * through libevssh's bounds-checked codec, and the encoding of
 * [type, value] pairs that channel and global requests carry as payload. */
#include "evssh_ext.h"

static VALUE cBuffer;

typedef struct rbuf {
  VALUE str;
  long pos;
} rbuf;

static void buf_mark(void *p) { rb_gc_mark(((rbuf *)p)->str); }
static size_t buf_memsize(const void *p) { return sizeof(rbuf); }
static const rb_data_type_t buf_type = {"EvSSH::Buffer", {buf_mark, RUBY_TYPED_DEFAULT_FREE, buf_memsize, NULL, {NULL}},
                                        0, 0, RUBY_TYPED_FREE_IMMEDIATELY};

static VALUE buf_alloc(VALUE klass) {
  rbuf *b;
  VALUE obj = TypedData_Make_Struct(klass, rbuf, &buf_type, b);
  b->str = rb_str_buf_new(0);
  b->pos = 0;
  return obj;
}

static rbuf *get_buf(VALUE self) { return rb_check_typeddata(self, &buf_type); }

VALUE ext_buf_new_from(const void *p, size_t n) {
  VALUE obj = buf_alloc(cBuffer);
  get_buf(obj)->str = rb_str_new(p, (long)n);
  return obj;
}

static VALUE buf_initialize(int argc, VALUE *argv, VALUE self) {
  VALUE content;
  rb_scan_args(argc, argv, "01", &content);
  rbuf *b = get_buf(self);
  b->str = NIL_P(content) ? rb_str_buf_new(0) : rb_str_dup(StringValue(content));
  rb_enc_associate(b->str, rb_ascii8bit_encoding());
  b->pos = 0;
  return self;
}

/* A reader over the unread part; commit writes the position back. */
static evssh_reader buf_reader(rbuf *b) {
  evssh_reader r;
  long len = RSTRING_LEN(b->str);
  if (b->pos > len) b->pos = len;
  r.p = (const unsigned char *)RSTRING_PTR(b->str) + b->pos;
  r.left = (size_t)(len - b->pos);
  return r;
}
static void buf_commit(rbuf *b, const evssh_reader *r) { b->pos = RSTRING_LEN(b->str) - (long)r->left; }

static VALUE buf_read_byte(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  uint8_t v;
  if (evssh_read_u8(&r, &v)) return Qnil;
  buf_commit(b, &r);
  return INT2FIX(v);
}
static VALUE buf_read_bool(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  bool v;
  if (evssh_read_bool(&r, &v)) return Qnil;
  buf_commit(b, &r);
  return v ? Qtrue : Qfalse;
}
static VALUE buf_read_long(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  uint32_t v;
  if (evssh_read_u32(&r, &v)) return Qnil;
  buf_commit(b, &r);
  return UINT2NUM(v);
}
static VALUE buf_read_int64(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  uint64_t v;
  if (evssh_read_u64(&r, &v)) return Qnil;
  buf_commit(b, &r);
  return ULL2NUM(v);
}
static VALUE buf_read_string(VALUE self) {
  rbuf *b = get_buf(self);
  evssh_reader r = buf_reader(b);
  const char *p;
  size_t n;
  if (evssh_read_string(&r, &p, &n)) return Qnil;
  VALUE s = rb_str_new(p, (long)n);
  buf_commit(b, &r);
  return s;
}
static VALUE buf_read(int argc, VALUE *argv, VALUE self) {
  VALUE count;
  rb_scan_args(argc, argv, "01", &count);
  rbuf *b = get_buf(self);
  long len = RSTRING_LEN(b->str);
  if (b->pos > len) b->pos = len;
  long n = NIL_P(count) ? len - b->pos : NUM2LONG(count);
  if (n < 0) rb_raise(rb_eArgError, "negative count");
  if (n > len - b->pos) n = len - b->pos;
  VALUE s = rb_str_substr(b->str, b->pos, n);
  b->pos += n;
  return s;
}
static VALUE buf_read_bang(int argc, VALUE *argv, VALUE self) {
  VALUE count;
  rb_scan_args(argc, argv, "01", &count);
  rbuf *b = get_buf(self);
  if (!NIL_P(count) && NUM2LONG(count) > RSTRING_LEN(b->str) - b->pos) return Qnil;
  VALUE s = buf_read(argc, argv, self);
  return s;
}
static VALUE buf_to_s(VALUE self) { return rb_str_dup(get_buf(self)->str); }
static VALUE buf_length(VALUE self) { return LONG2NUM(RSTRING_LEN(get_buf(self)->str)); }
static VALUE buf_available(VALUE self) {
  rbuf *b = get_buf(self);
  long n = RSTRING_LEN(b->str) - b->pos;
  return LONG2NUM(n < 0 ? 0 : n);
}
static VALUE buf_position(VALUE self) { return LONG2NUM(get_buf(self)->pos); }
static VALUE buf_set_position(VALUE self, VALUE pos) {
  rbuf *b = get_buf(self);
  long p = NUM2LONG(pos);
  if (p < 0) p = 0;
  if (p > RSTRING_LEN(b->str)) p = RSTRING_LEN(b->str);
  b->pos = p;
  return pos;
}
static VALUE buf_eof_p(VALUE self) {
  rbuf *b = get_buf(self);
  return b->pos >= RSTRING_LEN(b->str) ? Qtrue : Qfalse;
}
static VALUE buf_reset(VALUE self) {
  get_buf(self)->pos = 0;
  return self;
}
static VALUE buf_clear(VALUE self) {
  rbuf *b = get_buf(self);
  /* a new string: the old one may be shared with strings read from it */
  b->str = rb_str_buf_new(0);
  rb_enc_associate(b->str, rb_ascii8bit_encoding());
  b->pos = 0;
  return self;
}
/* drop what has been read (or the first n bytes) */
static VALUE buf_consume(int argc, VALUE *argv, VALUE self) {
  VALUE count;
  rb_scan_args(argc, argv, "01", &count);
  rbuf *b = get_buf(self);
  long len = RSTRING_LEN(b->str);
  long n = NIL_P(count) ? b->pos : NUM2LONG(count);
  if (n <= 0) return self;
  if (n >= len) {
    b->str = rb_str_buf_new(0);
    b->pos = 0;
    return self;
  }
  b->str = rb_str_substr(b->str, n, len - n);
  b->pos = b->pos > n ? b->pos - n : 0;
  return self;
}
static VALUE buf_append(VALUE self, VALUE text) {
  rbuf *b = get_buf(self);
  StringValue(text);
  rb_str_modify(b->str);
  rb_str_cat(b->str, RSTRING_PTR(text), RSTRING_LEN(text));
  return self;
}

/* Encode Net::SSH::Buffer.from-style (type, value) pairs with evssh_buf. */
static void put_value(evssh_buf *eb, VALUE type, VALUE v) {
  int rc = EVSSH_OK;
  ID t = SYM2ID(type);
  if (RB_TYPE_P(v, T_ARRAY)) {
    for (long i = 0; i < RARRAY_LEN(v); i++) put_value(eb, type, RARRAY_AREF(v, i));
    return;
  }
  if (t == rb_intern("byte")) {
    rc = evssh_buf_put_u8(eb, (uint8_t)NUM2UINT(v));
  } else if (t == rb_intern("bool")) {
    rc = evssh_buf_put_bool(eb, RTEST(v));
  } else if (t == rb_intern("long")) {
    rc = evssh_buf_put_u32(eb, (uint32_t)NUM2ULONG(v));
  } else if (t == rb_intern("int64")) {
    rc = evssh_buf_put_u64(eb, (uint64_t)NUM2ULL(v));
  } else if (t == rb_intern("string") || t == rb_intern("mstring")) {
    VALUE s = rb_obj_as_string(v);
    rc = evssh_buf_put_string(eb, RSTRING_PTR(s), (size_t)RSTRING_LEN(s));
  } else if (t == rb_intern("raw")) {
    VALUE s = rb_obj_as_string(v);
    const unsigned char *p = (const unsigned char *)RSTRING_PTR(s);
    for (long i = 0; rc == EVSSH_OK && i < RSTRING_LEN(s); i++) rc = evssh_buf_put_u8(eb, p[i]);
  } else {
    rb_raise(rb_eArgError, "unsupported buffer field type %" PRIsVALUE, type);
  }
  if (rc) ext_raise_code(rc, "cannot encode buffer field");
}

struct encode_args {
  evssh_buf *eb;
  int argc;
  const VALUE *argv;
};

static VALUE encode_pairs_body(VALUE p) {
  struct encode_args *a = (struct encode_args *)p;
  if (a->argc % 2) rb_raise(rb_eArgError, "buffer fields come in (type, value) pairs");
  for (int i = 0; i < a->argc; i += 2) {
    Check_Type(a->argv[i], T_SYMBOL);
    put_value(a->eb, a->argv[i], a->argv[i + 1]);
  }
  return rb_str_new(evssh_buf_data(a->eb), (long)evssh_buf_len(a->eb));
}
static VALUE encode_pairs_free(VALUE p) {
  evssh_buf_free((evssh_buf *)p);
  return Qnil;
}

/* Returns a binary String holding the encoded fields. */
VALUE ext_encode_pairs(int argc, const VALUE *argv) {
  evssh_buf *eb = evssh_buf_new();
  if (!eb) rb_raise(rb_eNoMemError, "evssh_buf_new");
  struct encode_args a = {eb, argc, argv};
  return rb_ensure(encode_pairs_body, (VALUE)&a, encode_pairs_free, (VALUE)eb);
}

static VALUE buf_s_from(int argc, VALUE *argv, VALUE klass) {
  VALUE s = ext_encode_pairs(argc, argv);
  VALUE obj = buf_alloc(klass);
  get_buf(obj)->str = s;
  return obj;
}

static VALUE buf_write_field(VALUE self, const char *type, VALUE v) {
  VALUE pair[2] = {ID2SYM(rb_intern(type)), v};
  return buf_append(self, ext_encode_pairs(2, pair));
}
static VALUE buf_write(int argc, VALUE *argv, VALUE self) {
  for (int i = 0; i < argc; i++) buf_append(self, argv[i]);
  return self;
}
static VALUE buf_write_byte(VALUE self, VALUE v) { return buf_write_field(self, "byte", v); }
static VALUE buf_write_bool(VALUE self, VALUE v) { return buf_write_field(self, "bool", v); }
static VALUE buf_write_long(VALUE self, VALUE v) { return buf_write_field(self, "long", v); }
static VALUE buf_write_int64(VALUE self, VALUE v) { return buf_write_field(self, "int64", v); }
static VALUE buf_write_string(VALUE self, VALUE v) { return buf_write_field(self, "string", v); }

void ext_init_buffer(void) {
  cBuffer = rb_define_class_under(ext_mEvSSH, "Buffer", rb_cObject);
  rb_define_alloc_func(cBuffer, buf_alloc);
  rb_define_singleton_method(cBuffer, "from", buf_s_from, -1);
  rb_define_method(cBuffer, "initialize", buf_initialize, -1);
  rb_define_method(cBuffer, "read_byte", buf_read_byte, 0);
  rb_define_method(cBuffer, "read_bool", buf_read_bool, 0);
  rb_define_method(cBuffer, "read_long", buf_read_long, 0);
  rb_define_method(cBuffer, "read_int64", buf_read_int64, 0);
  rb_define_method(cBuffer, "read_string", buf_read_string, 0);
  rb_define_method(cBuffer, "read", buf_read, -1);
  rb_define_method(cBuffer, "read!", buf_read_bang, -1);
  rb_define_method(cBuffer, "to_s", buf_to_s, 0);
  rb_define_method(cBuffer, "content", buf_to_s, 0);
  rb_define_method(cBuffer, "length", buf_length, 0);
  rb_define_method(cBuffer, "available", buf_available, 0);
  rb_define_method(cBuffer, "position", buf_position, 0);
  rb_define_method(cBuffer, "position=", buf_set_position, 1);
  rb_define_method(cBuffer, "eof?", buf_eof_p, 0);
  rb_define_method(cBuffer, "reset!", buf_reset, 0);
  rb_define_method(cBuffer, "clear!", buf_clear, 0);
  rb_define_method(cBuffer, "consume!", buf_consume, -1);
  rb_define_method(cBuffer, "append", buf_append, 1);
  rb_define_method(cBuffer, "write", buf_write, -1);
  rb_define_method(cBuffer, "write_byte", buf_write_byte, 1);
  rb_define_method(cBuffer, "write_bool", buf_write_bool, 1);
  rb_define_method(cBuffer, "write_long", buf_write_long, 1);
  rb_define_method(cBuffer, "write_int64", buf_write_int64, 1);
  rb_define_method(cBuffer, "write_string", buf_write_string, 1);
}
