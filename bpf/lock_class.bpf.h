/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Lock address -> lock class, for kernels without lockdep (which would give
 * us the lockdep_map key instead).
 *
 * - kernel image data (static locks): the address itself; user space names
 *   it from kallsyms (tasklist_lock, rcu_state+0x...).
 * - module data (static locks of modules, in the module area): the address
 *   itself, typed apart so that user space names it "symbol [module]" and
 *   gives it the same class when the module comes back at a new address.
 * - per-CPU data: the address normalised to its per-CPU offset, so that
 *   every CPU's copy of runqueues.__lock is one class.
 * - slab objects: (kmem_cache, offset in the object); user space names it
 *   from BTF (kioctx.ctx_lock, pid.wait_pidfd.lock).
 * - struct page (the memmap): the offset in the page, so that every split
 *   page-table lock is one class (page.ptl), as lockdep has it.
 * - anything else (stacks, vmalloc): the acquiring call site.
 *
 * What is cached: the boot's constants; while each cache lives, its sizes
 * and what its name says; and each recently taken lock's class by its
 * address, until any slab's pages are freed or, for a kmalloc object,
 * until its address is allocated again from another site (known_address,
 * below).
 */
#ifndef LOCKWATCH_LOCK_CLASS_BPF_H
#define LOCKWATCH_LOCK_CLASS_BPF_H

#include "lockwatch.h"

/* Untyped ksyms: libbpf resolves them from kallsyms. Weak, because kernels
 * without memory randomisation have constants instead of variables. */
extern const void _stext __ksym __weak;
extern const void _end __ksym __weak;
extern const void __per_cpu_start __ksym __weak;
extern const void __per_cpu_end __ksym __weak;
extern const void __per_cpu_offset __ksym __weak;
extern const void page_offset_base __ksym __weak;
extern const void vmemmap_base __ksym __weak;

#define LW_DEFAULT_PAGE_OFFSET 0xffff888000000000ULL
#define LW_DEFAULT_VMEMMAP_START 0xffffea0000000000ULL
#define LW_PAGE_SHIFT 12

struct lw_class {
    __u64 id;
    __u32 type;           /* enum lw_class_type */
    __u32 offset;         /* slab: offset in the object; per-CPU: offset in the area */
    __u64 cache;          /* slab: struct kmem_cache * */
    __u32 object_size;    /* slab: kmem_cache->object_size */
    bool generic_kmalloc; /* slab: the cache is a generic kmalloc-N one */
    bool name_unread;     /* slab: the cache's name could not be read (not to be kept) */
};

static __always_inline __u64 read_u64(const void *addr)
{
    __u64 v = 0;

    bpf_probe_read_kernel(&v, sizeof(v), addr);
    return v;
}

/* page_offset_base, vmemmap_base and each CPU's per-CPU offset are set
 * once at boot (for every possible CPU, hotplug or not): read on first use
 * and kept (0: not read yet, or the read failed), instead of a
 * bpf_probe_read_kernel() each, about 50 instructions, on every acquire
 * (with the kmalloc verdicts in lockwatch.bpf.c: -17 to -22 % of
 * lockwatch's added instructions on bench/vm/cost.sh). CPUs that race to
 * fill one store the same value. */
#define LW_MAX_CPUS 8192 /* NR_CPUS bound */
__u64 lw_boot_constants[2];
__u64 lw_percpu_offsets[LW_MAX_CPUS];
#define LW_BOOT_PAGE_OFFSET 0
#define LW_BOOT_VMEMMAP 1

static __always_inline __u64 boot_constant(int which, const void *addr)
{
    __u64 v = lw_boot_constants[which];

    if (!v) {
        v = read_u64(addr);
        lw_boot_constants[which] = v;
    }
    return v;
}

/* __per_cpu_offset[n], kept as the boot constants are. */
static __always_inline __u64 percpu_offset(__u64 offsets, __u64 n)
{
    __u64 v;

    if (n >= LW_MAX_CPUS)
        return 0;
    v = lw_percpu_offsets[n];
    if (!v) {
        v = read_u64((void *)(offsets + n * 8));
        lw_percpu_offsets[n] = v;
    }
    return v;
}

static __always_inline __u64 mix64(__u64 x)
{
    /* splitmix64 finaliser: class ids from different sources must not collide */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static __always_inline __u64 class_id_of(__u32 type, __u64 a, __u64 b)
{
    return mix64(mix64(a ^ ((__u64)type << 56)) ^ b) | 1; /* never 0 */
}

/* CPU n's copy of the per-CPU variable at section offset v lives at
 * v + __per_cpu_offset[n]. Checks this CPU's area first (exact), then the
 * CPU whose area the address would fall in if the units are evenly spaced,
 * verified against that CPU's own offset. */
static __always_inline bool percpu_offset_of(__u64 addr, __u64 cpu_offset, __u64 start, __u64 end,
                                             __u64 *rel)
{
    __u64 r = addr - cpu_offset;

    if (r < start || r >= end)
        return false;
    *rel = r;
    return true;
}

static __always_inline bool classify_percpu(__u64 addr, struct lw_class *c)
{
    /* x86-64's per-CPU section is zero-based, so __per_cpu_start is 0 there. */
    __u64 start = (__u64)&__per_cpu_start, end = (__u64)&__per_cpu_end;
    __u64 offsets = (__u64)&__per_cpu_offset;
    __u64 cpu = bpf_get_smp_processor_id();
    __u64 off0, off1, rel = 0, n;

    if (!end || !offsets)
        return false;
    if (!percpu_offset_of(addr, percpu_offset(offsets, cpu), start, end, &rel)) {
        off0 = percpu_offset(offsets, 0);
        off1 = percpu_offset(offsets, 1);
        if (off1 <= off0 || addr < off0 + start)
            return false;
        n = (addr - off0 - start) / (off1 - off0);
        if (n >= LW_MAX_CPUS)
            return false;
        if (!percpu_offset_of(addr, percpu_offset(offsets, n), start, end, &rel))
            return false;
    }
    c->type = LW_CLASS_PERCPU;
    c->offset = (__u32)rel;
    c->id = class_id_of(LW_CLASS_PERCPU, rel, 0);
    return true;
}

/*
 * A bpf_probe_read_kernel() costs about as much for a few words as for one,
 * so the fields classify_slab() needs are read a struct at a time where the
 * kernel's layout puts them close together (6.1: the page's flags,
 * compound_head and slab_cache within 32 bytes; the cache's size,
 * object_size and red_left_pad within 68), else one read each. The offsets
 * are CO-RE constants, so the verifier keeps one of the two ways. Two or
 * three reads where there were six: -20 % of the class's instructions
 * (bench/vm/cost.sh --profile).
 */
#define LW_PAGE_WINDOW 32
#define LW_CACHE_WINDOW 96

struct slab_page {
    __u64 flags;
    __u64 head;  /* compound_head: bit 0 set on a tail page */
    __u64 cache; /* struct slab's slab_cache, on a head page */
};

static __always_inline bool fits_window(__u32 at, __u32 size, __u32 window)
{
    return at % size == 0 && at + size <= window;
}

static __always_inline void read_slab_page(__u64 page, struct slab_page *p)
{
    __u32 flags_at = bpf_core_field_offset(struct page, flags);
    __u32 head_at = bpf_core_field_offset(struct page, compound_head);
    __u32 cache_at = bpf_core_field_offset(struct slab, slab_cache);
    __u64 window[LW_PAGE_WINDOW / 8] = {};

    if (fits_window(flags_at, 8, LW_PAGE_WINDOW) && fits_window(head_at, 8, LW_PAGE_WINDOW) &&
        fits_window(cache_at, 8, LW_PAGE_WINDOW)) {
        bpf_probe_read_kernel(window, sizeof(window), (void *)page);
        p->flags = window[flags_at / 8];
        p->head = window[head_at / 8];
        p->cache = window[cache_at / 8];
        return;
    }
    p->flags = BPF_CORE_READ((struct page *)page, flags);
    p->head = BPF_CORE_READ((struct page *)page, compound_head);
    p->cache = (__u64)BPF_CORE_READ((struct slab *)page, slab_cache);
}

struct cache_geometry {
    __u32 size; /* the stride between objects */
    __u32 object_size;
    __u32 red_left_pad;
    __u32 generic_kmalloc; /* read_cache_name() */
    __u64 identity;        /* read_cache_name() */
};

static __always_inline void read_cache_geometry(struct kmem_cache *cache, struct cache_geometry *g)
{
    __u32 size_at = bpf_core_field_offset(struct kmem_cache, size);
    __u32 object_at = bpf_core_field_offset(struct kmem_cache, object_size);
    __u32 pad_at = bpf_core_field_offset(struct kmem_cache, red_left_pad);
    __u32 window[LW_CACHE_WINDOW / 4] = {};

    if (size_at <= object_at && size_at <= pad_at &&
        fits_window(object_at - size_at, 4, LW_CACHE_WINDOW) &&
        fits_window(pad_at - size_at, 4, LW_CACHE_WINDOW)) {
        __u32 end = (object_at > pad_at ? object_at : pad_at) + 4 - size_at;

        /* No further than the last field: the struct may end a page. */
        bpf_probe_read_kernel(window, end, (void *)cache + size_at);
        g->size = window[0];
        g->object_size = window[(object_at - size_at) / 4];
        g->red_left_pad = window[(pad_at - size_at) / 4];
        return;
    }
    g->size = BPF_CORE_READ(cache, size);
    g->object_size = BPF_CORE_READ(cache, object_size);
    g->red_left_pad = BPF_CORE_READ(cache, red_left_pad);
}

/*
 * The caches' geometry, kept per CPU and context (in lockwatch.bpf.c's
 * cpu_state): a cache's size, object_size and red_left_pad never change
 * while it lives, and reading them is a bpf_probe_read_kernel() of 68 bytes,
 * about 200 instructions, on every slab lock (bench/vm/cost.sh --profile).
 * A cache destroyed and made anew may come back at the same address with
 * another geometry, so cache_released(), on slab_kmem_cache_release() where
 * the kernel frees a kmem_cache, bumps lw_cache_generation, and an entry
 * counts only in the generation it was read in. Used once that program is
 * attached (user space sets lw_geometry_cache_on).
 */
#define LW_GEOMETRY_SLOTS 32
struct known_geometry {
    __u64 cache;
    __u64 generation;
    struct cache_geometry geometry;
};

__u64 lw_cache_generation = 0;
bool lw_geometry_cache_on = false;

/*
 * What a cache's name says, read with its sizes: rarely with the geometry
 * cache, on every slab lock without it. A hash of it (identity): a cache
 * made where a destroyed one was has its address but not, as a rule, its
 * name, and slab class ids hash the name in, so that the new cache's locks
 * are not taken for the old one's classes (and named after it). And whether
 * it is a generic kmalloc-N cache (kmalloc-N, kmalloc-cg-N, kmalloc-rcl-N),
 * which any struct of a size may come from, so that (cache, offset) alone
 * would merge unrelated locks. False when the name could not be read.
 */
static __always_inline bool read_cache_name(struct kmem_cache *cache, struct cache_geometry *g)
{
    __u64 name[4] = {};

    if (bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(cache, name)) <= 0)
        return false;
    g->generic_kmalloc = name[0] == 0x2d636f6c6c616d6bULL; /* "kmalloc-", little endian */
    g->identity = mix64(name[0] ^ mix64(name[1] ^ mix64(name[2] ^ mix64(name[3]))));
    return true;
}

/* Sizes and name; false (nothing to keep) when either could not be read. */
static __always_inline bool read_cache(struct kmem_cache *cache, struct cache_geometry *g)
{
    read_cache_geometry(cache, g);
    return g->size && read_cache_name(cache, g);
}

static __always_inline void cache_geometry(struct known_geometry *known, __u64 cache,
                                           struct cache_geometry *g)
{
    struct known_geometry *slot;
    __u64 generation;

    if (!lw_geometry_cache_on) {
        read_cache((struct kmem_cache *)cache, g);
        return;
    }
    /* kmem_caches are cache-line aligned, a few hundred bytes apart. */
    slot = &known[((cache >> 8) ^ (cache >> 16)) & (LW_GEOMETRY_SLOTS - 1)];
    generation = lw_cache_generation; /* before the read: a bump during it voids the entry */
    if (slot->cache == cache && slot->generation == generation) {
        *g = slot->geometry;
        return;
    }
    if (!read_cache((struct kmem_cache *)cache, g))
        return;
    slot->cache = cache;
    slot->generation = generation;
    slot->geometry = *g;
}

static __always_inline bool classify_slab(__u64 addr, struct known_geometry *known,
                                          struct lw_class *c)
{
    __u64 page_offset = LW_DEFAULT_PAGE_OFFSET, vmemmap = LW_DEFAULT_VMEMMAP_START;
    __u64 page_size = bpf_core_type_size(struct page);
    struct cache_geometry geometry = {};
    struct slab_page slab;
    __u64 pfn, page, slab_base;

    if (&page_offset_base)
        page_offset = boot_constant(LW_BOOT_PAGE_OFFSET, &page_offset_base);
    if (&vmemmap_base)
        vmemmap = boot_constant(LW_BOOT_VMEMMAP, &vmemmap_base);
    if (addr < page_offset || !page_size)
        return false;
    pfn = (addr - page_offset) >> LW_PAGE_SHIFT;
    if (pfn >= (1ULL << 40))
        return false;
    page = vmemmap + pfn * page_size;
    read_slab_page(page, &slab);
    if (slab.head & 1) {
        page = slab.head - 1;
        read_slab_page(page, &slab);
    }
    if (!(slab.flags & (1ULL << bpf_core_enum_value(enum pageflags, PG_slab))) || !slab.cache)
        return false;
    cache_geometry(known, slab.cache, &geometry);
    if (!geometry.size)
        return false;
    slab_base = page_offset + (((page - vmemmap) / page_size) << LW_PAGE_SHIFT);
    c->type = LW_CLASS_SLAB;
    c->offset = (__u32)((addr - slab_base) % geometry.size) - geometry.red_left_pad;
    c->cache = slab.cache;
    c->object_size = geometry.object_size;
    c->generic_kmalloc = geometry.generic_kmalloc;
    c->name_unread = geometry.identity == 0; /* mix64() of a read name is never 0 in practice */
    c->id = class_id_of(LW_CLASS_SLAB, slab.cache ^ geometry.identity, c->offset);
    return true;
}

/*
 * Lock address -> class, kept per CPU and context (in lockwatch.bpf.c's
 * cpu_state) by derive_class(): the per-CPU and slab rules cost a page read
 * (one or two bpf_probe_read_kernel()s, about 200 instructions) or a
 * per-CPU range check (about 80), and a generic kmalloc object's class an
 * allocation-site lookup (about 100), on every acquire (bench/vm/cost.sh
 * --profile), while most acquires take a lock taken a moment before.
 *
 * - A slab lock's class holds while its slab's pages stay in that slab:
 *   lockwatch.bpf.c's fentry and fexit programs on __free_slab() (every
 *   slab's pages going back to the page allocator) and __kfence_alloc() (a
 *   KFENCE page given to a cache) bump lw_slab_generation, and an entry
 *   counts only in the generation it was read in. One generation, not one
 *   per page: cost.sh's workload frees a slab 38 to 54 times a run against
 *   about a million acquires, and each bump voids every CPU's entries.
 *   (On a kernel that inlined __free_slab() into some of its callers a
 *   fentry would miss those frees; user space turns the cache off when
 *   kallsyms shows copies of it, but cannot see a copy without a name.)
 * - A generic kmalloc object's class also holds until its address is
 *   allocated from another site: kmalloc_site() bumps the object's bucket
 *   in lw_alloc_generation after it records the new site. (An object whose
 *   record fell out of the alloc_sites LRU keeps its allocation site's
 *   class here while the entry lasts, where a lookup would give it its
 *   first acquirer's.)
 * - The maps of allocation and first acquirers' sites are LRUs, and an
 *   acquire served from here does not look its entry up: every 16th such
 *   hit does, so that a hot object's entry stays as recent as it was when
 *   every acquire looked it up, and is not evicted to split its class.
 * - Addresses that fall to no rule (stacks, vmalloc, pages outside the
 *   slab) are not kept: their page may become a slab's. Nor are slab locks
 *   whose cache's name could not be read (their class lacks it).
 *
 * Used once the __free_slab probes are attached (lw_address_cache_on).
 */
#define LW_KNOWN_ADDRESS_SLOTS 32
#define LW_KNOWN_ADDRESS_SHIFT 59 /* 64 - log2(slots) */
struct known_address {
    __u64 lock;
    __u64 generation;       /* lw_slab_generation when read */
    __u64 site;             /* the allocation or first acquirer's site, if any */
    __u16 alloc_bucket;     /* generic kmalloc: the object's lw_alloc_generation index */
    __u16 hits;             /* generic kmalloc: hits, for touching its LRU entry */
    __u32 alloc_generation; /* and that generation's value when read */
    struct lw_class class;
};

/* One CPU and context's caches of what the address rules read. */
struct known_classes {
    struct known_geometry geometry[LW_GEOMETRY_SLOTS];
    struct known_address addresses[LW_KNOWN_ADDRESS_SLOTS];
};

#define LW_ALLOC_GENERATIONS 4096 /* fits known_address's __u16 alloc_bucket */
#define LW_ALLOC_GENERATION_SHIFT 52 /* 64 - log2(buckets) */
__u64 lw_slab_generation = 0;
__u32 lw_alloc_generation[LW_ALLOC_GENERATIONS];
bool lw_address_cache_on = false;

/* Fibonacci hashing: locks in one object, and objects in one slab, differ
 * in their low bits only. */
static __always_inline __u64 fibonacci_hash(__u64 addr, int shift)
{
    return (addr * 0x9e3779b97f4a7c15ULL) >> shift;
}

static __always_inline __u32 alloc_bucket_of(__u64 object)
{
    return fibonacci_hash(object, LW_ALLOC_GENERATION_SHIFT);
}

/* A bucket's generation (the mask is for the verifier). */
static __always_inline __u32 *bucket_generation(__u32 bucket)
{
    return &lw_alloc_generation[bucket & (LW_ALLOC_GENERATIONS - 1)];
}

static __always_inline struct known_address *known_address_slot(struct known_classes *known,
                                                                __u64 lock)
{
    return &known->addresses[fibonacci_hash(lock, LW_KNOWN_ADDRESS_SHIFT)];
}

static __always_inline bool address_known(const struct known_address *slot, __u64 lock)
{
    if (!lw_address_cache_on || slot->lock != lock || slot->generation != lw_slab_generation)
        return false;
    return !slot->class.generic_kmalloc ||
           slot->alloc_generation == *bucket_generation(slot->alloc_bucket);
}

static __always_inline bool classify_page(__u64 addr, struct lw_class *c)
{
    __u64 vmemmap = LW_DEFAULT_VMEMMAP_START;
    __u64 page_size = bpf_core_type_size(struct page);

    if (&vmemmap_base)
        vmemmap = boot_constant(LW_BOOT_VMEMMAP, &vmemmap_base);
    /* The virtual memmap spans at most 1 TiB with 4-level page tables. */
    if (!page_size || addr < vmemmap || addr - vmemmap >= (1ULL << 40))
        return false;
    c->type = LW_CLASS_PAGE;
    c->offset = (__u32)((addr - vmemmap) % page_size);
    c->id = class_id_of(LW_CLASS_PAGE, c->offset, 0);
    return true;
}

/* `site` is the acquiring call site, used when nothing better names the
 * lock; `known`: this CPU and context's LW_GEOMETRY_SLOTS cache entries. */
static __always_inline void classify_lock(__u64 addr, __u64 site, struct known_geometry *known,
                                          struct lw_class *c)
{
    __u64 text = (__u64)&_stext, end = (__u64)&_end;

    c->cache = 0;
    c->object_size = 0;
    c->offset = 0;
    c->generic_kmalloc = false;
    c->name_unread = false;
    if (text && end && addr >= text && addr < end) {
        c->type = LW_CLASS_STATIC;
        c->id = class_id_of(LW_CLASS_STATIC, addr, 0);
        return;
    }
    if (lw_in_module_area(addr, end)) {
        c->type = LW_CLASS_MODULE;
        c->id = class_id_of(LW_CLASS_MODULE, addr, 0);
        return;
    }
    if (classify_percpu(addr, c) || classify_slab(addr, known, c) || classify_page(addr, c))
        return;
    c->type = LW_CLASS_SITE;
    c->id = class_id_of(LW_CLASS_SITE, site, 0);
}

#endif /* LOCKWATCH_LOCK_CLASS_BPF_H */
