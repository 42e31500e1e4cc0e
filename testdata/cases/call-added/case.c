// A fix that adds a call to a kernel function (a missing put of a reference): the callee stays in
// the kernel, the output object refers to it as an extern for the resolve stage.
//#Expect: func.changed release_entry
//#Included: release_entry
//#Extern: kfree
//#Extern: put_device
//#Flags: 6.1 clang

struct device;
struct entry {
	struct device *dev;
	void *buf;
};

extern void kfree(const void *p);
extern void put_device(struct device *dev);

void release_entry(struct entry *e)
{
	kfree(e->buf);
#ifdef PATCHED
	put_device(e->dev);
#endif
	kfree(e);
}
