/* api/console.h - console tunnels over HTTP (CONNECT /console?ref=...).
 * console_http_handle answers @req and returns true when it is a console
 * request; false leaves @req to the caller. */
#ifndef VESSEL_API_CONSOLE_H
#define VESSEL_API_CONSOLE_H

#include <stdbool.h>

#include "rpc/ctx.h"
#include "http/http.h"

bool console_http_handle(struct server *srv, struct http_request *req);

#endif
