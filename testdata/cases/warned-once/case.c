// WARN_ON_ONCE() of the kernels before once_lite.h, and VM_WARN_ON_ONCE_PAGE()
// (include/linux/mmdebug.h) today, keep a `static bool __warned` in .data.unlikely per site.
// The fix adds a condition to one function: its copy gets its own __warned, never correlated nor
// a data change, and the other user of the idiom is not reported.
//#Flags: 6.1 6.12
//#Expect: func.changed page_ref_check
//#ExpectNot: func.changed page_map_check
//#ExpectNot: data.changed __warned
//#Included: page_ref_check
//#Included: __warned.1
//#Extern: dump_page

#define __section(s) __attribute__((__section__(s)))
#define unlikely(x) __builtin_expect(!!(x), 0)

struct page {
	unsigned long flags;
	int _refcount;
	int _mapcount;
};

extern void dump_page(struct page *page, const char *reason);

#define VM_WARN_ON_ONCE_PAGE(cond, page)				\
({									\
	static _Bool __section(".data.unlikely") __warned;		\
	int __ret_warn_once = !!(cond);					\
									\
	if (unlikely(__ret_warn_once && !__warned)) {			\
		dump_page(page, "VM_WARN_ON_ONCE_PAGE(" #cond ")");	\
		__warned = 1;						\
	}								\
	unlikely(__ret_warn_once);					\
})

int page_ref_check(struct page *page)
{
#ifdef PATCHED
	VM_WARN_ON_ONCE_PAGE(page->_refcount <= 0 || page->_refcount > 1 << 30, page);
#else
	VM_WARN_ON_ONCE_PAGE(page->_refcount <= 0, page);
#endif
	return page->_refcount;
}

int page_map_check(struct page *page)
{
	VM_WARN_ON_ONCE_PAGE(page->_mapcount < -1, page);
	return page->_mapcount + 1;
}
