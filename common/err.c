#include "err.h"

#include <stdarg.h>
#include <stdio.h>

const char *emu_strerror(int err)
{
	switch (err) {
	case EMU_OK: return "success";
	case EMU_ENOMEM: return "out of memory";
	case EMU_EINVAL: return "invalid input";
	case EMU_EIO: return "I/O error";
	case EMU_ENOTFOUND: return "not found";
	case EMU_EEXIST: return "already exists";
	case EMU_ETOOBIG: return "too large";
	case EMU_EPROTO: return "protocol error";
	case EMU_ETLS: return "TLS error";
	case EMU_ESTORE: return "storage error";
	case EMU_ECRYPTO: return "cryptographic or certificate error";
	case EMU_EAUTH: return "not authorized";
	case EMU_EPRECOND: return "precondition failed";
	case EMU_EAGAIN: return "incomplete, try again";
	case EMU_ECLOSED: return "connection closed";
	}
	return "unknown error";
}

void emu_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}
