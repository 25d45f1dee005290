/* tools/vhd/cmd_inspect.c - `vhd info`, `vhd map`, `vhd convert`.
 *
 * Read-side commands. `info` opens the chain read-only, accepting the footer copy at 0
 * (inspection of a crashed file is allowed, spec 5 row 2) and, if a parent cannot be
 * opened, still describes the file alone and says why. `map` lists allocated extents of
 * the whole chain (sector granularity). `convert` copies whole disks; the input format is
 * taken from --from, else a trailing "conectix" cookie means VHD (spec 5 row 6: never from
 * sector 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/vhd/vhd_tool.h"

static const char *
type_name(enum vhd_type t)
{
    switch (t) {
    case VHD_TYPE_FIXED: return "fixed";
    case VHD_TYPE_DYNAMIC: return "dynamic";
    case VHD_TYPE_DIFF: return "differencing";
    }
    return "unknown";
}

/* Parse [--json] FILE. Returns the file or NULL after printing a usage error. */
static const char *
parse_json_file(int argc, char **argv, bool *json)
{
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    int ch;
    *json = false;
    while ((ch = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
        if (ch != 'j')
            return NULL;
        *json = true;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "vhd %s: expected exactly one FILE\n", argv[0]);
        return NULL;
    }
    return argv[optind];
}

static void
print_image_json(const struct vhd_info *in)
{
    char uuid[37], puuid[37];
    vhd_uuid_format(in->uuid, uuid);
    vhd_uuid_format(in->parent_uuid, puuid);
    printf("{\"type\":\"%s\",\"virtual_size\":%" PRIu64 ",\"file_size\":%" PRIu64
           ",\"block_size\":%u,\"max_bat_entries\":%u,\"allocated_blocks\":%u,\"uuid\":\"%s\"",
           type_name(in->type), in->size_bytes, in->file_size_bytes, in->block_size,
           in->max_bat_entries, in->allocated_blocks, uuid);
    printf(",\"creator\":");
    tool_json_string(in->creator);
    printf(",\"creator_version\":\"%u.%u\",\"geometry\":[%u,%u,%u],\"hidden\":%s",
           in->creator_version >> 16, in->creator_version & 0xFFFF, in->cylinders, in->heads,
           in->sectors_per_track, in->hidden ? "true" : "false");
    printf(",\"head_footer_used\":%s", in->head_footer_used ? "true" : "false");
    if (in->type == VHD_TYPE_DIFF) {
        printf(",\"parent_uuid\":\"%s\",\"parent_name\":", puuid);
        tool_json_string(in->parent_name);
    }
    printf("}");
}

static void
print_image_text(const struct vhd_info *in, unsigned index)
{
    char uuid[37];
    vhd_uuid_format(in->uuid, uuid);
    const char *ind = index ? "  " : "";
    printf("%stype: %s\n%svirtual size: %" PRIu64 " bytes (%.2f GiB)\n%sfile size: %" PRIu64
           " bytes\n%suuid: %s\n%screator: %s %u.%u\n",
           ind, type_name(in->type), ind, in->size_bytes,
           (double)in->size_bytes / (1024.0 * 1024 * 1024), ind, in->file_size_bytes, ind, uuid,
           ind, in->creator, in->creator_version >> 16, in->creator_version & 0xFFFF);
    if (in->type != VHD_TYPE_FIXED)
        printf("%sblock size: %u\n%sblocks allocated: %u of %u\n", ind, in->block_size, ind,
               in->allocated_blocks, in->max_bat_entries);
    if (in->type == VHD_TYPE_DIFF) {
        char puuid[37];
        vhd_uuid_format(in->parent_uuid, puuid);
        printf("%sparent: %s (uuid %s)\n", ind, in->parent_name, puuid);
    }
    if (in->head_footer_used)
        printf("%swarning: trailing footer damaged, the copy at offset 0 was used "
               "(run vhd repair)\n", ind);
}

int
tool_cmd_info(int argc, char **argv)
{
    bool json;
    const char *file = parse_json_file(argc, argv, &json);
    if (!file)
        return 2;
    struct vhd_chain *c;
    char parent_err[200] = "";
    int rc = vhd_chain_open(file, VHD_OPEN_RDONLY | VHD_OPEN_HEAD_FOOTER, &c);
    if (rc < 0) {
        snprintf(parent_err, sizeof(parent_err), "%s", vhd_last_error());
        int rc2 = vhd_chain_open(file, VHD_OPEN_RDONLY | VHD_OPEN_HEAD_FOOTER |
                                 VHD_OPEN_NO_PARENTS, &c);
        if (rc2 < 0)
            return tool_fail("info", rc2, "%s", file);
    }
    unsigned depth = vhd_chain_depth(c);
    struct vhd_info in;
    if (json) {
        printf("{\"file\":");
        tool_json_string(file);
        printf(",\"chain_depth\":%u,\"image\":", rc < 0 ? 0 : depth);
        vhd_chain_info(c, 0, &in);
        print_image_json(&in);
        printf(",\"parents\":[");
        for (unsigned i = 1; i < depth; i++) {
            vhd_chain_info(c, i, &in);
            printf(i > 1 ? "," : "");
            print_image_json(&in);
        }
        printf("]");
        if (rc < 0) {
            printf(",\"chain_error\":");
            tool_json_string(parent_err);
        }
        printf("}\n");
    } else {
        printf("file: %s\n", file);
        vhd_chain_info(c, 0, &in);
        print_image_text(&in, 0);
        for (unsigned i = 1; i < depth; i++) {
            vhd_chain_info(c, i, &in);
            printf("parent %u:\n", i);
            print_image_text(&in, i);
        }
        if (rc < 0)
            printf("chain error: %s\n", parent_err);
        else
            printf("chain depth: %u\n", depth);
    }
    vhd_chain_close(c);
    return 0;
}

int
tool_cmd_map(int argc, char **argv)
{
    bool json;
    const char *file = parse_json_file(argc, argv, &json);
    if (!file)
        return 2;
    struct vhd_chain *c;
    int rc = vhd_chain_open(file, VHD_OPEN_RDONLY, &c);
    if (rc < 0)
        return tool_fail("map", rc, "%s", file);
    uint64_t size = vhd_chain_size(c), off = 0;
    bool first = true;
    if (json)
        printf("[");
    while (off < size) {
        uint64_t run;
        bool alloc;
        rc = vhd_chain_block_status(c, off, size - off, &run, &alloc);
        if (rc < 0)
            break;
        if (alloc && json)
            printf("%s{\"offset\":%" PRIu64 ",\"length\":%" PRIu64 "}", first ? "" : ",", off,
                   run);
        else if (alloc)
            printf("%" PRIu64 " %" PRIu64 "\n", off, run);
        first &= !alloc;
        off += run;
    }
    if (json)
        printf("]\n");
    vhd_chain_close(c);
    if (rc < 0)
        return tool_fail("map", rc, "%s", file);
    return 0;
}

/* True if the last 512 bytes of @path start with the VHD footer cookie. */
static bool
looks_like_vhd(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    char cookie[8] = {0};
    bool yes = fstat(fd, &st) == 0 && st.st_size >= 512 &&
               pread(fd, cookie, 8, st.st_size - 512 + (st.st_size % 512 == 511)) == 8 &&
               !memcmp(cookie, "conectix", 8);
    if (!yes && fstat(fd, &st) == 0 && st.st_size >= 512)
        yes = pread(fd, cookie, 8, st.st_size - 511) == 8 && !memcmp(cookie, "conectix", 8);
    close(fd);
    return yes;
}

int
tool_cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, 't'},
        {"from", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *to = NULL, *from = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "t:f:", opts, NULL)) != -1) {
        if (ch == 't')
            to = optarg;
        else if (ch == 'f')
            from = optarg;
        else
            return 2;
    }
    if (!to || (strcmp(to, "raw") && strcmp(to, "vhd")) ||
        (from && strcmp(from, "raw") && strcmp(from, "vhd")) || optind != argc - 2) {
        fprintf(stderr, "vhd convert: usage: vhd convert --to raw|vhd [--from raw|vhd] IN OUT\n");
        return 2;
    }
    const char *in = argv[optind], *out = argv[optind + 1];
    bool in_vhd = from ? !strcmp(from, "vhd") : looks_like_vhd(in);
    bool to_vhd = !strcmp(to, "vhd");
    int rc;
    if (!in_vhd && !to_vhd) {
        fprintf(stderr, "vhd convert: %s is not a VHD (use --to vhd to import a raw file)\n", in);
        return 1;
    }
    if (!in_vhd) {
        rc = vhd_convert_from_raw(in, out, tool_progress, "convert");
    } else {
        struct vhd_chain *c;
        rc = vhd_chain_open(in, VHD_OPEN_RDONLY, &c);
        if (rc < 0)
            return tool_fail("convert", rc, "%s", in);
        rc = vhd_convert_to(c, out, to_vhd, tool_progress, "convert");
        vhd_chain_close(c);
    }
    tool_progress_end();
    if (rc < 0)
        return tool_fail("convert", rc, "%s -> %s", in, out);
    return 0;
}
