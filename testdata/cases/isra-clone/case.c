// A static function that reads one field of the struct it is given: gcc's IPA-SRA passes the
// field instead and names the clone req_len.isra.0. The fix in it reports the clone, not callers.
//#Expect: func.changed req_len.isra.0
//#ExpectNot: func.changed submit
//#ExpectNot: func.changed complete
//#Included: req_len.isra.0

struct request {
	unsigned long flags;
	unsigned int len;
	unsigned int pad;
	void *buf;
};

extern void queue_bytes(void *buf, unsigned int n);

static __attribute__((__noinline__)) unsigned int req_len(const struct request *rq)
{
#ifdef PATCHED
	return rq->len > 4096 ? 4096 : rq->len;
#else
	return rq->len;
#endif
}

void submit(struct request *rq)
{
	queue_bytes(rq->buf, req_len(rq));
}

void complete(struct request *rq)
{
	queue_bytes(0, req_len(rq));
}
