// A fix in an object of a kernel built with CONFIG_DEBUG_INFO_COMPRESSED (5.13+; kbuild adds
// -gz=zlib): every .debug_* section is SHF_COMPRESSED, and its relocations count offsets in the
// uncompressed bytes. Such objects were refused as corrupt ("r_offset ... beyond the ... bytes of
// .debug_info"), since the bounds were checked against the compressed size. Read decompressed,
// they diff like uncompressed ones: the same report as the 6.1 flag set, from the same golden
// file, and the test checks that the objects do hold compressed sections.
//#Expect: func.changed show_uptime
//#Expect: func.added uptime_scaled
//#ExpectNot: func.changed show_idle
//#Included: show_uptime
//#Included: uptime_scaled
//#Extern: seq_printf
//#Flags: 6.1 6.1+gz

struct seq_file;
extern void seq_printf(struct seq_file *m, const char *fmt, ...);

#ifdef PATCHED
static unsigned long __attribute__((noinline)) uptime_scaled(unsigned long secs)
{
	return secs / 100;
}
#endif

int show_uptime(struct seq_file *m, unsigned long secs)
{
#ifdef PATCHED
	seq_printf(m, "%lu.%02lu\n", uptime_scaled(secs), secs % 100);
#else
	seq_printf(m, "%lu.%lu\n", secs / 100, secs % 100);
#endif
	return 0;
}

int show_idle(struct seq_file *m, unsigned long idle)
{
	seq_printf(m, "%lu\n", idle);
	return 0;
}
