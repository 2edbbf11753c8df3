/* SPDX-License-Identifier: Apache-2.0 */
/* TEMPORARY single-node mesh until cluster/ lands. */
#include "broker/mesh.h"
#include "broker/node.h"
#include "common/err.h"
#include <stdlib.h>
struct brk_mesh { brk_node *n; };
int brk_mesh_create(brk_mesh **out, brk_node *n, char *err, size_t errlen)
{ (void)err; (void)errlen; *out = calloc(1, sizeof(**out)); if (!*out) return PL_ENOMEM; (*out)->n = n; return 0; }
void brk_mesh_destroy(brk_mesh *m) { free(m); }
void brk_mesh_leave(brk_mesh *m) { (void)m; }
int brk_mesh_joined(const brk_mesh *m) { (void)m; return 1; }
json_t *brk_mesh_members_json(brk_mesh *m) { return json_pack("{s:s,s:[]}", "self", brk_node_name(m->n), "members"); }
json_t *brk_mesh_leader_json(brk_mesh *m) { return json_pack("{s:s,s:s}", "self", brk_node_name(m->n), "leader", brk_node_name(m->n)); }
json_t *brk_mesh_stats_json(brk_mesh *m) { (void)m; return json_object(); }
int brk_mesh_block(brk_mesh *m, const char *peer, int on) { (void)m; (void)peer; (void)on; return 0; }
