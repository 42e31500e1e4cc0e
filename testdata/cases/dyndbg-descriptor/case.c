// pr_debug_ratelimited() with CONFIG_DYNAMIC_DEBUG (include/linux/dynamic_debug.h:
// DEFINE_DYNAMIC_DEBUG_METADATA(descriptor, fmt)) keeps a `static struct _ddebug descriptor` in
// the __dyndbg section per call site, with relocations to the module name, function name, file
// and format strings. The fix changes the format: the module's copy gets its own descriptor (its
// own dynamic-debug control line), never correlated nor a data change.
//#Flags: 6.1 6.12
//#Expect: func.changed tcp_probe_debug
//#ExpectNot: func.changed tcp_reset_debug
//#ExpectNot: data.changed descriptor
//#Included: tcp_probe_debug
//#Included: descriptor.3
//#Extern: __dynamic_pr_debug

struct _ddebug {
	const char *modname;
	const char *function;
	const char *filename;
	const char *format;
	unsigned int lineno : 18;
	unsigned int class_id : 6;
	unsigned int flags : 8;
};

extern void __dynamic_pr_debug(struct _ddebug *descriptor, const char *fmt, ...);

#define pr_debug(fmt, ...)						\
do {									\
	static struct _ddebug __attribute__((__aligned__(8)))		\
		__attribute__((__section__("__dyndbg"))) descriptor = {	\
		.modname = "tcp",					\
		.function = __func__,					\
		.filename = "net/ipv4/tcp.c",				\
		.format = (fmt),					\
		.lineno = 0,						\
	};								\
	if (__builtin_expect(descriptor.flags & 1, 0))			\
		__dynamic_pr_debug(&descriptor, fmt, ##__VA_ARGS__);	\
} while (0)

void tcp_probe_debug(int seq, int ack)
{
#ifdef PATCHED
	pr_debug("probe seq=%d ack=%d\n", seq, ack);
#else
	pr_debug("probe %d %d\n", seq, ack);
#endif
}

void tcp_reset_debug(int seq)
{
	pr_debug("reset %d\n", seq);
}
