// A fix in the hot path of a function whose error path gcc moved to a .cold part
// (.text.unlikely.<fn>): the jump into the part is a PC32 relocation against the section symbol
// of .text.unlikely.ext4_fill_opts at a negative addend (-4: the part starts at offset 0), and the
// part jumps back into the parent at offsets of .text.ext4_fill_opts. The parent is reported,
// the unchanged part follows it into the output object (a relocation into a part the module
// lacks would jump into the kernel's copy of the old parent), and the part is not reported.
// Debian 6.1 flags only: at -Os (the 6.12 reference tree) gcc makes no .cold parts here.
//#Flags: 6.1 6.1+objtool
//#Expect: func.changed ext4_fill_opts
//#ExpectNot: func.changed ext4_fill_opts.cold
//#ExpectNot: func.added ext4_fill_opts.cold
//#ExpectNot: func.changed ext4_show_opts
//#Included: ext4_fill_opts
//#Included: ext4_fill_opts.cold
//#Extern: _printk
//#Entries: __mcount_loc 1

#define __cold __attribute__((__cold__))

extern __cold int _printk(const char *fmt, ...);
extern __cold void ext4_msg_dump(const char *opt, int v);
extern int parse_token(const char *s, int *v);

struct ext4_opts {
	int mount_opt;
	int commit;
	int max_batch;
};

int ext4_fill_opts(const char *s, struct ext4_opts *o)
{
	int v, n = 0;

	for (; *s; s++, n++) {
		switch (parse_token(s, &v)) {
		case 1:
			o->commit = v;
			break;
		case 2:
#ifdef PATCHED
			o->max_batch = v > 4096 ? 4096 : v;
#else
			o->max_batch = v;
#endif
			break;
		default:
			_printk("EXT4-fs: bad option \"%s\" (%d)\n", s, v);
			ext4_msg_dump(s, v);
			return -22;
		}
	}
	return n;
}

int ext4_show_opts(const struct ext4_opts *o)
{
	if (o->commit < 0) {
		_printk("EXT4-fs: negative commit %d\n", o->commit);
		return -22;
	}
	return o->commit + o->max_batch;
}
