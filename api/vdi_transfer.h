/* api/vdi_transfer.h - HTTP bulk transfer of a VDI's content.
 *
 *   PUT /import_raw_vdi?vdi=<ref>&format=raw|vhd[&task_id=<ref>]
 *   GET /export_raw_vdi?vdi=<ref>&format=raw|vhd[&task_id=<ref>]
 *
 * The caller is authenticated by session_id (query or cookie) or HTTP Basic
 * credentials, needs vm-admin, and is answered with an HTTP status; a task
 * (the caller's task_id, or a new one) shows progress and ends in success
 * or failure with the XenAPI error. Wire details: docs/storage-transfer.md.
 */
#ifndef VESSEL_API_VDI_TRANSFER_H
#define VESSEL_API_VDI_TRANSFER_H

#include <stdbool.h>

struct http_server;
struct server;

/* Adds the two stream routes to @http, served with @srv (which must outlive
 * @http). Call once, from the thread that started @http, right after
 * http_server_start(). false (out of memory, routes already there) after
 * logging why. */
bool vdi_transfer_register(struct server *srv, struct http_server *http);

#endif
