#include "debuginfo/kernel_debuginfo.h"

#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

namespace lockwatch {

namespace {

constexpr uint64_t kAmbiguous = ~0ULL;  // a static function name more than one file defines

std::string to_hex(const unsigned char *bytes, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; i++) {
        out += fmt::format("{:02x}", bytes[i]);
    }
    return out;
}

std::optional<uint64_t> udata_attr(Dwarf_Die *die, unsigned int name) {
    Dwarf_Attribute attr;
    Dwarf_Word value = 0;
    if (!dwarf_attr(die, name, &attr) || dwarf_formudata(&attr, &value) != 0) {
        return std::nullopt;
    }
    return value;
}

const char *inlined_name(Dwarf_Die *die) {
    Dwarf_Attribute attr;
    if (dwarf_attr_integrate(die, DW_AT_name, &attr)) {
        return dwarf_formstring(&attr);
    }
    return nullptr;
}

}  // namespace

std::unique_ptr<KernelDebugInfo> KernelDebugInfo::open(const std::string &vmlinux_path) {
    static char *debuginfo_path = nullptr;
    static const Dwfl_Callbacks callbacks = {
        .find_elf = nullptr,
        .find_debuginfo = dwfl_standard_find_debuginfo,
        .section_address = dwfl_offline_section_address,
        .debuginfo_path = &debuginfo_path,
    };
    if (access(vmlinux_path.c_str(), R_OK) != 0) {
        throw std::runtime_error(
            fmt::format("cannot read vmlinux {}: {}", vmlinux_path, std::strerror(errno)));
    }
    std::unique_ptr<KernelDebugInfo> info(new KernelDebugInfo());
    info->dwfl_ = dwfl_begin(&callbacks);
    if (!info->dwfl_) {
        throw std::runtime_error(fmt::format("libdw: {}", dwfl_errmsg(-1)));
    }
    info->module_ = dwfl_report_offline(info->dwfl_, "vmlinux", vmlinux_path.c_str(), -1);
    dwfl_report_end(info->dwfl_, nullptr, nullptr);
    if (!info->module_) {
        throw std::runtime_error(
            fmt::format("{} is not a readable ELF file: {}", vmlinux_path, dwfl_errmsg(-1)));
    }
    Dwarf_Addr bias = 0;
    if (!dwfl_module_getdwarf(info->module_, &bias)) {
        throw std::runtime_error(fmt::format(
            "{} has no DWARF debug info (build the kernel with CONFIG_DEBUG_INFO)", vmlinux_path));
    }

    const unsigned char *id = nullptr;
    GElf_Addr id_vaddr = 0;
    int id_len = dwfl_module_build_id(info->module_, &id, &id_vaddr);
    if (id_len > 0) {
        info->build_id_ = to_hex(id, static_cast<size_t>(id_len));
    }

    int symbols = dwfl_module_getsymtab(info->module_);
    for (int i = 1; i < symbols; i++) {
        GElf_Sym sym;
        GElf_Addr addr = 0;
        const char *name =
            dwfl_module_getsym_info(info->module_, i, &sym, &addr, nullptr, nullptr, nullptr);
        if (!name || GELF_ST_TYPE(sym.st_info) != STT_FUNC) {
            continue;
        }
        auto [it, inserted] = info->functions_.emplace(name, addr);
        if (!inserted && it->second != addr) {
            it->second = kAmbiguous;
        }
    }
    if (info->functions_.empty()) {
        throw std::runtime_error(fmt::format("{} has no function symbols", vmlinux_path));
    }

    // Paths in the line table are absolute in the tree the kernel was built
    // in; reports name them from the tree's root, as the kernel does.
    if (auto it = info->functions_.find("start_kernel");
        it != info->functions_.end() && it->second != kAmbiguous) {
        if (Dwfl_Line *line = dwfl_module_getsrc(info->module_, it->second)) {
            const char *file = dwfl_lineinfo(line, nullptr, nullptr, nullptr, nullptr, nullptr);
            std::string_view path = file ? file : "";
            constexpr std::string_view kMain = "init/main.c";
            if (path.ends_with(kMain)) {
                info->source_root_ = std::string(path.substr(0, path.size() - kMain.size()));
            }
        }
    }
    return info;
}

KernelDebugInfo::~KernelDebugInfo() {
    if (dwfl_) {
        dwfl_end(dwfl_);
    }
}

std::string KernelDebugInfo::source_path(const char *path) const {
    std::string_view p = path ? path : "";
    if (!source_root_.empty() && p.starts_with(source_root_)) {
        p.remove_prefix(source_root_.size());
    }
    while (p.starts_with("./")) {
        p.remove_prefix(2);
    }
    if (p.starts_with("/")) {
        // Outside the tree (a generated file, a header of the build host):
        // keep the last two components, never the build machine's path.
        size_t last = p.rfind('/');
        size_t before = last == 0 ? std::string_view::npos : p.rfind('/', last - 1);
        p.remove_prefix(before == std::string_view::npos ? last + 1 : before + 1);
    }
    return std::string(p);
}

void KernelDebugInfo::append_frame(const engine::Frame &frame, engine::Stack *out) const {
    auto it = functions_.find(frame.symbol);
    // Module code and unnamed frames are not in vmlinux.
    if (frame.inlined || !frame.file.empty() || !frame.module.empty() || frame.symbol.empty() ||
        it == functions_.end() || it->second == kAmbiguous) {
        out->push_back(frame);
        return;
    }
    // A return address points after the call: look up the call itself.
    uint64_t pc = it->second + frame.offset - (frame.offset > 0 ? 1 : 0);
    Dwarf_Addr bias = 0;
    Dwarf_Die *cu = dwfl_module_addrdie(module_, pc, &bias);
    Dwfl_Line *line = dwfl_module_getsrc(module_, pc);
    if (!cu || !line) {
        out->push_back(frame);
        return;
    }
    int lineno = 0;
    const char *file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr);
    std::string cur_file = source_path(file);
    uint32_t cur_line = lineno > 0 ? static_cast<uint32_t>(lineno) : 0;

    // Innermost scope first: each inlined subroutine is a frame at the
    // current place, and its call site is the place of the frame around it.
    // dwarf_getscopes() continues past an inlined instance into its abstract
    // definition; the physical nesting comes from the innermost scope's DIE.
    Dwarf_Die *scopes = nullptr;
    int n = dwarf_getscopes(cu, pc - bias, &scopes);
    if (n > 0) {
        Dwarf_Die innermost = scopes[0];
        std::free(scopes);
        scopes = nullptr;
        n = dwarf_getscopes_die(&innermost, &scopes);
    }
    Dwarf_Files *files = nullptr;
    size_t nfiles = 0;
    bool have_files = dwarf_getsrcfiles(cu, &files, &nfiles) == 0;
    for (int i = 0; i < n; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag == DW_TAG_subprogram) {
            break;
        }
        if (tag != DW_TAG_inlined_subroutine) {
            continue;
        }
        engine::Frame inl;
        const char *name = inlined_name(&scopes[i]);
        inl.symbol = name ? name : "??";
        inl.file = cur_file;
        inl.line = cur_line;
        inl.inlined = true;
        out->push_back(std::move(inl));
        auto call_file = udata_attr(&scopes[i], DW_AT_call_file);
        auto call_line = udata_attr(&scopes[i], DW_AT_call_line);
        if (call_file && have_files && *call_file < nfiles) {
            cur_file = source_path(dwarf_filesrc(files, *call_file, nullptr, nullptr));
        }
        cur_line = call_line ? static_cast<uint32_t>(*call_line) : 0;
    }
    std::free(scopes);

    engine::Frame real = frame;
    real.file = cur_file;
    real.line = cur_line;
    out->push_back(std::move(real));
}

engine::Stack KernelDebugInfo::annotate(const engine::Stack &stack) const {
    engine::Stack out;
    out.reserve(stack.size());
    for (const engine::Frame &frame : stack) {
        append_frame(frame, &out);
    }
    return out;
}

void annotate_stacks(engine::Finding &finding, const KernelDebugInfo &debuginfo) {
    engine::for_each_stack(finding, [&](engine::StackRef &stack) {
        if (stack) {
            stack = engine::StackRef(debuginfo.annotate(*stack));
        }
    });
}

std::string running_kernel_build_id(const std::string &notes_path) {
    std::ifstream in(notes_path, std::ios::binary);
    std::vector<unsigned char> notes((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
    auto align4 = [](size_t n) { return (n + 3) & ~size_t{3}; };
    size_t pos = 0;
    while (pos + sizeof(Elf64_Nhdr) <= notes.size()) {
        Elf64_Nhdr hdr;
        std::memcpy(&hdr, notes.data() + pos, sizeof(hdr));
        size_t name_at = pos + sizeof(hdr);
        size_t desc_at = name_at + align4(hdr.n_namesz);
        size_t next = desc_at + align4(hdr.n_descsz);
        if (next > notes.size() || next <= pos) {
            break;
        }
        if (hdr.n_type == NT_GNU_BUILD_ID && hdr.n_namesz == 4 &&
            std::memcmp(notes.data() + name_at, "GNU", 4) == 0) {
            return to_hex(notes.data() + desc_at, hdr.n_descsz);
        }
        pos = next;
    }
    return "";
}

}  // namespace lockwatch
