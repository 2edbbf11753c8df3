/* SPDX-License-Identifier: Apache-2.0 */
#include "common/err.h"

const char *
pl_strerror(int err)
{
	switch (err) {
	case PL_OK: return "ok";
	case PL_ENOMEM: return "out of memory";
	case PL_EINVAL: return "invalid argument";
	case PL_EIO: return "i/o error";
	case PL_ENOTFOUND: return "not found";
	case PL_EEXIST: return "already exists";
	case PL_EFULL: return "full";
	case PL_ECORRUPT: return "corrupt data";
	case PL_ECLOSED: return "closed";
	case PL_EAGAIN: return "try again";
	case PL_ETOOBIG: return "too big";
	case PL_EPROTO: return "protocol error";
	case PL_EAUTH: return "authentication failed";
	case PL_ELIMIT: return "limit reached";
	}
	return "unknown error";
}
