// A fix that stops calling a static helper: gcc drops the helper from the patched object. The
// kernel's copy stays in place; the report warns about it (func.removed) and reports the caller.
//#Expect: func.removed legacy_fixup
//#Expect: func.changed setup_dev
//#ExpectNot: func.added legacy_fixup
//#Flags: 6.1 clang

extern void write_reg(int reg, int v);

static __attribute__((__noinline__)) void legacy_fixup(int reg)
{
	write_reg(reg, 0);
	write_reg(reg + 1, 0);
}

void setup_dev(int reg)
{
#ifndef PATCHED
	legacy_fixup(reg);
#endif
	write_reg(reg, 1);
}
