// Kernel symbol table (/proc/kallsyms) for naming code addresses.
//
// Kernel addresses are secrets under KASLR: everything here turns an address
// into "symbol+0xoffset/0xsize" and never hands the address itself back to a
// report.
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lockwatch {

struct KernelSymbol {
    uint64_t address;
    std::string name;
    std::string module;  // empty for the kernel image
    char type;           // nm-style type letter: T, t, D, ...
};

struct SymbolizedAddress {
    std::string name;
    uint64_t offset;
    uint64_t size;  // distance to the next symbol; 0 when unknown
    std::string module;
};

class Kallsyms {
  public:
    // Parses the /proc/kallsyms text format. Malformed lines are skipped and
    // counted (malformed_lines()).
    static Kallsyms parse(std::istream &in);
    // Reads /proc/kallsyms (or `path`). Throws std::runtime_error with one
    // line when it cannot be read or when every address reads as zero
    // (kptr_restrict hides them from unprivileged readers).
    static Kallsyms load(const std::string &path = "/proc/kallsyms");

    std::optional<SymbolizedAddress> symbolize(uint64_t address) const;
    // "name+0xoff/0xsize [module]", or "?" when the address is in no symbol.
    std::string format(uint64_t address) const;

    bool has_text_symbol(std::string_view name) const;
    // The text symbols a function name stands for: itself, and the copies
    // the compiler made of it (name.constprop.0, name.isra.0, name.part.0).
    std::vector<std::string> function_copies(std::string_view name) const;
    std::optional<uint64_t> address_of(std::string_view name) const;

    size_t size() const { return symbols_.size(); }
    size_t malformed_lines() const { return malformed_lines_; }
    bool addresses_hidden() const { return addresses_hidden_; }

  private:
    std::vector<KernelSymbol> symbols_;  // sorted by address
    size_t malformed_lines_ = 0;
    bool addresses_hidden_ = false;
};

}  // namespace lockwatch
