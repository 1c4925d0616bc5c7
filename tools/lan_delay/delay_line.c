/* tools/lan_delay/delay_line.c: see delay_line.h. */
#include "tools/lan_delay/delay_line.h"

#include <stdlib.h>

int delay_line_init(struct delay_line *l, uint32_t cap, uint64_t delay_ns)
{
    l->ring = calloc(cap ? cap : 1, sizeof(*l->ring));
    l->cap = cap ? cap : 1;
    l->head = l->len = 0;
    l->delay_ns = delay_ns;
    return l->ring ? 0 : -1;
}

void delay_line_free(struct delay_line *l)
{
    free(l->ring);
    l->ring = NULL;
}

int delay_line_push(struct delay_line *l, uint32_t id, uint64_t now_ns)
{
    if (l->len == l->cap)
        return -1;
    struct delay_entry *e = &l->ring[(l->head + l->len) % l->cap];
    e->id = id;
    e->release_ns = now_ns + l->delay_ns;
    l->len++;
    return 0;
}

uint32_t delay_line_pop_due(struct delay_line *l, uint64_t now_ns, uint32_t *last_id)
{
    uint32_t n = 0;
    while (l->len > 0 && l->ring[l->head].release_ns <= now_ns) {
        *last_id = l->ring[l->head].id;
        l->head = (l->head + 1) % l->cap;
        l->len--;
        n++;
    }
    return n;
}

uint64_t delay_line_next(const struct delay_line *l)
{
    return l->len ? l->ring[l->head].release_ns : UINT64_MAX;
}
