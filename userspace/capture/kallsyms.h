// Kernel symbol table (/proc/kallsyms) for naming code addresses.
//
// Kernel addresses are secrets under KASLR: everything here turns an address
// into "symbol+0xoffset/0xsize" and never hands the address itself back to a
// report.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
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

// A loaded module's core allocation (text and data), from /proc/modules.
struct ModuleExtent {
    uint64_t start = 0;
    uint64_t end = 0;  // exclusive
};

class Kallsyms {
  public:
    // Parses the /proc/kallsyms text format. Malformed lines are skipped and
    // counted (malformed_lines()).
    static Kallsyms parse(std::istream &in);
    // Reads /proc/kallsyms (or `path`). Throws std::runtime_error with one
    // line when it cannot be read or when every address reads as zero
    // (kptr_restrict hides them from unprivileged readers).
    static Kallsyms load(const std::string &path = "/proc/kallsyms",
                         const std::string &modules_path = "/proc/modules");

    // Reads /proc/modules ("name size refs deps state 0xaddress ..."): where
    // each module's core lies, so that an address past a module's end is not
    // named after its last symbol. Lines without an address are skipped.
    static std::map<std::string, ModuleExtent> parse_modules(std::istream &in);
    void set_module_extents(std::map<std::string, ModuleExtent> extents);

    // Takes the module symbols of a fresh read of the table: a module in
    // `fresh` replaces its old symbols (a reloaded module is named at its new
    // address only); a module `fresh` lacks keeps its symbols, to name
    // records about it decoded after it went, unless a module in `fresh` now
    // lies where it was. Kernel image symbols never change and are kept.
    void merge_modules(const Kallsyms &fresh);

    std::optional<SymbolizedAddress> symbolize(uint64_t address) const;
    // "name+0xoff/0xsize [module]", or "?" when the address is in no symbol.
    std::string format(uint64_t address) const;

    bool has_text_symbol(std::string_view name) const;
    // The text symbols a function name stands for: itself, and the copies
    // the compiler made of it (name.constprop.0, name.isra.0, name.part.0).
    std::vector<std::string> function_copies(std::string_view name) const;
    std::optional<uint64_t> address_of(std::string_view name) const;

    // _stext and _end of the kernel image, 0 when the table lacks them.
    uint64_t text_start() const { return text_start_; }
    uint64_t image_end() const { return image_end_; }
    bool in_module_area(uint64_t address) const;
    // Named, and by a symbol whose end is known: the kernel image's, one in
    // a module's core (whose extent /proc/modules gave), or one of kallsyms'
    // pseudo-modules ([bpf], [__builtin__ftrace]), which cover a page at
    // most. A module's init code has no known end.
    bool names_exactly(uint64_t address) const;

    size_t size() const { return symbols_.size(); }
    size_t malformed_lines() const { return malformed_lines_; }
    bool addresses_hidden() const { return addresses_hidden_; }

  private:
    void sort_and_index();
    // The core extent a module symbol lies in, null for the kernel's, for a
    // module /proc/modules did not list, or for its init code.
    const ModuleExtent *core_of(const KernelSymbol &sym) const;

    std::vector<KernelSymbol> symbols_;  // sorted by address
    std::map<std::string, ModuleExtent> modules_;
    uint64_t text_start_ = 0;
    uint64_t image_end_ = 0;
    size_t malformed_lines_ = 0;
    bool addresses_hidden_ = false;
};

// Re-reads the symbol table when an address in the module area has no
// symbol: a module loaded after the table was read. Lazy rather than driven
// by the module:module_load tracepoint: it costs nothing while no module
// loads, needs no record type, and the first record about a new module is
// the first time its symbols are wanted. Where it can read /proc/modules (a
// few lines), it compares that with what it said before the table's last
// read: one that has changed is read for at once, whatever the interval
// below, so that a module's first locks are named after it (a read for a
// BPF trampoline's address just before a module loaded left the module's
// first locks unnamed). An unchanged list still allows a read: BPF
// programs and trampolines come into kallsyms without a module. Bounded two
// ways: after a read, no other for `min_interval` or nine times the read's
// own duration, whichever is longer, unless the module list changed; and an
// address a read could not name does not ask again. One read of
// /proc/kallsyms (about 120k symbols) measured 0.3-0.4 s on a 2-CPU host,
// nearly all of it the kernel producing the text, and seconds in an
// emulated guest: reads take a tenth of the time at most.
class KallsymsRefresher {
  public:
    using Reader = std::function<Kallsyms()>;
    using Clock = std::function<std::chrono::steady_clock::time_point()>;
    // /proc/modules' text, or nullopt when it cannot be read.
    using ModulesReader = std::function<std::optional<std::string>()>;

    // `table` must outlive the refresher. `read` returns a fresh table, or
    // throws std::runtime_error (the failure is counted, the table kept).
    // `read_modules`, when given, with `modules_before_table`: its text read
    // just before `table` was (so that a module loaded during that read
    // counts as a change).
    KallsymsRefresher(Kallsyms &table, Reader read,
                      std::chrono::milliseconds min_interval = std::chrono::seconds(1),
                      Clock clock = std::chrono::steady_clock::now, ModulesReader read_modules = {},
                      std::optional<std::string> modules_before_table = std::nullopt);

    // Called before `address` is named: re-reads when it lies in the module
    // area, is not named exactly, and has not been looked for before.
    void before_naming(uint64_t address);

    uint64_t reloads() const { return reloads_; }
    uint64_t failed_reloads() const { return failed_; }
    // Unnamed module addresses that found a read too recent to ask again.
    uint64_t deferred() const { return deferred_; }

  private:
    void read_table(uint64_t address, std::optional<std::string> modules);

    Kallsyms &table_;
    Reader read_;
    ModulesReader read_modules_;
    std::optional<std::string> modules_at_read_;
    std::chrono::milliseconds min_interval_;
    Clock clock_;
    std::optional<std::chrono::steady_clock::time_point> next_read_;
    std::unordered_set<uint64_t> unnamed_after_read_;
    uint64_t reloads_ = 0;
    uint64_t failed_ = 0;
    uint64_t deferred_ = 0;
    bool last_read_failed_ = false;  // then a changed module list waits too
};

// /proc/modules' text for KallsymsRefresher, nullopt when it cannot be read.
std::optional<std::string> read_proc_modules(const std::string &path = "/proc/modules");

}  // namespace lockwatch
