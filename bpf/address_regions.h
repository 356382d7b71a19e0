/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where a kernel address lies on x86-64, shared by the BPF programs and user
 * space (plain C, no helpers), so that both sides draw the same lines.
 *
 * The kernel image sits in [__START_KERNEL_map, MODULES_VADDR), and
 * MODULES_VADDR is __START_KERNEL_map + KERNEL_IMAGE_SIZE
 * (arch/x86/include/asm/pgtable_64_types.h, page_64_types.h): 1 GiB with
 * CONFIG_RANDOMIZE_BASE, 512 MiB without. MODULES_END is 0xffffffffff000000
 * (0xfffffffffe000000 with CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP). Neither end
 * moves under KASLR: module_alloc() randomises the load offset inside the
 * area. Module text and data, BPF JIT images and trampolines, kprobe
 * instruction slots and ftrace trampolines all come from module_alloc().
 *
 * The area is taken as [max(image end, 512 MiB bound), MODULES_END), which
 * covers both image sizes: on a 1 GiB kernel the gap between the image's
 * end and 0xffffffffc0000000 is unmapped, so nothing there is misread.
 */
#ifndef LOCKWATCH_ADDRESS_REGIONS_H
#define LOCKWATCH_ADDRESS_REGIONS_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define LW_START_KERNEL_MAP 0xffffffff80000000ULL
/* MODULES_VADDR with CONFIG_RANDOMIZE_BASE (KERNEL_IMAGE_SIZE 1 GiB) */
#define LW_MODULES_VADDR 0xffffffffc0000000ULL
/* MODULES_VADDR without it (KERNEL_IMAGE_SIZE 512 MiB) */
#define LW_MODULES_VADDR_SMALL_IMAGE 0xffffffffa0000000ULL
#define LW_MODULES_END 0xffffffffff000000ULL

/* `image_end` is the kernel's _end, or 0 when unknown. */
static __always_inline int lw_in_module_area(__u64 addr, __u64 image_end)
{
    return addr >= LW_MODULES_VADDR_SMALL_IMAGE && addr >= image_end && addr < LW_MODULES_END;
}

/* The start of the module area an address counts from in reports (an
 * offset from a fixed start says nothing about where KASLR put anything). */
static __always_inline __u64 lw_module_area_start(__u64 addr)
{
    return addr >= LW_MODULES_VADDR ? LW_MODULES_VADDR : LW_MODULES_VADDR_SMALL_IMAGE;
}

/*
 * One step of finding the acquiring call site in a stack read inside a
 * lockwatch program, innermost frame first. The stack starts with the BPF
 * program and its trampoline (both in the module area), then the lock
 * function (lock text), then its caller. Returns 1 when `ip` is the call
 * site: kernel text outside the lock functions, or module code once a
 * kernel frame has been passed (*past_kernel), which is how module code is
 * told from the BPF machinery before it.
 */
static __always_inline int lw_is_call_site(__u64 ip, __u64 text, __u64 etext, __u64 lock_start,
                                  __u64 lock_end, __u64 image_end, int *past_kernel)
{
    if (ip >= text && ip < etext) {
        *past_kernel = 1;
        return !(ip >= lock_start && ip < lock_end);
    }
    return *past_kernel && lw_in_module_area(ip, image_end);
}

#endif /* LOCKWATCH_ADDRESS_REGIONS_H */
