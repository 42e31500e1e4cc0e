// clang names a static local `<function>.<name>` (count_write.calls), where gcc numbers it
// (calls.1), and a once-flag the same way (count_write.__already_done). The fix changes
// count_write only: it keeps the kernel's counter (an extern named as clang-built kallsyms
// lists it), while its WARN_ONCE-style flag is a special static, carried as a fresh copy.
//#Expect: func.changed count_write
//#ExpectNot: func.changed count_read
//#ExpectNot: data.changed count_write.calls
//#Extern: count_write.calls
//#Included: count_write.__already_done
//#Flags: clang

extern void note_calls(int n);
extern int _printk(const char *fmt, ...);

void count_read(void)
{
	static int calls;

	note_calls(++calls);
}

void count_write(void)
{
	static int calls;
	static _Bool __already_done __attribute__((section(".data.once")));

#ifdef PATCHED
	calls += 2;
	note_calls(calls);
#else
	note_calls(++calls);
#endif
	if (calls > 1000 && !__already_done) {
		__already_done = 1;
		_printk("too many writes\n");
	}
}
