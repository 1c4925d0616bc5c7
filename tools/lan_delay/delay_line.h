/* tools/lan_delay/delay_line.h: a first-in first-out line of held packets, each released a fixed
 * delay after it arrived. The delay is the same for every packet and arrivals come in order, so
 * release times never decrease: the head is always the next packet due, nothing is reordered, and
 * "release everything up to packet X" (one batch verdict) is exact.
 *
 * Bounded: a full line refuses a packet (the caller lets the kernel's own queue limit, set to the
 * same capacity, drop it, as a switch drops when its buffer is full). */
#ifndef MP_DELAY_LINE_H
#define MP_DELAY_LINE_H

#include <stdint.h>

struct delay_entry {
    uint32_t id;         /* the kernel's packet id (NFQUEUE numbers a queue's packets in order) */
    uint64_t release_ns; /* CLOCK_MONOTONIC time at which it may go */
};

struct delay_line {
    struct delay_entry *ring;
    uint32_t cap, head, len;
    uint64_t delay_ns;
};

/* 0, or -1 when out of memory. */
int delay_line_init(struct delay_line *l, uint32_t cap, uint64_t delay_ns);
void delay_line_free(struct delay_line *l);
/* Holds packet ID arrived at NOW_NS; 0, or -1 when the line is full. */
int delay_line_push(struct delay_line *l, uint32_t id, uint64_t now_ns);
/* Takes every packet due at NOW_NS off the line: returns how many, and the last one's id in
 * *LAST_ID (the batch verdict covers it and all before it). 0 when none is due. */
uint32_t delay_line_pop_due(struct delay_line *l, uint64_t now_ns, uint32_t *last_id);
/* Release time of the head, or UINT64_MAX when the line is empty. */
uint64_t delay_line_next(const struct delay_line *l);

#endif
