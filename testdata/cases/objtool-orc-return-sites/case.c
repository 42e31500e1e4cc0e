// What objtool adds to every Debian 6.1 object, for a fix that adds a third return to a function
// with an indirect call (a seq_operations-style callback): the returns are `jmp __x86_return_thunk`
// (-mfunction-return=thunk-extern) listed in .return_sites, the indirect call goes through
// __x86_indirect_thunk_rax (retpolines) listed in .retpoline_sites, and the ORC unwinder's
// entries for the function are in .orc_unwind_ip/.orc_unwind. The module's copy needs its own
// sites (the kernel patches them at load: return thunk and retpoline choice per CPU) and its
// own ORC entries (or the stack of a task sleeping in the copy cannot be unwound and the
// livepatch transition never finishes): six ORC entries, one per change of the stack layout
// and the terminator. The unchanged function's entries stay in the kernel.
//#Flags: 6.1+objtool
//#Expect: func.changed seq_release_checked
//#ExpectNot: func.changed seq_open_checked
//#Included: seq_release_checked
//#Extern: __x86_return_thunk
//#Extern: __x86_indirect_thunk_rax
//#Entries: .return_sites 3
//#Entries: .retpoline_sites 1
//#Entries: .orc_unwind_ip 6

struct seq_ops {
	int (*stop)(void *m, void *v);
};

struct seq_file {
	const struct seq_ops *op;
	void *priv;
	long count;
};

extern void kfree(const void *p);

int seq_release_checked(struct seq_file *m)
{
	if (!m->op)
		return -22;
#ifdef PATCHED
	if (m->count < 0)
		return -5;
#endif
	m->op->stop(m, m->priv);
	kfree(m->priv);
	return 0;
}

int seq_open_checked(struct seq_file *m, const struct seq_ops *op)
{
	if (!op)
		return -22;
	m->op = op;
	return op->stop(m, 0);
}
