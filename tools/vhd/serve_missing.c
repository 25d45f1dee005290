/* tools/vhd/serve_missing.c - `vhd serve` when the tool is built without nbd/.
 *
 * Only linked when nbd/ is absent from the build; says so instead of pretending.
 */
#include <stdio.h>

#include "tools/vhd/vhd_tool.h"

int
tool_cmd_serve(int argc, char **argv)
{
    fprintf(stderr, "vhd serve: this build has no NBD server (nbd/ missing)\n");
    return 1;
}
