// hook-floor: attaches the empty programs of hook_floor.bpf.c to the hooks
// lockwatch's backend would use on this kernel, and holds them until SIGINT
// or SIGTERM. bench/vm/cost.sh runs its workload under it to measure what
// the hooks alone cost.
//
// Usage: hook-floor [--backend auto|fentry|kprobe] [--held-stack] [--held-sites]
//                   [--ready-file FILE]
//   --held-stack: the programs keep per-CPU held-lock stacks (push on an
//   acquire, pop on a release) instead of returning at once: the least a
//   lockdep-like tracker does.
//   --held-sites: held-lock stacks that also keep each lock's call site,
//   read as lockwatch reads it: the least a tracker does that prints
//   lockdep's "at:" for the locks held.
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "capture/backends.h"
#include "capture/kallsyms.h"
#include "capture/lock_functions.h"
#include "hook_floor.skel.h"

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

struct Options {
    lockwatch::Backend backend = lockwatch::Backend::Auto;
    std::string ready_file;
    bool held_stack = false;
    bool held_sites = false;
};

bool parse(int argc, char **argv, Options &options) {
    for (int i = 1; i < argc; i += 2) {
        std::string arg = argv[i];
        if (arg == "--held-stack" || arg == "--held-sites") {
            options.held_stack = true;
            options.held_sites = options.held_sites || arg == "--held-sites";
            --i;
            continue;
        }
        if (i + 1 >= argc || (arg != "--backend" && arg != "--ready-file")) {
            return false;
        }
        if (arg == "--ready-file") {
            options.ready_file = argv[i + 1];
            continue;
        }
        auto backend = lockwatch::backend_named(argv[i + 1]);
        if (!backend || *backend == lockwatch::Backend::Lockdep) {
            return false;
        }
        options.backend = *backend;
    }
    return true;
}

// The hooks lockwatch would plan on this kernel, with the floor's programs
// of the same names switched on.
size_t plan(hook_floor_bpf *skel, lockwatch::Backend backend) {
    std::unique_ptr<btf, void (*)(btf *)> vmlinux(btf__load_vmlinux_btf(), btf__free);
    if (!vmlinux) {
        throw std::runtime_error("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux)");
    }
    auto kallsyms = lockwatch::Kallsyms::load();
    auto availability = lockwatch::discover_lock_functions({
        .has_btf_function =
            [&](std::string_view name) {
                return btf__find_by_name_kind(vmlinux.get(), std::string(name).c_str(),
                                              BTF_KIND_FUNC) > 0;
            },
        .has_text_symbol = [&](std::string_view name) { return kallsyms.has_text_symbol(name); },
    });
    bpf_program *prog;
    bpf_object__for_each_program(prog, skel->obj) {
        bpf_program__set_autoload(prog, false);
    }
    bpf_program__set_autoload(skel->progs.floor_kmalloc, true);
    size_t planned = 0;
    for (const auto &hook : lockwatch::plan_lock_hooks(backend, availability)) {
        if (hook.state != lockwatch::HookState::Planned) {
            continue;
        }
        for (const std::string &name : lockwatch::hook_program_names(hook)) {
            bpf_program__set_autoload(bpf_object__find_program_by_name(skel->obj, name.c_str()),
                                      true);
        }
        ++planned;
    }
    return planned;
}

}  // namespace

int main(int argc, char **argv) {
    Options options;
    if (!parse(argc, argv, options)) {
        fmt::print(stderr,
                   "usage: hook-floor [--backend auto|fentry|kprobe] [--held-stack] "
                   "[--held-sites] [--ready-file FILE]\n");
        return 2;
    }
    hook_floor_bpf *skel = hook_floor_bpf__open();
    if (!skel) {
        fmt::print(stderr, "hook-floor: cannot open the BPF object: {}\n", std::strerror(errno));
        return 3;
    }
    try {
        size_t planned = plan(skel, options.backend);
        skel->rodata->track_held = options.held_stack;
        skel->rodata->track_sites = options.held_sites;
        int err = hook_floor_bpf__load(skel);
        if (!err) {
            err = hook_floor_bpf__attach(skel);
        }
        if (err) {
            throw std::runtime_error(fmt::format("load or attach: {}", std::strerror(-err)));
        }
        fmt::print("hook-floor: {} programs on {} lock functions and the kmalloc tracepoint\n",
                   options.held_sites   ? "held-stack-and-site"
                   : options.held_stack ? "held-stack"
                                        : "empty",
                   planned);
    } catch (const std::exception &e) {
        fmt::print(stderr, "hook-floor: {}\n", e.what());
        hook_floor_bpf__destroy(skel);
        return 3;
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    if (!options.ready_file.empty()) {
        std::ofstream(options.ready_file) << "ready\n";
    }
    while (!g_stop) {
        pause();
    }
    hook_floor_bpf__destroy(skel);
    return 0;
}
