// A fix in a function behind a static key (kernel/sched: sched_feat() with
// CONFIG_JUMP_LABEL, static_branch_unlikely()): arch_static_branch() puts a 5-byte jmp/nop at the
// branch site and a struct jump_entry {s32 code, s32 target, long key} in __jump_table, whose key
// field is a relocation against the static key itself (+1 for a "likely" branch). The fix's copy
// must carry its own entry, with the key relocation left to the kernel's key (an extern), or
// the branch in the module is never patched when the key flips. The unchanged user of the same
// key keeps its entry in the kernel only.
//#Flags: 6.1 6.1+objtool 6.12 clang 6.1+gz
//#Expect: func.changed pick_next_balance
//#ExpectNot: func.changed idle_balance_hint
//#Included: pick_next_balance
//#Extern: sched_energy_present
//#Entries: __jump_table 1

struct static_key {
	int enabled;
	void *entries;
};
struct static_key_false {
	struct static_key key;
};

extern struct static_key_false sched_energy_present;

static inline __attribute__((__always_inline__)) _Bool arch_static_branch(struct static_key *key, _Bool branch)
{
	asm goto("1:"
		 ".byte 0x0f,0x1f,0x44,0x00,0\n\t"
		 ".pushsection __jump_table,  \"aw\" \n\t"
		 ".balign 8\n\t"
		 ".long 1b - . \n\t"
		 ".long %l[l_yes] - . \n\t"
		 ".quad %c0 + %c1 - .\n\t"
		 ".popsection \n\t"
		 : : "i"(key), "i"(branch) : : l_yes);
	return 0;
l_yes:
	return 1;
}

#define static_branch_unlikely(x) __builtin_expect(arch_static_branch(&(x)->key, 0), 0)

extern int find_energy_cpu(int cpu);
extern int find_idlest_cpu(int cpu);

int pick_next_balance(int cpu)
{
	if (static_branch_unlikely(&sched_energy_present)) {
#ifdef PATCHED
		int c = find_energy_cpu(cpu);

		if (c >= 0)
			return c;
#else
		return find_energy_cpu(cpu);
#endif
	}
	return find_idlest_cpu(cpu);
}

int idle_balance_hint(int cpu)
{
	if (static_branch_unlikely(&sched_energy_present))
		return cpu;
	return -1;
}
