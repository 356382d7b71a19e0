#include "capture/kallsyms.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>
#include <set>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "lockwatch.h"

namespace lockwatch {

namespace {

bool is_text_type(char type) {
    return type == 'T' || type == 't' || type == 'W' || type == 'w';
}

bool is_pseudo_module(std::string_view module) {
    return module == "bpf" || module.starts_with("__builtin__");
}

constexpr uint64_t kPseudoSymbolMax = 0x1000;

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

// The next field of a line (fields are separated by spaces or tabs), taken
// off `rest`; empty at the line's end. A loop, not find_first_not_of(),
// which searches the set of blanks once per character.
std::string_view next_field(std::string_view &rest) {
    const char *p = rest.data(), *end = p + rest.size();
    while (p < end && is_blank(*p)) {
        ++p;
    }
    const char *start = p;
    while (p < end && !is_blank(*p)) {
        ++p;
    }
    rest = std::string_view(p, static_cast<size_t>(end - p));
    return std::string_view(start, static_cast<size_t>(p - start));
}

std::optional<KernelSymbol> parse_symbol_line(std::string_view line) {
    std::string_view address_text = next_field(line), type_text = next_field(line),
                     name = next_field(line), module = next_field(line);
    uint64_t address = 0;
    auto [end, ec] = std::from_chars(address_text.data(), address_text.data() + address_text.size(),
                                     address, 16);
    if (name.empty() || type_text.size() != 1 || ec != std::errc() ||
        end != address_text.data() + address_text.size()) {
        return std::nullopt;
    }
    if (!module.empty()) {
        if (module.size() < 2 || module.front() != '[' || module.back() != ']') {
            return std::nullopt;
        }
        module = module.substr(1, module.size() - 2);
    }
    return KernelSymbol{address, std::string(name), std::string(module), type_text[0]};
}

}  // namespace

// By hand rather than with a stream per line: /proc/kallsyms has about 120k
// lines, and an istringstream's locale setup for each made a read cost 730 M
// instructions of lockwatch's own (callgrind), seconds under an emulated
// guest, each time an unnamed module address asks for a fresh table.
Kallsyms Kallsyms::parse(std::istream &in) {
    Kallsyms table;
    std::ostringstream whole;
    whole << in.rdbuf();
    std::string text = std::move(whole).str();
    bool any_nonzero = false;
    table.symbols_.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
    for (std::string_view rest = text; !rest.empty();) {
        size_t newline = std::min(rest.find('\n'), rest.size());
        std::string_view line = rest.substr(0, newline);
        rest.remove_prefix(std::min(newline + 1, rest.size()));
        if (line.empty()) {
            continue;
        }
        auto symbol = parse_symbol_line(line);
        if (!symbol) {
            ++table.malformed_lines_;
            continue;
        }
        any_nonzero |= symbol->address != 0;
        table.symbols_.push_back(std::move(*symbol));
    }
    table.addresses_hidden_ = !table.symbols_.empty() && !any_nonzero;
    table.sort_and_index();
    return table;
}

void Kallsyms::sort_and_index() {
    // kallsyms lists the kernel image in address order already; sorting
    // (address, index) pairs and moving each symbol once costs a tenth of
    // sorting the symbols themselves. Stable: equal addresses keep their
    // order.
    auto by_address = [](const KernelSymbol &a, const KernelSymbol &b) {
        return a.address < b.address;
    };
    if (!std::is_sorted(symbols_.begin(), symbols_.end(), by_address)) {
        std::vector<std::pair<uint64_t, size_t>> order(symbols_.size());
        for (size_t i = 0; i < symbols_.size(); ++i) {
            order[i] = {symbols_[i].address, i};
        }
        std::sort(order.begin(), order.end());  // the index breaks ties: stable
        std::vector<KernelSymbol> sorted;
        sorted.reserve(symbols_.size());
        for (const auto &[address, index] : order) {
            sorted.push_back(std::move(symbols_[index]));
        }
        symbols_ = std::move(sorted);
    }
    for (const KernelSymbol &sym : symbols_) {
        if (sym.module.empty() && sym.name == "_stext") {
            text_start_ = sym.address;
        } else if (sym.module.empty() && sym.name == "_end") {
            image_end_ = sym.address;
        }
    }
}

std::map<std::string, ModuleExtent> Kallsyms::parse_modules(std::istream &in) {
    std::map<std::string, ModuleExtent> extents;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string name, refs, deps, state, address_text;
        uint64_t size = 0;
        if (!(fields >> name >> size >> refs >> deps >> state >> address_text) ||
            !address_text.starts_with("0x")) {
            continue;
        }
        uint64_t address = 0;
        const char *first = address_text.data() + 2,
                   *last = address_text.data() + address_text.size();
        auto [end, ec] = std::from_chars(first, last, address, 16);
        if (ec != std::errc() || end != last || address == 0) {
            continue;  // hidden (kptr_restrict) or malformed
        }
        extents[name] = {address, address + size};
    }
    return extents;
}

void Kallsyms::set_module_extents(std::map<std::string, ModuleExtent> extents) {
    modules_ = std::move(extents);
}

bool Kallsyms::in_module_area(uint64_t address) const {
    return lw_in_module_area(address, image_end_);
}

void Kallsyms::merge_modules(const Kallsyms &fresh) {
    // Where each module of the fresh read lies: its symbols and its extent.
    // kallsyms' pseudo-modules ([bpf], [__builtin__kprobes], ...) scatter
    // over the whole area: they are replaced, but their span means nothing.
    std::map<std::string, ModuleExtent> fresh_spans;
    std::set<std::string> fresh_modules;
    for (const KernelSymbol &sym : fresh.symbols_) {
        if (sym.module.empty()) {
            continue;
        }
        fresh_modules.insert(sym.module);
        if (is_pseudo_module(sym.module)) {
            continue;
        }
        auto [it, added] =
            fresh_spans.try_emplace(sym.module, ModuleExtent{sym.address, sym.address + 1});
        it->second.start = std::min(it->second.start, sym.address);
        it->second.end = std::max(it->second.end, sym.address + 1);
    }
    for (const auto &[name, extent] : fresh.modules_) {
        auto [it, added] = fresh_spans.try_emplace(name, extent);
        it->second.start = std::min(it->second.start, extent.start);
        it->second.end = std::max(it->second.end, extent.end);
    }
    auto overlaps_fresh = [&](uint64_t address) {
        return std::any_of(fresh_spans.begin(), fresh_spans.end(), [&](const auto &span) {
            return address >= span.second.start && address < span.second.end;
        });
    };
    std::set<std::string> stale;
    std::erase_if(symbols_, [&](const KernelSymbol &sym) {
        if (sym.module.empty()) {
            return false;
        }
        if (fresh_modules.contains(sym.module) || fresh_spans.contains(sym.module) ||
            overlaps_fresh(sym.address)) {
            stale.insert(sym.module);
            return true;
        }
        return false;
    });
    for (const std::string &name : stale) {
        modules_.erase(name);
    }
    for (const KernelSymbol &sym : fresh.symbols_) {
        if (!sym.module.empty()) {
            symbols_.push_back(sym);
        }
    }
    for (const auto &[name, extent] : fresh.modules_) {
        modules_[name] = extent;
    }
    sort_and_index();
}

Kallsyms Kallsyms::load(const std::string &path, const std::string &modules_path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error(
            fmt::format("cannot read {}: kernel symbols are needed to name "
                        "lock functions and stacks",
                        path));
    }
    Kallsyms table = parse(in);
    if (table.symbols_.empty()) {
        throw std::runtime_error(fmt::format("{} lists no symbols", path));
    }
    if (table.addresses_hidden_) {
        throw std::runtime_error(fmt::format(
            "{} shows only zero addresses (kptr_restrict): run lockwatch as root", path));
    }
    if (std::ifstream modules(modules_path); modules) {
        table.modules_ = parse_modules(modules);
    }
    return table;
}

std::optional<SymbolizedAddress> Kallsyms::symbolize(uint64_t address) const {
    auto after = std::upper_bound(
        symbols_.begin(), symbols_.end(), address,
        [](uint64_t value, const KernelSymbol &sym) { return value < sym.address; });
    if (after == symbols_.begin()) {
        return std::nullopt;
    }
    const KernelSymbol &sym = *std::prev(after);
    // Kernel-image symbols name nothing past the image: its last symbols do
    // not reach into the module area, and the markers the linker puts past
    // _end (__init_scratch_end on Debian's kernel, 4 MiB past it) name only
    // their own address; unchecked, it named BPF trampoline return addresses
    // "__init_scratch_end+0x182b858".
    if (sym.module.empty() && address != sym.address &&
        (in_module_area(address) || (image_end_ && address >= image_end_))) {
        return std::nullopt;
    }
    // A module's core symbols end where its core does: past it lies another
    // module (perhaps one this table has not read yet), not this symbol.
    // Its init code and data (freed after init) lie elsewhere.
    uint64_t limit = std::numeric_limits<uint64_t>::max();
    if (const ModuleExtent *core = core_of(sym)) {
        if (address >= core->end) {
            return std::nullopt;
        }
        limit = core->end;
    } else if (is_pseudo_module(sym.module)) {
        // A BPF trampoline is one page, programs and ftrace trampolines are
        // smaller, and between them lie real modules: a module gone before
        // its records were decoded was seen named "bpf_trampoline_N+0x7075".
        if (address - sym.address >= kPseudoSymbolMax) {
            return std::nullopt;
        }
        limit = sym.address + kPseudoSymbolMax;
    }
    // Several symbols can share an address; the distance to the next distinct
    // address is the best size kallsyms can give.
    auto next = std::find_if(after, symbols_.end(),
                             [&](const KernelSymbol &s) { return s.address > sym.address; });
    uint64_t end = std::min(next == symbols_.end() ? limit : next->address, limit);
    uint64_t size = end == std::numeric_limits<uint64_t>::max() ? 0 : end - sym.address;
    // An address far past the last symbol of a region is in no symbol at all.
    if (size == 0 && address - sym.address > (1u << 20)) {
        return std::nullopt;
    }
    return SymbolizedAddress{sym.name, address - sym.address, size, sym.module};
}

std::string Kallsyms::format(uint64_t address) const {
    auto sym = symbolize(address);
    if (!sym) {
        return "?";
    }
    std::string text = fmt::format("{}+{:#x}/{:#x}", sym->name, sym->offset, sym->size);
    if (!sym->module.empty()) {
        text += fmt::format(" [{}]", sym->module);
    }
    return text;
}

bool Kallsyms::has_text_symbol(std::string_view name) const {
    return std::any_of(symbols_.begin(), symbols_.end(), [&](const KernelSymbol &sym) {
        return is_text_type(sym.type) && sym.name == name;
    });
}

std::vector<std::string> Kallsyms::function_copies(std::string_view name) const {
    std::vector<std::string> names;
    for (const KernelSymbol &sym : symbols_) {
        if (!is_text_type(sym.type) || !sym.module.empty()) {
            continue;
        }
        std::string_view n = sym.name;
        if (n == name || (n.starts_with(name) && n.size() > name.size() && n[name.size()] == '.')) {
            if (std::find(names.begin(), names.end(), sym.name) == names.end()) {
                names.push_back(sym.name);
            }
        }
    }
    return names;
}

std::optional<uint64_t> Kallsyms::address_of(std::string_view name) const {
    for (const KernelSymbol &sym : symbols_) {
        if (sym.name == name) {
            return sym.address;
        }
    }
    return std::nullopt;
}

KallsymsRefresher::KallsymsRefresher(Kallsyms &table, Reader read,
                                     std::chrono::milliseconds min_interval, Clock clock,
                                     ModulesReader read_modules,
                                     std::optional<std::string> modules_before_table)
    : table_(table),
      read_(std::move(read)),
      read_modules_(std::move(read_modules)),
      modules_at_read_(std::move(modules_before_table)),
      min_interval_(min_interval),
      clock_(std::move(clock)) {}

const ModuleExtent *Kallsyms::core_of(const KernelSymbol &sym) const {
    if (sym.module.empty()) {
        return nullptr;
    }
    auto m = modules_.find(sym.module);
    if (m == modules_.end() || sym.address < m->second.start || sym.address >= m->second.end) {
        return nullptr;
    }
    return &m->second;
}

bool Kallsyms::names_exactly(uint64_t address) const {
    auto after = std::upper_bound(
        symbols_.begin(), symbols_.end(), address,
        [](uint64_t value, const KernelSymbol &sym) { return value < sym.address; });
    if (after == symbols_.begin() || !symbolize(address)) {
        return false;
    }
    const KernelSymbol &sym = *std::prev(after);
    return sym.module.empty() || is_pseudo_module(sym.module) || core_of(sym) != nullptr;
}

void KallsymsRefresher::before_naming(uint64_t address) {
    if (!table_.in_module_area(address) || table_.names_exactly(address) ||
        unnamed_after_read_.contains(address)) {
        return;
    }
    std::optional<std::string> modules;
    if (read_modules_) {
        modules = read_modules_();
    }
    bool waiting = next_read_ && clock_() < *next_read_;
    bool module_changed = modules && modules_at_read_ && *modules != *modules_at_read_;
    if (module_changed && !(last_read_failed_ && waiting)) {
        read_table(address, std::move(modules));  // a module came or went: now
        return;
    }
    if (waiting) {
        ++deferred_;
        return;
    }
    read_table(address, std::move(modules));
}

void KallsymsRefresher::read_table(uint64_t address, std::optional<std::string> modules) {
    auto now = clock_();
    bool read = false;
    try {
        table_.merge_modules(read_());
        ++reloads_;
        read = true;
        modules_at_read_ = std::move(modules);
    } catch (const std::runtime_error &) {
        ++failed_;
    }
    last_read_failed_ = !read;
    // Where a read is slow (seconds in an emulated guest), the wait grows
    // with it: reads take a tenth of the time at most.
    auto done = clock_();
    next_read_ =
        done + std::max<std::chrono::steady_clock::duration>(min_interval_, 9 * (done - now));
    if (!read || table_.names_exactly(address)) {
        return;
    }
    if (unnamed_after_read_.size() >= 65536) {
        unnamed_after_read_.clear();  // bounded memory; they may ask once more
    }
    unnamed_after_read_.insert(address);
}

std::optional<std::string> read_proc_modules(const std::string &path) {
    std::ifstream in(path);
    if (!in) {
        return std::nullopt;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return std::move(text).str();
}

}  // namespace lockwatch
