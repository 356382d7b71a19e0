/* A program with debug info for the KernelDebugInfo tests: one function
 * inlined into another at a known line. The markers name the lines. */
static inline __attribute__((always_inline)) int fixture_inner(volatile int *p)
{
    return *p * 3 + 1; /* MARK_INNER_BODY */
}

__attribute__((noinline)) int fixture_outer(volatile int *p) /* MARK_OUTER */
{
    int v = fixture_inner(p); /* MARK_CALL */
    return v + *p;
}

__attribute__((noinline)) int fixture_plain(volatile int *p) { return *p + 7; } /* MARK_PLAIN */

int main(void)
{
    volatile int x = 2;

    return fixture_outer(&x) + fixture_plain(&x) == 18 ? 0 : 1;
}
