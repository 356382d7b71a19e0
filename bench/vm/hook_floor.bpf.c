// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of lockwatch's design: an empty program on every hook lockwatch
 * uses, in the same flavour as the backend measured (fentry on acquires and
 * releases and fexit on trylocks, or a kprobe, and a kretprobe on trylocks),
 * and on the kmalloc tracepoint. What these cost is the price of the hooks
 * themselves (the BPF trampoline, ftrace's register save, the tracepoint's
 * call); what lockwatch costs above it is its programs' work. The loader
 * (hook_floor.cpp) autoloads one flavour per function, as lockwatch does.
 */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "lock_functions.h"

char LICENSE[] SEC("license") = "GPL";

#define LW_FLOOR_ACQUIRE(symbol)                       \
    SEC("fentry/" #symbol)                             \
    int fentry_##symbol(void *ctx) { return 0; }       \
    SEC("kprobe/" #symbol)                             \
    int kprobe_##symbol(void *ctx) { return 0; }
#define LW_FLOOR_RELEASE(symbol) LW_FLOOR_ACQUIRE(symbol)
#define LW_FLOOR_TRYLOCK(symbol)                       \
    SEC("fexit/" #symbol)                              \
    int fexit_##symbol(void *ctx) { return 0; }        \
    SEC("kprobe/" #symbol)                             \
    int kprobe_##symbol(void *ctx) { return 0; }       \
    SEC("kretprobe/" #symbol)                          \
    int kretprobe_##symbol(void *ctx) { return 0; }

#define LW_LOCK_FUNCTION(symbol, kind, op, variant) LW_FLOOR_##op(symbol)
LW_LOCK_FUNCTIONS
#undef LW_LOCK_FUNCTION

SEC("raw_tp/kmalloc")
int floor_kmalloc(void *ctx)
{
    return 0;
}
