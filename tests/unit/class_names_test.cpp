#include "live/class_names.h"

#include <bpf/btf.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "capture/kallsyms.h"

namespace lockwatch {
namespace {

// A miniature kernel BTF: spinlock_t inside wait_queue_head inside pid, an
// array of timer_base, and a per-CPU section with a runqueue.
class ClassNamesTest : public ::testing::Test {
  protected:
    void SetUp() override {
        btf_ = btf__new_empty();
        ASSERT_NE(btf_, nullptr);
        int int_id = btf__add_int(btf_, "int", 4, BTF_INT_SIGNED);
        int raw = btf__add_struct(btf_, "raw_spinlock", 4);
        btf__add_field(btf_, "raw_lock", int_id, 0, 0);
        int spin = btf__add_struct(btf_, "spinlock", 4);
        btf__add_field(btf_, "rlock", raw, 0, 0);
        int spinlock_t = btf__add_typedef(btf_, "spinlock_t", spin);
        int wq = btf__add_struct(btf_, "wait_queue_head", 12);
        btf__add_field(btf_, "lock", spinlock_t, 0, 0);
        btf__add_field(btf_, "head", int_id, 32, 0);
        btf__add_field(btf_, "tail", int_id, 64, 0);
        pid_ = btf__add_struct(btf_, "pid", 24);
        btf__add_field(btf_, "count", int_id, 0, 0);
        btf__add_field(btf_, "level", int_id, 32, 0);
        btf__add_field(btf_, "lock", spinlock_t, 64, 0);
        btf__add_field(btf_, "wait_pidfd", wq, 96, 0);
        int base = btf__add_struct(btf_, "timer_base", 8);
        btf__add_field(btf_, "running", int_id, 0, 0);
        btf__add_field(btf_, "lock", spinlock_t, 32, 0);
        int arr = btf__add_array(btf_, int_id, base, 2);
        int rq = btf__add_struct(btf_, "rq", 8);
        btf__add_field(btf_, "nr_running", int_id, 0, 0);
        btf__add_field(btf_, "__lock", raw, 32, 0);
        int rq_var = btf__add_var(btf_, "runqueues", BTF_VAR_GLOBAL_ALLOCATED, rq);
        int bases_var = btf__add_var(btf_, "timer_bases", BTF_VAR_GLOBAL_ALLOCATED, arr);
        btf__add_datasec(btf_, ".data..percpu", 0x200);
        btf__add_datasec_var_info(btf_, rq_var, 0x100, 8);
        btf__add_datasec_var_info(btf_, bases_var, 0x180, 16);
        array_ = arr;
    }
    void TearDown() override { btf__free(btf_); }

    btf *btf_ = nullptr;
    int pid_ = 0;
    int array_ = 0;
};

// A struct only a module defines, in the module's split BTF on top of the
// kernel's, as /sys/kernel/btf/<module> holds it.
TEST_F(ClassNamesTest, ModuleStructsComeFromTheModulesSplitBtf) {
    namespace fs = std::filesystem;
    btf *split = btf__new_empty_split(btf_);
    ASSERT_NE(split, nullptr);
    int32_t int_id = btf__find_by_name_kind(btf_, "int", BTF_KIND_INT);
    int32_t spinlock_t = btf__find_by_name_kind(btf_, "spinlock_t", BTF_KIND_TYPEDEF);
    int obj = btf__add_struct(split, "scen_obj", 16);
    btf__add_field(split, "refs", int_id, 0, 0);
    btf__add_field(split, "guard", spinlock_t, 64, 0);
    ASSERT_GT(obj, 0);
    uint32_t size = 0;
    const void *raw = btf__raw_data(split, &size);
    ASSERT_NE(raw, nullptr);
    fs::path dir = fs::temp_directory_path() / fmt::format("lockwatch-btf-{}", getpid());
    fs::create_directories(dir);
    std::ofstream(dir / "lockwatch_scenarios", std::ios::binary)
        .write(static_cast<const char *>(raw), size);
    std::ofstream(dir / "broken") << "not btf";
    btf__free(split);

    ClassNamer namer(btf_, nullptr, {});
    EXPECT_EQ(namer.slab("scen_obj", 8, 16), "scen_obj+0x8") << "vmlinux alone does not know it";
    namer.use_module_btf(dir.string());
    EXPECT_EQ(namer.slab("scen_obj", 8, 16), "scen_obj.guard");
    EXPECT_EQ(namer.slab("pid", 8, 24), "pid.lock") << "vmlinux's structs come first";
    EXPECT_EQ(namer.slab("no_such_struct", 8, 16), "no_such_struct+0x8");
    fs::remove_all(dir);
}

TEST_F(ClassNamesTest, MemberPathStopsAtTheLockType) {
    EXPECT_EQ(lock_member_path(btf_, pid_, 12), "wait_pidfd.lock");
    EXPECT_EQ(lock_member_path(btf_, pid_, 8), "lock");
    EXPECT_EQ(lock_member_path(btf_, pid_, 4), std::nullopt) << "an int is not a lock";
    EXPECT_EQ(lock_member_path(btf_, pid_, 16), std::nullopt) << "wait_pidfd.head is not a lock";
    EXPECT_EQ(lock_member_path(btf_, array_, 12), "[1].lock");
}

TEST_F(ClassNamesTest, SlabNamesComeFromTheCacheOrItsMergedAliases) {
    ClassNamer namer(btf_, nullptr, {{"anon_vma_chain", {"anon_vma_chain", "pid"}}});
    EXPECT_EQ(namer.slab("pid", 12, 24), "pid.wait_pidfd.lock");
    EXPECT_EQ(namer.slab("anon_vma_chain", 12, 24), "pid.wait_pidfd.lock");
    EXPECT_EQ(namer.slab("kmalloc-64", 12, 64), "kmalloc-64+0xc");
    // The struct must fit the cache's objects: a smaller object cannot be a pid.
    EXPECT_EQ(namer.slab("pid", 12, 16), "pid+0xc");
}

TEST_F(ClassNamesTest, PerCpuNamesUseTheSectionVariables) {
    ClassNamer namer(btf_, nullptr, {});
    EXPECT_EQ(namer.percpu(0x104), "runqueues.__lock");
    EXPECT_EQ(namer.percpu(0x18c), "timer_bases[1].lock");
    EXPECT_EQ(namer.percpu(0x100), "runqueues+0x0");
    EXPECT_EQ(namer.percpu(0x1f0), "percpu+0x1f0");
}

TEST(ClassNames, StaticAndCallSiteNamesComeFromKallsyms) {
    std::istringstream in(
        "ffffffff82000000 D tasklist_lock\n"
        "ffffffff82000040 D rcu_state\n"
        "ffffffff82001000 D other\n"
        "ffffffff81000000 T do_wait_for_common\n"
        "ffffffff81000100 T next_fn\n");
    Kallsyms k = Kallsyms::parse(in);
    ClassNamer namer(nullptr, &k, {});
    EXPECT_EQ(namer.kernel_data(0xffffffff82000000), "tasklist_lock");
    EXPECT_EQ(namer.kernel_data(0xffffffff82000050), "rcu_state+0x10");
    EXPECT_EQ(namer.call_site(0xffffffff81000020), "lock@do_wait_for_common");
}

TEST(ClassNames, ModuleStaticsNameTheirModule) {
    std::istringstream in(
        "ffffffff81000000 T _stext\n"
        "ffffffff82000000 B _end\n"
        "ffffffffc0200000 t circ_thread\t[lockwatch_scenarios]\n"
        "ffffffffc0202000 d circ_a\t[lockwatch_scenarios]\n"
        "ffffffffc0202040 d circ_table\t[lockwatch_scenarios]\n");
    Kallsyms k = Kallsyms::parse(in);
    ClassNamer namer(nullptr, &k, {});
    EXPECT_EQ(namer.kernel_data(0xffffffffc0202000), "circ_a [lockwatch_scenarios]");
    EXPECT_EQ(namer.module_data(0xffffffffc0202050), "circ_table+0x10 [lockwatch_scenarios]");
    EXPECT_EQ(namer.call_site(0xffffffffc0200008), "lock@circ_thread [lockwatch_scenarios]");
    // The image's symbols do not name module memory.
    EXPECT_FALSE(namer.module_data(0xffffffff81000100).has_value());
    EXPECT_EQ(namer.module_data_or_offset(0xffffffffc0f00010),
              "static-lock+0xf00010 [module area]");
}

TEST(ClassNames, SlabAliasesFollowSysfsSymlinks) {
    namespace fs = std::filesystem;
    fs::path dir = fs::temp_directory_path() / ("lockwatch-slab-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / ":A-0000128");
    fs::create_directories(dir / "kioctx");
    fs::create_directory_symlink(":A-0000128", dir / "pid");
    fs::create_directory_symlink(":A-0000128", dir / "anon_vma_chain");
    auto aliases = read_slab_aliases(dir);
    fs::remove_all(dir);
    ASSERT_EQ(aliases.count("pid"), 1u);
    EXPECT_EQ(aliases["pid"].front(), "pid");
    EXPECT_NE(std::find(aliases["pid"].begin(), aliases["pid"].end(), "anon_vma_chain"),
              aliases["pid"].end());
    EXPECT_EQ(aliases["kioctx"], std::vector<std::string>{"kioctx"});
}

}  // namespace
}  // namespace lockwatch
