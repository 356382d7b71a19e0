#include "capture/kernel_btf.h"

#include <bpf/btf.h>

#include <cstdint>
#include <cstring>

namespace lockwatch {

bool has_member_path(const btf &kernel_btf, int type_id, std::span<const char *const> names) {
    if (names.empty()) {
        return true;
    }
    const btf_type *t = btf__type_by_id(&kernel_btf, btf__resolve_type(&kernel_btf, type_id));
    if (!t || !(btf_is_struct(t) || btf_is_union(t))) {
        return false;
    }
    const btf_member *m = btf_members(t);
    for (uint16_t i = 0; i < btf_vlen(t); ++i, ++m) {
        const char *name = btf__name_by_offset(&kernel_btf, m->name_off);
        if (name && !*name && has_member_path(kernel_btf, m->type, names)) {
            return true;
        }
        if (name && std::strcmp(name, names.front()) == 0) {
            return has_member_path(kernel_btf, m->type, names.subspan(1));
        }
    }
    return false;
}

bool counts_kprobe_skips(const btf &kernel_btf) {
    static constexpr const char *kPath[] = {"perf_event", "kprobe", "missed"};
    int info = btf__find_by_name_kind(&kernel_btf, "bpf_link_info", BTF_KIND_STRUCT);
    return info > 0 && has_member_path(kernel_btf, info, kPath);
}

}  // namespace lockwatch
