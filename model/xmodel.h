/* model/xmodel.h - process-wide set-up of the data model runtime.
 *
 * xmodel_init() builds, once, a template record per class holding the schema's
 * defaults; call it from main before any thread starts (it is not locked).
 * Afterwards everything in model/ is read-only and thread-safe.
 */
#ifndef VESSEL_MODEL_XMODEL_H
#define VESSEL_MODEL_XMODEL_H

#include "model/xtype.h"

/* 0, -ENOMEM, or -EINVAL when a schema default does not decode (a bug). */
int xmodel_init(void);
/* The defaults record of @cls, or NULL before xmodel_init. Borrowed. */
const void *xmodel_template(const struct xclass *cls);

#endif
