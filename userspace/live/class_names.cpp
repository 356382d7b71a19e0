#include "live/class_names.h"

#include <bpf/btf.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "capture/kallsyms.h"
#include "lockwatch.h"

namespace lockwatch {

namespace {

bool is_lock_type_name(std::string_view name) {
    return name == "spinlock_t" || name == "raw_spinlock_t" || name == "rwlock_t" ||
           name == "spinlock" || name == "raw_spinlock";
}

// Follows typedefs and qualifiers, stopping early at a lock type; sets
// *is_lock when one was seen on the way.
int32_t resolve(const btf *btf, int32_t id, bool *is_lock) {
    *is_lock = false;
    for (int guard = 0; guard < 32 && id > 0; ++guard) {
        const btf_type *t = btf__type_by_id(btf, id);
        if (!t) {
            return -1;
        }
        const char *name = btf__name_by_offset(btf, t->name_off);
        if (name && is_lock_type_name(name)) {
            *is_lock = true;
            return id;
        }
        switch (btf_kind(t)) {
            case BTF_KIND_TYPEDEF:
            case BTF_KIND_VOLATILE:
            case BTF_KIND_CONST:
            case BTF_KIND_RESTRICT:
            case BTF_KIND_TYPE_TAG:
                id = t->type;
                continue;
            default:
                return id;
        }
    }
    return -1;
}

std::optional<std::string> member_path(const btf *btf, int32_t id, uint64_t offset, int depth) {
    bool is_lock = false;
    id = resolve(btf, id, &is_lock);
    if (id <= 0 || depth > 16) {
        return std::nullopt;
    }
    if (is_lock) {
        return std::string();
    }
    const btf_type *t = btf__type_by_id(btf, id);
    if (btf_is_array(t)) {
        const struct btf_array *arr = btf_array(t);
        int64_t elem_size = btf__resolve_size(btf, arr->type);
        if (elem_size <= 0 || offset >= elem_size * static_cast<uint64_t>(arr->nelems)) {
            return std::nullopt;
        }
        auto rest = member_path(btf, arr->type, offset % elem_size, depth + 1);
        if (!rest) {
            return std::nullopt;
        }
        return fmt::format("[{}]{}", offset / elem_size, *rest);
    }
    if (!btf_is_composite(t)) {
        return std::nullopt;
    }
    const btf_member *m = btf_members(t);
    for (int i = 0; i < btf_vlen(t); ++i, ++m) {
        uint64_t member_offset = btf_member_bit_offset(t, i) / 8;
        int64_t size = btf__resolve_size(btf, m->type);
        if (size <= 0 || offset < member_offset || offset >= member_offset + size) {
            continue;
        }
        auto rest = member_path(btf, m->type, offset - member_offset, depth + 1);
        if (!rest) {
            continue;  // a union member that holds no lock there; try the next
        }
        const char *name = btf__name_by_offset(btf, m->name_off);
        if (name && *name) {
            return fmt::format(".{}{}", name, *rest);
        }
        return rest;  // anonymous struct or union: lockdep's names skip it too
    }
    return std::nullopt;
}

// "timer_bases" + "[0].lock" -> "timer_bases[0].lock"; "pid" + "wait_pidfd.lock"
// -> "pid.wait_pidfd.lock".
std::string join_path(const std::string &base, const std::string &path) {
    return path.starts_with("[") ? base + path : base + "." + path;
}

}  // namespace

std::optional<std::string> lock_member_path(const btf *btf, int32_t type_id, uint64_t offset) {
    auto path = member_path(btf, type_id, offset, 0);
    if (!path || path->empty()) {
        return std::nullopt;  // not a lock, or the object itself is the lock
    }
    return path->substr(path->front() == '.' ? 1 : 0);
}

std::map<std::string, std::vector<std::string>> read_slab_aliases(const std::string &sysfs_slab) {
    namespace fs = std::filesystem;
    std::map<std::string, std::vector<std::string>> by_target;
    std::error_code ec;
    for (const auto &entry : fs::directory_iterator(sysfs_slab, ec)) {
        std::string name = entry.path().filename();
        fs::path target = entry.is_symlink(ec) ? fs::read_symlink(entry.path(), ec) : entry.path();
        by_target[target.filename()].push_back(name);
    }
    std::map<std::string, std::vector<std::string>> aliases;
    for (auto &[target, names] : by_target) {
        for (const auto &name : names) {
            auto &list = aliases[name];
            list.push_back(name);
            for (const auto &other : names) {
                if (other != name && !other.starts_with(":")) {
                    list.push_back(other);
                }
            }
        }
    }
    return aliases;
}

ClassNamer::ClassNamer(const btf *btf, const Kallsyms *kallsyms,
                       std::map<std::string, std::vector<std::string>> slab_aliases)
    : btf_(btf), kallsyms_(kallsyms), slab_aliases_(std::move(slab_aliases)) {
    if (!btf_) {
        return;
    }
    // Per-CPU variables are the global variables BTF carries, with their
    // offsets in the .data..percpu section.
    int n = static_cast<int>(btf__type_cnt(btf_));
    for (int id = 1; id < n; ++id) {
        const btf_type *t = btf__type_by_id(btf_, id);
        if (!btf_is_datasec(t)) {
            continue;
        }
        const char *sec = btf__name_by_offset(btf_, t->name_off);
        if (!sec || std::string_view(sec) != ".data..percpu") {
            continue;
        }
        const btf_var_secinfo *vs = btf_var_secinfos(t);
        for (int i = 0; i < btf_vlen(t); ++i, ++vs) {
            const btf_type *var = btf__type_by_id(btf_, vs->type);
            percpu_vars_[vs->offset] = {btf__name_by_offset(btf_, var->name_off), var->type};
        }
    }
}

StructIndex::StructIndex(const btf *btf, uint32_t first) {
    uint32_t end = btf__type_cnt(btf);
    for (uint32_t id = std::max(first, 1u); id < end; ++id) {
        const btf_type *t = btf__type_by_id(btf, id);
        if (t && btf_is_struct(t)) {
            const char *name = btf__name_by_offset(btf, t->name_off);
            if (name && *name) {
                ids_.try_emplace(name, static_cast<int32_t>(id));  // the first, as libbpf's
            }
        }
    }
}

int32_t StructIndex::find(const std::string &name) const {
    auto it = ids_.find(name);
    return it == ids_.end() ? 0 : it->second;
}

ModuleBtfs::ModuleBtfs(const btf *base, std::string dir) : base_(base), dir_(std::move(dir)) {}

ModuleBtfs::~ModuleBtfs() {
    for (auto &[name, module_btf] : parsed_) {
        btf__free(module_btf);
    }
}

bool ModuleBtfs::add_new_modules() {
    namespace fs = std::filesystem;
    std::error_code ec;
    size_t before = parsed_.size();
    for (const auto &entry : fs::directory_iterator(dir_, ec)) {
        std::string module = entry.path().filename();
        if (module != "vmlinux" && !parsed_.contains(module)) {
            // libbpf keeps the base and does not change it. Null when the
            // file does not parse: not asked again.
            btf *types = btf__parse_split(entry.path().c_str(), const_cast<btf *>(base_));
            parsed_[module] = types;
            if (types) {
                structs_.try_emplace(module, types, btf__type_cnt(base_));
            }
        }
    }
    return parsed_.size() != before;
}

std::optional<ModuleBtfs::Found> ModuleBtfs::find_struct(const std::string &name) {
    add_new_modules();
    for (const auto &[module, structs] : structs_) {
        // The index holds the module's own types only, not vmlinux's.
        if (int32_t id = structs.find(name); id > 0) {
            return Found{parsed_.at(module), id, module};
        }
    }
    return std::nullopt;
}

void ClassNamer::use_module_btf(const std::string &dir) {
    if (btf_) {
        module_btfs_ = std::make_unique<ModuleBtfs>(btf_, dir);
    }
}

std::optional<std::string> ClassNamer::struct_lock_in(const btf *btf, int32_t id,
                                                      const std::string &struct_name,
                                                      uint64_t offset, uint64_t object_size) {
    int64_t size = btf__resolve_size(btf, id);
    if (object_size && size > static_cast<int64_t>(object_size)) {
        return std::nullopt;  // the struct does not fit this cache's objects
    }
    auto path = lock_member_path(btf, id, offset);
    if (!path) {
        return std::nullopt;
    }
    return join_path(struct_name, *path);
}

std::optional<std::string> ClassNamer::struct_lock(const std::string &struct_name, uint64_t offset,
                                                   uint64_t object_size) const {
    if (!btf_) {
        return std::nullopt;
    }
    auto known = struct_types_.find(struct_name);
    if (known != struct_types_.end() && !known->second.types && module_btfs_ &&
        module_btfs_->add_new_modules()) {
        // A module came: every struct not found yet may be its.
        std::erase_if(struct_types_, [](const auto &entry) { return !entry.second.types; });
        known = struct_types_.end();
    }
    if (known == struct_types_.end()) {
        StructType where;
        if (!vmlinux_structs_) {
            vmlinux_structs_.emplace(btf_, 1);
        }
        int32_t id = vmlinux_structs_->find(struct_name);
        if (id > 0) {
            where = {btf_, id};
        } else if (module_btfs_) {
            // A struct only a module defines (its slab cache made by the module).
            if (auto found = module_btfs_->find_struct(struct_name)) {
                where = {found->types, found->type_id};
            }
        }
        known = struct_types_.emplace(struct_name, where).first;
    }
    if (!known->second.types) {
        return std::nullopt;
    }
    return struct_lock_in(known->second.types, known->second.id, struct_name, offset, object_size);
}

std::string ClassNamer::slab(const std::string &cache, uint64_t offset,
                             uint64_t object_size) const {
    std::vector<std::string> candidates{cache};
    if (auto it = slab_aliases_.find(cache); it != slab_aliases_.end()) {
        candidates = it->second;
    }
    std::set<std::string> names;
    for (const auto &candidate : candidates) {
        // Caches are mostly named after their struct: "kioctx", "pid",
        // "signal_cache" for signal_struct, "files_cache" for files_struct.
        std::vector<std::string> structs{candidate};
        for (std::string_view suffix : {"_cache", "_cachep"}) {
            if (candidate.ends_with(suffix)) {
                std::string base = candidate.substr(0, candidate.size() - suffix.size());
                structs.push_back(base);
                structs.push_back(base + "_struct");
            }
        }
        for (const auto &s : structs) {
            if (auto name = struct_lock(s, offset, object_size)) {
                names.insert(*name);
                break;
            }
        }
    }
    if (names.empty()) {
        return fmt::format("{}+{:#x}", cache, offset);
    }
    // Merged caches can hold several structs with a lock at this offset:
    // name them all, since lockwatch cannot tell which object it was.
    std::string joined;
    for (const auto &n : names) {
        joined += joined.empty() ? n : "|" + n;
    }
    return joined;
}

std::string ClassNamer::percpu(uint64_t offset) const {
    auto it = percpu_vars_.upper_bound(offset);
    if (it != percpu_vars_.begin()) {
        --it;
        const auto &[var_offset, var] = *it;
        int64_t size = btf__resolve_size(btf_, var.second);
        if (size > 0 && offset < var_offset + static_cast<uint64_t>(size)) {
            if (offset == var_offset) {
                bool is_lock = false;
                resolve(btf_, var.second, &is_lock);
                if (is_lock) {
                    return var.first;
                }
            }
            if (auto path = lock_member_path(btf_, var.second, offset - var_offset)) {
                return join_path(var.first, *path);
            }
            return fmt::format("{}+{:#x}", var.first, offset - var_offset);
        }
    }
    // kallsyms lists per-CPU symbols at their section offsets too.
    if (kallsyms_) {
        if (auto sym = kallsyms_->symbolize(offset); sym && sym->size) {
            return sym->offset ? fmt::format("{}+{:#x}", sym->name, sym->offset) : sym->name;
        }
    }
    return fmt::format("percpu+{:#x}", offset);
}

std::string ClassNamer::page(uint64_t offset) const {
    if (auto name = struct_lock("page", offset, 0)) {
        return *name;
    }
    return fmt::format("page+{:#x}", offset);
}

namespace {

std::string with_module(std::string name, const SymbolizedAddress &sym) {
    return sym.module.empty() ? name : fmt::format("{} [{}]", name, sym.module);
}

}  // namespace

std::string ClassNamer::kernel_data(uint64_t address) const {
    auto sym = kallsyms_ ? kallsyms_->symbolize(address) : std::nullopt;
    if (!sym) {
        return "static-lock";
    }
    return with_module(sym->offset ? fmt::format("{}+{:#x}", sym->name, sym->offset) : sym->name,
                       *sym);
}

std::optional<std::string> ClassNamer::module_data(uint64_t address) const {
    auto sym = kallsyms_ ? kallsyms_->symbolize(address) : std::nullopt;
    if (!sym || sym->module.empty()) {
        return std::nullopt;
    }
    return kernel_data(address);
}

std::string ClassNamer::module_data_or_offset(uint64_t address) const {
    if (auto name = module_data(address)) {
        return *name;
    }
    return fmt::format("static-lock+{:#x} [module area]", address - lw_module_area_start(address));
}

std::string ClassNamer::function(uint64_t address) const {
    auto sym = kallsyms_ ? kallsyms_->symbolize(address) : std::nullopt;
    return sym ? with_module(sym->name, *sym) : "unknown";
}

std::string ClassNamer::call_site(uint64_t address) const {
    return "lock@" + function(address);
}

}  // namespace lockwatch
