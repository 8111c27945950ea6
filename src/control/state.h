/*
 * state.h — the state file: runtime changes that survive a restart.
 *
 * JSON, written atomically (a temporary file in the same directory, fsync,
 * rename, fsync of the directory) so that a reader or a crash never sees a
 * partial file. Each value is stored with the config value it overrode: at
 * start, a runtime value is restored only where the config still says what
 * it said then (the same rule as a reload), so an edit of the config made
 * while zdmd was down wins.
 */
#ifndef ZDM_STATE_H
#define ZDM_STATE_H

#include <stddef.h>

struct config;
struct runtime_values;

/* Writes values v (indexed like a snapshot of cfg) to path. Returns 0, or
 * -1 with the reason in err. */
int state_save(const char *path, const struct config *cfg, const struct runtime_values *v,
               char *err, size_t errlen);

/* Reads path into v (which holds cfg's values). Returns 1 when there is no
 * file, 0 when it was applied, -1 when it is unreadable or invalid: then
 * a warning says why and v is left untouched (never half-applied). */
int state_load(const char *path, const struct config *cfg, struct runtime_values *v);

#endif
