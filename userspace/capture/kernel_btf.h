// What the kernel's BTF tells about what the kernel does, beyond what
// lockwatch's own CO-RE relocations check at load.
#pragma once

#include <span>

struct btf;

namespace lockwatch {

// Whether struct or union `type_id` has the member path `names` (each a
// member of the one before), anonymous members looked through.
// O(members of the types on the path).
bool has_member_path(const btf &kernel_btf, int type_id, std::span<const char *const> names);

// Kernels before 6.7 skip a kprobe program nested in another BPF program
// (bpf_prog_active) without counting it in the program's recursion_misses;
// the kprobe link's `missed`, in bpf_link_info, came with that count.
bool counts_kprobe_skips(const btf &kernel_btf);

}  // namespace lockwatch
