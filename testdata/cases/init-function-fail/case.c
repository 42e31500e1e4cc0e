// A fix in __init code (include/linux/init.h: .init.text and cold): it ran at boot and the kernel
// freed it, so there is nothing to patch; the diff refuses and says why.
//#ExpectError: ^func\.init-changed .*parse_quirks.*__init.*reboot
//#Expect: func.init-changed parse_quirks
//#Expect: func.changed parse_quirks
//#Flags: 6.1 clang

#define __init __attribute__((__section__(".init.text"))) __attribute__((__cold__))

extern int quirk_mask;

int __init parse_quirks(const char *s)
{
	int v = 0;

	while (*s >= '0' && *s <= '9')
		v = v * 10 + (*s++ - '0');
#ifdef PATCHED
	quirk_mask = v & 0xff;
#else
	quirk_mask = v;
#endif
	return 1;
}
