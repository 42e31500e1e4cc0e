// A fix that adds functions, with the 6.12 flags: a new static helper called directly and a new
// global function whose address the fix stores (both start with endbr64 when their address may
// be taken). Issue 8's 7.2 report was objtool's "unannotated intra-function call" on the
// module's copy of such a fix. Both are new (func.added) and go into the module with the
// changed caller; the unchanged function beside them is not reported.
//#Flags: 6.1 6.1+objtool 6.12
//#Expect: func.changed n_tty_write_fixed
//#Expect: func.added tty_write_room_clamp
//#Expect: func.added n_tty_write_hook
//#ExpectNot: func.changed n_tty_read_fixed
//#Included: n_tty_write_fixed
//#Included: tty_write_room_clamp
//#Included: n_tty_write_hook
//#Entries: __mcount_loc 3

struct tty {
	long room;
	long written;
	long (*hook)(struct tty *t, long n);
};

extern long tty_write_room(struct tty *t);
extern long do_output(struct tty *t, const char *buf, long n);

#ifdef PATCHED
static __attribute__((__noinline__)) long tty_write_room_clamp(struct tty *t, long n)
{
	long room = tty_write_room(t);

	return n < room ? n : room;
}

long n_tty_write_hook(struct tty *t, long n)
{
	t->written += n;
	return n;
}
#endif

long n_tty_write_fixed(struct tty *t, const char *buf, long n)
{
#ifdef PATCHED
	n = tty_write_room_clamp(t, n);
	t->hook = n_tty_write_hook;
#endif
	return do_output(t, buf, n);
}

long n_tty_read_fixed(struct tty *t)
{
	return t->room;
}
