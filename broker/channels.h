/* SPDX-License-Identifier: Apache-2.0 */
/* Registers the channel modules of the contract with a router. */
#ifndef PARLEY_BROKER_CHANNELS_H
#define PARLEY_BROKER_CHANNELS_H

typedef struct brk_router brk_router;

/* comments:<video_id> and presence:<user_id>. */
void brk_channels_register(brk_router *r);

#endif
