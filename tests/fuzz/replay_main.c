/* tests/fuzz/replay_main.c - runs a fuzz target over its corpus without libFuzzer.
 *
 * Under gcc the suite cannot use libFuzzer, but every input that ever found a
 * bug is in tests/fuzz/corpus/<target>/ and must keep passing: this main feeds
 * each file (or each file named on the command line) to
 * LLVMFuzzerTestOneInput once and prints one TAP line per file. A crash is a
 * crash of the test; a sanitizer build turns memory errors into failures.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path, unsigned n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("not ok %u - %s: cannot open\n", n, path);
        return 1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
        fclose(f);
        printf("not ok %u - %s: cannot stat\n", n, path);
        return 1;
    }
    size_t size = (size_t)st.st_size;
    /* malloc(0) may return NULL; a fuzz input of 0 bytes is legal */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf || fread(buf, 1, size, f) != size) {
        free(buf);
        fclose(f);
        printf("not ok %u - %s: cannot read\n", n, path);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, size);
    free(buf);
    printf("ok %u - %s\n", n, strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
    return 0;
}

static int
compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
    unsigned n = 0;
    int failed = 0;
    char **paths = NULL;
    size_t n_paths = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.')
                    continue;
                char **grown = realloc(paths, (n_paths + 1) * sizeof(*paths));
                if (!grown)
                    return 1;
                paths = grown;
                if (asprintf(&paths[n_paths], "%s/%s", argv[i], e->d_name) < 0)
                    return 1;
                n_paths++;
            }
            if (d)
                closedir(d);
        } else {
            char **grown = realloc(paths, (n_paths + 1) * sizeof(*paths));
            if (!grown)
                return 1;
            paths = grown;
            paths[n_paths++] = strdup(argv[i]);
        }
    }
    qsort(paths, n_paths, sizeof(*paths), compare_names);
    printf("1..%zu\n", n_paths ? n_paths : 1);
    if (n_paths == 0)
        printf("ok 1 # SKIP empty corpus\n");
    for (size_t i = 0; i < n_paths; i++) {
        failed |= replay_file(paths[i], ++n);
        free(paths[i]);
    }
    free(paths);
    return failed;
}
