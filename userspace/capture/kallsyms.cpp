#include "capture/kallsyms.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace lockwatch {

namespace {

bool is_text_type(char type) {
    return type == 'T' || type == 't' || type == 'W' || type == 'w';
}

}  // namespace

Kallsyms Kallsyms::parse(std::istream &in) {
    Kallsyms table;
    std::string line;
    bool any_nonzero = false;
    while (std::getline(in, line)) {
        if (line.empty()) {
            continue;
        }
        std::istringstream fields(line);
        std::string address_text, type_text, name, module;
        if (!(fields >> address_text >> type_text >> name) || type_text.size() != 1) {
            ++table.malformed_lines_;
            continue;
        }
        uint64_t address = 0;
        auto [end, ec] = std::from_chars(address_text.data(),
                                         address_text.data() + address_text.size(), address, 16);
        if (ec != std::errc() || end != address_text.data() + address_text.size()) {
            ++table.malformed_lines_;
            continue;
        }
        if (fields >> module) {
            if (module.size() < 2 || module.front() != '[' || module.back() != ']') {
                ++table.malformed_lines_;
                continue;
            }
            module = module.substr(1, module.size() - 2);
        }
        any_nonzero |= address != 0;
        table.symbols_.push_back({address, std::move(name), std::move(module), type_text[0]});
    }
    table.addresses_hidden_ = !table.symbols_.empty() && !any_nonzero;
    std::stable_sort(
        table.symbols_.begin(), table.symbols_.end(),
        [](const KernelSymbol &a, const KernelSymbol &b) { return a.address < b.address; });
    return table;
}

Kallsyms Kallsyms::load(const std::string &path) {
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
    // Several symbols can share an address; the distance to the next distinct
    // address is the best size kallsyms can give.
    auto next = std::find_if(after, symbols_.end(),
                             [&](const KernelSymbol &s) { return s.address > sym.address; });
    uint64_t size = next == symbols_.end() ? 0 : next->address - sym.address;
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

}  // namespace lockwatch
