/*
 * status.h — the status document as JSON.
 */
#ifndef ZDM_STATUS_H
#define ZDM_STATUS_H

struct evbuffer;
struct runtime;

/* Appends {"ok":true,"version":...,"pools":[...],"pins":[...]} to out. */
void status_write(struct evbuffer *out, const struct runtime *rt);

#endif
