/* daemon/data_dir.h - the data directory is vesseld's alone.
 *
 * It holds the store (with live session refs, which are bearer tokens), the
 * password hashes, the TLS key and the audit log, so nobody else on the host
 * may read it. Called once at start, before anything is opened in it.
 */
#ifndef VESSEL_DAEMON_DATA_DIR_H
#define VESSEL_DAEMON_DATA_DIR_H

/* Makes @dir private: refuses a path that is not a directory or not owned by
 * this process's user (-ENOTDIR, -EPERM), sets mode 0700 where group or others
 * had any access, and mode 0600 on the files directly in it that had (files
 * earlier versions made 0644: vessel.db and its journal, the pid file). Every
 * change is logged with the mode it replaced. 0 or negative errno. */
int data_dir_make_private(const char *dir);

#endif
