/* SPDX-License-Identifier: Apache-2.0 */
/* The project's one error enum: 0 is success, every module returns these and
 * translates errno, MDB_*, NNG_* and CURLE_* at its own edge. */
#ifndef PARLEY_COMMON_ERR_H
#define PARLEY_COMMON_ERR_H

typedef enum pl_err {
	PL_OK = 0,
	PL_ENOMEM,    /* allocation failed */
	PL_EINVAL,    /* bad argument or malformed input */
	PL_EIO,       /* I/O or system call failed */
	PL_ENOTFOUND, /* no such item */
	PL_EEXIST,    /* already exists */
	PL_EFULL,     /* capacity reached */
	PL_ECORRUPT,  /* stored data unreadable */
	PL_ECLOSED,   /* object closed or shutting down */
	PL_EAGAIN,    /* try again later */
	PL_ETOOBIG,   /* input over a size limit */
	PL_EPROTO,    /* peer violated a protocol */
	PL_EAUTH,     /* authentication failed */
	PL_ELIMIT,    /* a limit was hit (rate, devices, channels) */
} pl_err;

/* Static text for an error code; never NULL. */
const char *pl_strerror(int err);

#endif
