// A mount-option parser (nilfs2's parse_options() has the same shape): the error path calls
// _printk(), which the kernel declares __cold, so gcc moves it into a .cold part
// (parse_options.cold, in .text.unlikely). The fix is in that part only, but the kernel redirects
// functions, not parts: the parent is reported, and its part follows it into the output object.
//#Expect: func.changed parse_options
//#ExpectNot: func.changed parse_options.cold
//#ExpectNot: func.added parse_options.cold
//#Included: parse_options
//#Included: parse_options.cold
//#Extern: _printk

#define __cold __attribute__((__cold__))

extern __cold int _printk(const char *fmt, ...);
extern int match_token(const char *s);

struct sb_opts {
	int opts;
	int flags;
};

int parse_options(char *options, struct sb_opts *sb)
{
	int n = 0;

	while (*options) {
		int tok = match_token(options);

		switch (tok) {
		case 1:
			sb->opts |= 1;
			break;
		case 2:
			sb->opts &= ~1;
			break;
		case 3:
			sb->flags |= 4;
			break;
		default:
#ifdef PATCHED
			_printk("nilfs: unrecognized mount option \"%s\"\n", options);
#else
			_printk("unrecognized mount option \"%s\"\n", options);
#endif
			return 0;
		}
		options++;
		n++;
	}
	return n;
}
