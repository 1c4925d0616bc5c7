/* tools/lan_delay/delay_line_test.c: the delay line keeps arrival order, releases nothing early,
 * everything due at once, and refuses a packet when full. Times are given, not measured. */
#include "base/check.h"
#include "tools/lan_delay/delay_line.h"

#include <stdint.h>

int main(void)
{
    struct delay_line l;
    CHECK(delay_line_init(&l, 4, 300000) == 0, "init");
    CHECK(delay_line_next(&l) == UINT64_MAX, "empty line has no next release");
    uint32_t last = 0;
    CHECK(delay_line_pop_due(&l, 1u << 30, &last) == 0, "nothing to pop from an empty line");

    /* Packets 7, 8, 9 at t = 1000, 1000, 50000 ns: due at +300 us each. */
    CHECK(delay_line_push(&l, 7, 1000) == 0, "push 7");
    CHECK(delay_line_push(&l, 8, 1000) == 0, "push 8");
    CHECK(delay_line_push(&l, 9, 50000) == 0, "push 9");
    CHECK(delay_line_next(&l) == 301000, "head due at 301000, got %llu",
          (unsigned long long)delay_line_next(&l));
    CHECK(delay_line_pop_due(&l, 300999, &last) == 0, "released 1 ns early");
    CHECK(delay_line_pop_due(&l, 301000, &last) == 2 && last == 8, "7 and 8 due together, last %u",
          last);
    CHECK(delay_line_next(&l) == 350000, "then 9 at 350000");
    CHECK(delay_line_pop_due(&l, 349999, &last) == 0, "9 released early");

    /* Wrap around the ring and fill it: ids keep their order; the fifth push is refused. */
    for (uint32_t id = 10; id < 13; id++)
        CHECK(delay_line_push(&l, id, 60000 + id) == 0, "push %u", id);
    CHECK(delay_line_push(&l, 99, 70000) == -1, "a full line accepted a packet");
    CHECK(delay_line_pop_due(&l, 350000, &last) == 1 && last == 9, "9 alone, last %u", last);
    CHECK(delay_line_pop_due(&l, 360011, &last) == 2 && last == 11, "10, 11, last %u", last);
    CHECK(delay_line_pop_due(&l, UINT64_MAX, &last) == 1 && last == 12, "12 last, got %u", last);
    CHECK(l.len == 0, "line empty at the end");
    delay_line_free(&l);

    /* Zero delay: due at once, still in order. */
    CHECK(delay_line_init(&l, 2, 0) == 0, "init 0");
    delay_line_push(&l, 1, 5);
    CHECK(delay_line_pop_due(&l, 5, &last) == 1 && last == 1, "zero delay due on arrival");
    delay_line_free(&l);
    return failures != 0;
}
