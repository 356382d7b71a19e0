// Names for the lock classes the BPF side derives from lock addresses, in
// the spirit of lockdep's `&pid->wait_pidfd`: struct.member paths from BTF.
//
//   slab object   (cache, offset)   -> "kioctx.ctx_lock", "pid.wait_pidfd.lock"
//   per-CPU data  (per-CPU offset)  -> "runqueues.__lock"
//   struct page   (offset)          -> "page.ptl"
//   kernel data   (symbol + offset) -> "tasklist_lock", "rcu_state.ofl_lock"
//   module data   (symbol + offset) -> "circ_a [lockwatch_scenarios]", "tbl+0x10 [mod]"
//   other memory  (call site)       -> "lock@do_wait_for_common", "lock@fn [mod]"
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct btf;

namespace lockwatch {

class Kallsyms;

// The struct.member path of the lock at `offset` inside BTF type `type_id`,
// descending until a spinlock_t / raw_spinlock_t / rwlock_t. nullopt when
// the offset is not inside a lock of that type.
std::optional<std::string> lock_member_path(const btf *btf, int32_t type_id, uint64_t offset);

// Slab cache name -> every cache name merged with it (itself included),
// read from /sys/kernel/slab, where merged caches are symlinks to one
// directory.
std::map<std::string, std::vector<std::string>> read_slab_aliases(
    const std::string &sysfs_slab = "/sys/kernel/slab");

// Struct name -> the first BTF id of a struct of that name, among the types
// from `first` on (a module's split BTF: its own). libbpf's
// btf__find_by_name_kind() reads every type on each call, vmlinux's over
// 100k: naming the slab caches of a small VM cost 385 M instructions of
// lockwatch's own that way (callgrind), all in those reads. Built in one
// pass, O(types); the names point into the BTF's strings, which must
// outlive the index.
class StructIndex {
  public:
    StructIndex(const btf *btf, uint32_t first);
    // 0 when no struct has that name.
    int32_t find(const std::string &name) const;

  private:
    std::unordered_map<std::string_view, int32_t> ids_;
};

// The BTF of loaded modules (/sys/kernel/btf/<module>), split on vmlinux's
// BTF, for structs that only a module defines. Parsed when first asked for
// a struct vmlinux lacks; a module loaded later is parsed at the next miss.
class ModuleBtfs {
  public:
    // `base` (vmlinux BTF) must outlive this.
    ModuleBtfs(const btf *base, std::string dir);
    ~ModuleBtfs();
    ModuleBtfs(const ModuleBtfs &) = delete;
    ModuleBtfs &operator=(const ModuleBtfs &) = delete;

    struct Found {
        const struct btf *types;
        int32_t type_id;
        std::string module;
    };
    std::optional<Found> find_struct(const std::string &name);
    // Parses the BTF of modules loaded since the last look; true when there
    // was any (a struct looked for in vain may be there now).
    bool add_new_modules();
    size_t parsed() const { return parsed_.size(); }

  private:
    const btf *base_;
    std::string dir_;
    std::map<std::string, btf *> parsed_;         // module -> its BTF, null when it did not parse
    std::map<std::string, StructIndex> structs_;  // module -> its own structs, when it parsed
};

class ClassNamer {
  public:
    // `btf` and `kallsyms` must outlive the namer.
    ClassNamer(const btf *btf, const Kallsyms *kallsyms,
               std::map<std::string, std::vector<std::string>> slab_aliases);
    // Looks up structs vmlinux lacks in the module BTFs under `dir`
    // (/sys/kernel/btf); off until called.
    void use_module_btf(const std::string &dir);

    std::string slab(const std::string &cache, uint64_t offset, uint64_t object_size) const;
    std::string percpu(uint64_t offset) const;
    std::string page(uint64_t offset) const;
    // "symbol" or "symbol+0xoff", with " [module]" for a module's data;
    // "static-lock" when no symbol covers it.
    std::string kernel_data(uint64_t address) const;
    // A static lock in the module area: its symbol as kernel_data() names
    // it, nullopt when no module symbol covers it.
    std::optional<std::string> module_data(uint64_t address) const;
    // module_data(), or the offset in the module area when nothing names it:
    // "static-lock+0x3a1c40 [module area]".
    std::string module_data_or_offset(uint64_t address) const;
    // The function at `address`: "do_wait_for_common", "fn [module]", or
    // "unknown".
    std::string function(uint64_t address) const;
    std::string call_site(uint64_t address) const;

  private:
    std::optional<std::string> struct_lock(const std::string &struct_name, uint64_t offset,
                                           uint64_t object_size) const;
    static std::optional<std::string> struct_lock_in(const btf *btf, int32_t id,
                                                     const std::string &struct_name,
                                                     uint64_t offset, uint64_t object_size);

    const btf *btf_;
    const Kallsyms *kallsyms_;
    std::map<std::string, std::vector<std::string>> slab_aliases_;
    std::map<uint64_t, std::pair<std::string, int32_t>> percpu_vars_;  // offset -> (name, type)
    std::unique_ptr<ModuleBtfs> module_btfs_;
    mutable std::optional<StructIndex> vmlinux_structs_;  // built at the first struct asked for
    // Where each struct looked for was found: a slab class asks for up to
    // three names per candidate cache, in vmlinux and then in every module
    // with BTF, and the same names come back with every offset of a cache.
    // Not found: null types, until a module loads.
    struct StructType {
        const struct btf *types = nullptr;
        int32_t id = 0;
    };
    mutable std::map<std::string, StructType> struct_types_;
};

}  // namespace lockwatch
