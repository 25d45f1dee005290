/* api/metrics.h - periodic metrics: VM_metrics from the domain manager,
 * host_metrics.memory_free, VIF_metrics from taps. One thread calls it
 * (vesseld's housekeeping), every METRICS_PERIOD_S seconds. */
#ifndef VESSEL_API_METRICS_H
#define VESSEL_API_METRICS_H

#include "rpc/ctx.h"

#define METRICS_PERIOD_S 15

void metrics_update(struct server *srv);

#endif
