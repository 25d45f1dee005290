/* storage/sr_file_int.h - what the files of the directory SR driver share
 * (sr_file.c: the SR and its VDIs; sr_file_gc.c: garbage collection). Not
 * for users of storage/: they have sr_file.h. */
#ifndef VESSEL_STORAGE_SR_FILE_INT_H
#define VESSEL_STORAGE_SR_FILE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "storage/sr_file.h"

#define BASE_SUFFIX ".base.vhd"
#define LEAF_SUFFIX ".vhd"

/* Held around every change of names in any SR of this process. */
extern pthread_mutex_t sr_file_names_lock;

/* Records why (printf-style) for sr_file_last_error() and returns @rc. */
int sr_file_fail(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with the VHD library's reason for @rc about @what. */
int sr_file_fail_vhd(int rc, const char *what);
void sr_file_clear_error(void);

bool sr_file_uuid_valid(const char *s);
void sr_file_uuid_generate(char out[37]);
/* @dir/@uuid@suffix into @out; -EINVAL for a bad uuid, -ENAMETOOLONG. */
int sr_file_join(char *out, size_t len, const char *dir, const char *uuid, const char *suffix);
/* A directory entry's uuid and kind; false when the name is not ours. */
bool sr_file_name_parse(const char *name, char uuid[37], bool *hidden);
int sr_file_sync_dir(const char *path);
/* What the file @file (VDI or base @uuid) says of itself, parents not opened. */
int sr_file_describe(const char *file, const char *uuid, bool hidden, struct sr_file_vhd *out);

/* How many entries of the scan @v name @uuid as their parent; the index of
 * the last of them goes to *@last (may be NULL). */
size_t sr_file_count_children(const struct sr_file_vhd *v, size_t n, const char *uuid,
                              size_t *last);

/* Under sr_file_names_lock, around every replacement of a VDI's leaf node
 * (sr_file_cbt.c): fold saves the node's blocks into the VDI's log (if it
 * has one), track records the node that replaced it. */
int sr_file_cbt_fold_locked(const char *path, const char *uuid);
int sr_file_cbt_track_locked(const char *path, const char *uuid);
/* For the fuzzer (tests/fuzz/cbtlog_fuzz.c): parses @data as a log file; 0
 * when it is one and its bytes as written again parse to the same log,
 * -EINVAL when it is none, -EPROTO when the round trip differs. */
int sr_file_cbt_parse_roundtrip(const char *data, size_t len);
/* sr_file_cbt_remove under the lock (crash recovery). */
int sr_file_cbt_remove_locked(const char *path, const char *uuid);

#endif
