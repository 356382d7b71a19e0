/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The return address of a lock call, lockdep's "at:" for a held lock, read
 * where a kprobe or a BPF trampoline finds it. Shared by lockwatch's
 * programs and the cost benchmark's held-stack floor (bench/vm/hook_floor.bpf.c),
 * so that the floor pays for the same reads.
 */
#ifndef LOCKWATCH_RETURN_ADDRESS_BPF_H
#define LOCKWATCH_RETURN_ADDRESS_BPF_H

extern const void __lock_text_start __ksym __weak;
extern const void __lock_text_end __ksym __weak;
/* Kernel addresses on x86-64 (text, data and stacks) lie above this. */
#define LW_KERNEL_TEXT_MIN 0xffff800000000000ULL

/* At a function's entry the stack pointer points at its return address. */
static __always_inline __u64 kprobe_return_address(struct pt_regs *regs)
{
    __u64 ret = 0;

    bpf_probe_read_kernel(&ret, sizeof(ret), (void *)PT_REGS_SP(regs));
    return ret;
}

/*
 * The return address into the lock function's caller, read off the x86 BPF
 * trampoline's frame: the traced function's first instruction called the
 * trampoline, which pushed %rbp, so [rbp + 8] is the return into the lock
 * function and [rbp + 16] the return into its caller. The programs' ctx
 * (the saved arguments) sits 8 bytes per argument below %rbp, 8 more when
 * the trampoline also keeps a return value (an fexit program shares it).
 * Both layouts are tried; the right one has [rbp + 8] in lock text.
 */
static __always_inline __u64 fentry_return_address(void *ctx, __u32 nr_args)
{
    __u64 lock_start = (__u64)&__lock_text_start, lock_end = (__u64)&__lock_text_end;
    __u64 frame[2];

    for (__u32 extra = 0; extra < 2; extra++) {
        void *rbp = ctx + 8 * (nr_args + extra);

        if (bpf_probe_read_kernel(frame, sizeof(frame), rbp + 8))
            return 0;
        if (frame[0] >= lock_start && frame[0] < lock_end)
            return frame[1] >= LW_KERNEL_TEXT_MIN ? frame[1] : 0;
    }
    return 0;
}

#endif /* LOCKWATCH_RETURN_ADDRESS_BPF_H */
