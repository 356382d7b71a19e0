#include "live/fact_decoder.h"

#include <chrono>
#include <cstring>
#include <sstream>

#include <gtest/gtest.h>

#include "capture/kallsyms.h"
#include "engine/engine.h"
#include "live/run_summary.h"
#include "output/text.h"

namespace lockwatch {
namespace {

const char *kSymbols =
    "ffffffff81000000 T _raw_spin_lock\n"
    "ffffffff81000040 T io_submit_one\n"
    "ffffffff81001000 T __x64_sys_io_submit\n"
    "ffffffff81002000 T end_of_text\n"
    "ffffffffa0000000 t bpf_trampoline_6442\n"
    "ffffffffa0001000 t bpf_prog_abc_kprobe\n";

class FactDecoderTest : public ::testing::Test {
  protected:
    FactDecoderTest()
        : kallsyms_(parse()),
          namer_(nullptr, &kallsyms_, {}),
          decoder_(namer_, kallsyms_, [this](int32_t id) {
              ++stack_reads_;
              return id == 7 ? std::vector<uint64_t>{0xffffffffa0001010, 0xffffffffa0000020,
                                                     0xffffffff81000005, 0xffffffff81000100,
                                                     0xffffffff81001010}
                             : std::vector<uint64_t>{};
          }) {}

    static Kallsyms parse() {
        std::istringstream in(kSymbols);
        return Kallsyms::parse(in);
    }

    Kallsyms kallsyms_;
    ClassNamer namer_;
    FactDecoder decoder_;
    int stack_reads_ = 0;
};

// The engine event a decoded record holds (throws if it holds none).
template <typename T>
const T &event(const DecodedRecord &decoded) {
    return std::get<T>(std::get<engine::Event>(decoded));
}

lw_record record(uint32_t type) {
    lw_record r{};
    r.type = type;
    r.cpu = 1;
    r.pid = 42;
    std::strcpy(r.comm, "repro");
    r.stack_id = 7;
    return r;
}

TEST_F(FactDecoderTest, UsageRecordBecomesUsageFactWithItsStackSentOnce) {
    lw_record r = record(LW_RECORD_USAGE);
    r.class_id = 99;
    r.usage_bit = LW_ENABLED_SOFTIRQ;
    r.irq_flags = LW_IRQ_STATE_INFERRED;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 2u);
    const auto &stack = event<engine::StackFact>(out[0]);
    EXPECT_EQ(stack.id, 8u) << "engine stack ids are the BPF ids plus one (0 is no stack)";
    ASSERT_EQ(stack.frames.size(), 3u) << "BPF program and trampoline frames are dropped";
    EXPECT_EQ(stack.frames[0].symbol, "_raw_spin_lock");
    EXPECT_EQ(stack.frames[1].symbol, "io_submit_one");
    EXPECT_EQ(stack.frames[1].offset, 0xc0u);
    const auto &usage = event<engine::UsageFact>(out[1]);
    EXPECT_EQ(usage.cls, 99u);
    EXPECT_EQ(usage.bit, engine::UsageBit::EnabledSoftirq);
    EXPECT_EQ(usage.stack, 8u);
    EXPECT_TRUE(usage.hardirq_state_inferred);
    EXPECT_EQ(usage.task.pid, 42);
    EXPECT_EQ(usage.task.comm_view(), "repro");

    out.clear();
    decoder_.decode(r, out);
    EXPECT_EQ(out.size(), 1u) << "a stack is sent to the engine once";
    EXPECT_EQ(stack_reads_, 1);
}

TEST_F(FactDecoderTest, EdgeRecordCarriesBothClassesAndReadness) {
    lw_record r = record(LW_RECORD_EDGE);
    r.class_id = 2;
    r.prev_class_id = 1;
    r.context = LW_CTX_SOFTIRQ;
    r.acquire_flags = LW_ACQ_READ;
    r.prev_acquire_flags = 0;
    r.irq_flags = LW_IRQ_SOFTIRQS_ENABLED;
    r.stack_id = -1;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u);
    const auto &edge = event<engine::EdgeFact>(out[0]);
    EXPECT_EQ(edge.prev, 1u);
    EXPECT_EQ(edge.next, 2u);
    EXPECT_EQ(edge.context, engine::Context::Softirq);
    EXPECT_EQ(edge.prev_read, 0);
    EXPECT_EQ(edge.next_read, 2) << "a reader in interrupt context is read-recursive";
    EXPECT_EQ(edge.next_stack, engine::kNoStack);
    EXPECT_FALSE(edge.hardirqs_enabled);
    EXPECT_TRUE(edge.softirqs_enabled) << "lockdep's SE1 in the report's task line";
}

// The lockdep backend sends lockdep's own read level; it wins over the rule.
TEST_F(FactDecoderTest, EdgeTakesTheReadLevelLockdepSaid) {
    lw_record r = record(LW_RECORD_EDGE);
    r.class_id = 2;
    r.prev_class_id = 1;
    r.context = LW_CTX_TASK;
    r.acquire_flags = LW_ACQ_READ | LW_ACQ_RECURSIVE_READ;
    r.prev_acquire_flags = LW_ACQ_READ;
    r.stack_id = -1;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u);
    const auto &edge = event<engine::EdgeFact>(out[0]);
    EXPECT_EQ(edge.prev_read, 1) << "a reader in task context is not read-recursive";
    EXPECT_EQ(edge.next_read, 2) << "lockdep said read == 2";
}

// The held lock's acquire site becomes a one-frame stack, the report's
// "already holding ... at:"; the same site is announced once.
TEST_F(FactDecoderTest, EdgeCarriesWhereTheHeldLockWasTaken) {
    lw_record r = record(LW_RECORD_EDGE);
    r.class_id = 2;
    r.prev_class_id = 1;
    r.stack_id = -1;
    r.prev_site = 0xffffffff81000100;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 2u);
    const auto &site = event<engine::StackFact>(out[0]);
    ASSERT_EQ(site.frames.size(), 1u);
    EXPECT_EQ(site.frames[0].symbol, "io_submit_one");
    EXPECT_EQ(site.frames[0].offset, 0xc0u);
    const auto &edge = event<engine::EdgeFact>(out[1]);
    EXPECT_EQ(edge.prev_stack, site.id);
    EXPECT_NE(edge.prev_stack, engine::kNoStack);
    const engine::StackId site_id = site.id;

    out.clear();
    r.class_id = 3;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u) << "a site already announced is not announced again";
    EXPECT_EQ(event<engine::EdgeFact>(out[0]).prev_stack, site_id);

    out.clear();
    r.prev_site = 0;  // a hook that cannot see the site
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(event<engine::EdgeFact>(out[0]).prev_stack, engine::kNoStack);
}

TEST_F(FactDecoderTest, ClassRecordIsNamed) {
    lw_record r = record(LW_RECORD_CLASS);
    r.class_id = 5;
    r.class_type = LW_CLASS_SITE;
    r.class_key = 0xffffffff81000050;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(event<engine::ClassFact>(out[0]).name, "lock@io_submit_one");
    ASSERT_NE(decoder_.class_name(5), nullptr);
}

TEST_F(FactDecoderTest, GenericKmallocClassIsNamedByItsAllocationSite) {
    lw_record r = record(LW_RECORD_CLASS);
    r.class_id = 6;
    r.class_type = LW_CLASS_KMALLOC_ALLOC;
    r.class_offset = 0x848;
    r.object_size = 4096;
    r.site = 0xffffffff81000050;
    std::strcpy(r.name, "kmalloc-4k");
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(event<engine::ClassFact>(out[0]).name, "kmalloc-4k+0x848@io_submit_one");
    EXPECT_EQ(decoder_.classes_of_type(LW_CLASS_KMALLOC_ALLOC), 1u);
}

// An object allocated before attach: its first acquirer names it, marked so.
TEST_F(FactDecoderTest, GenericKmallocFallbackIsNamedByItsFirstAcquirer) {
    lw_record r = record(LW_RECORD_CLASS);
    r.class_id = 7;
    r.class_type = LW_CLASS_KMALLOC;
    r.class_offset = 0x848;
    r.object_size = 4096;
    r.site = 0xffffffff81000050;
    std::strcpy(r.name, "kmalloc-4k");
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    decoder_.decode(r, out);  // announced twice, counted once
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(event<engine::ClassFact>(out[0]).name, "kmalloc-4k+0x848@locker:io_submit_one");
    EXPECT_EQ(decoder_.classes_of_type(LW_CLASS_KMALLOC), 1u);
    EXPECT_EQ(decoder_.classes_of_type(LW_CLASS_KMALLOC_ALLOC), 0u);
}

TEST_F(FactDecoderTest, LockdepClassesKeepLockdepsNamesVersionsAndSubclasses) {
    auto name_of = [&](uint64_t id, uint64_t key, uint32_t subclass, const char *name) {
        lw_record r = record(LW_RECORD_CLASS);
        r.class_id = id;
        r.class_type = LW_CLASS_LOCKDEP;
        r.class_key = key;
        r.class_offset = subclass;
        std::strcpy(r.name, name);
        std::vector<DecodedRecord> out;
        decoder_.decode(r, out);
        return out.size() == 1 ? event<engine::ClassFact>(out[0]).name : std::string("?");
    };
    EXPECT_EQ(name_of(1, 0x100, 0, "&ctx->ctx_lock"), "&ctx->ctx_lock");
    // Another key under the same name is lockdep's "#2"; the first key keeps
    // its plain name for its other subclasses.
    EXPECT_EQ(name_of(2, 0x200, 0, "&sb->s_type->i_lock_key"), "&sb->s_type->i_lock_key");
    EXPECT_EQ(name_of(3, 0x300, 0, "&sb->s_type->i_lock_key"), "&sb->s_type->i_lock_key#2");
    EXPECT_EQ(name_of(4, 0x200, 1, "&sb->s_type->i_lock_key"), "&sb->s_type->i_lock_key/1");
    EXPECT_EQ(name_of(5, 0x300, 1, "&sb->s_type->i_lock_key"), "&sb->s_type->i_lock_key#2/1");
}

// Every record type the BPF side can send decodes to something: a new type
// added to lockwatch.h without its case fails this test (and -Wswitch-enum).
TEST_F(FactDecoderTest, EveryRecordTypeIsDecoded) {
    for (uint32_t type = LW_RECORD_FIRST_CALL; type <= LW_RECORD_OP_IRQS_ON; ++type) {
        lw_record r = record(type);
        r.class_id = 2;
        r.prev_class_id = 1;
        r.class_type = LW_CLASS_SITE;
        // HELD_IRQS_ON carries a mask of bits, USAGE one bit.
        r.usage_bit = type == LW_RECORD_HELD_IRQS_ON ? 1u << LW_ENABLED_HARDIRQ
                                                     : static_cast<uint32_t>(LW_ENABLED_HARDIRQ);
        r.function = 0;
        std::vector<DecodedRecord> out;
        decoder_.decode(r, out);
        EXPECT_FALSE(out.empty()) << "record type " << type << " was dropped";
    }
    EXPECT_EQ(decoder_.malformed_records(), 0u);
}

TEST_F(FactDecoderTest, RecordsItCannotUnderstandAreCountedNotDropped) {
    std::vector<DecodedRecord> out;
    decoder_.decode(record(LW_RECORD_OP_IRQS_ON + 1), out);
    lw_record usage = record(LW_RECORD_USAGE);
    usage.usage_bit = LW_USAGE_BITS;
    decoder_.decode(usage, out);
    lw_record first = record(LW_RECORD_FIRST_CALL);
    first.function = LW_FN_COUNT;
    decoder_.decode(first, out);
    lw_record held = record(LW_RECORD_HELD_IRQS_ON);
    held.usage_bit = 1u << LW_USED_IN_HARDIRQ;  // not a bit irqs coming on can set
    decoder_.decode(held, out);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(decoder_.malformed_records(), 4u);
}

// --record-ops: operations for the trace alone, never the engine, and a
// lock's address never in them: a lock is numbered while it is held.
TEST_F(FactDecoderTest, OperationsAreForTheTraceWithLocksNumberedWhileHeld) {
    auto decode = [this](uint32_t type, uint64_t lock) {
        lw_record r = record(type);
        r.class_key = lock;
        r.class_id = 5;
        r.acquire_flags = LW_ACQ_IRQS_OFF | LW_ACQ_TRYLOCK;
        r.irq_flags = LW_IRQ_SOFTIRQS_ENABLED | LW_IRQ_HARDIRQS_ENABLED;
        std::vector<DecodedRecord> out;
        decoder_.decode(r, out);
        EXPECT_FALSE(out.empty());
        EXPECT_TRUE(std::holds_alternative<RawOperation>(out.back()));
        return std::get<RawOperation>(out.back()).event;
    };
    auto lock_of = [&](uint32_t type, uint64_t lock) {
        engine::Event ev = decode(type, lock);
        return type == LW_RECORD_OP_RELEASE ? std::get<engine::ReleaseEvent>(ev).lock
                                            : std::get<engine::AcquireEvent>(ev).lock;
    };
    const uint64_t a = 0xffff888003a1c040, b = 0xffff888003a1c080;
    auto acquire = std::get<engine::AcquireEvent>(decode(LW_RECORD_OP_ACQUIRE, a));
    EXPECT_EQ(acquire.lock, 1u) << "a lock is a number, never its address";
    EXPECT_EQ(lock_of(LW_RECORD_OP_ACQUIRE, b), 2u);
    EXPECT_EQ(lock_of(LW_RECORD_OP_ACQUIRE, a), 1u) << "a second reader of a held lock";
    EXPECT_EQ(lock_of(LW_RECORD_OP_RELEASE, a), 1u);
    EXPECT_EQ(lock_of(LW_RECORD_OP_RELEASE, a), 1u);
    EXPECT_EQ(lock_of(LW_RECORD_OP_ACQUIRE, a), 3u) << "released by all, a lock is forgotten";
    EXPECT_EQ(lock_of(LW_RECORD_OP_RELEASE, 0xffff888000000000), 4u) << "a lost acquire's";
    EXPECT_EQ(acquire.cls, 5u);
    EXPECT_EQ(acquire.flags, engine::acquire_flags::kIrqsOff | engine::acquire_flags::kTrylock);
    EXPECT_TRUE(acquire.hardirqs_enabled && acquire.softirqs_enabled);
    EXPECT_EQ(acquire.stack, 8u);
    EXPECT_EQ(acquire.task.pid, 42);
    auto irqs_on = std::get<engine::IrqsEnabledEvent>(decode(LW_RECORD_OP_IRQS_ON, 0));
    EXPECT_TRUE(irqs_on.hardirqs_enabled && irqs_on.softirqs_enabled);
    EXPECT_EQ(decoder_.malformed_records(), 0u);
}

// lockdep turned itself off: when, and whether the irq tracer's flag or an
// inference gives the hardirq state from then on.
TEST_F(FactDecoderTest, LockdepOffSaysWhereTheHardirqStateComesFrom) {
    lw_record r = record(LW_RECORD_LOCKDEP_OFF);
    r.time_ns = 12'500'000'000;
    r.cpu = 1;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    r.irq_flags = LW_IRQ_STATE_INFERRED;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 2u);
    const auto *traced = std::get_if<LockdepOff>(&out[0]);
    const auto *inferred = std::get_if<LockdepOff>(&out[1]);
    ASSERT_TRUE(traced && inferred);
    EXPECT_EQ(traced->time_ns, 12'500'000'000u);
    EXPECT_EQ(traced->cpu, 1u);
    EXPECT_TRUE(traced->tracer_flag);
    EXPECT_FALSE(inferred->tracer_flag);
    EXPECT_NE(format_lockdep_off(12.5, true).find("seen at 12.500 s since boot"),
              std::string::npos);
    EXPECT_NE(format_lockdep_off(12.5, true).find("tracing_irq_cpu"), std::string::npos);
    EXPECT_NE(format_lockdep_off(12.5, false).find("inferred"), std::string::npos);
}

// Interrupts back on with a lock held: one usage fact per new ENABLED bit,
// read or not as the lock was taken, with the unlock's stack.
TEST_F(FactDecoderTest, HeldLockWhenIrqsComeOnGetsTheEnabledBits) {
    lw_record r = record(LW_RECORD_HELD_IRQS_ON);
    r.class_id = 5;
    r.acquire_flags = LW_ACQ_READ;
    r.usage_bit = 1u << LW_ENABLED_HARDIRQ_READ | 1u << LW_ENABLED_SOFTIRQ_READ;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    std::vector<engine::UsageBit> bits;
    for (const DecodedRecord &d : out) {
        if (const auto *ev = std::get_if<engine::Event>(&d)) {
            if (const auto *u = std::get_if<engine::UsageFact>(ev)) {
                EXPECT_EQ(u->cls, 5u);
                EXPECT_EQ(u->read, 1);
                EXPECT_NE(u->stack, engine::kNoStack);
                bits.push_back(u->bit);
            }
        }
    }
    EXPECT_EQ(bits, (std::vector<engine::UsageBit>{engine::UsageBit::EnabledHardirqRead,
                                                   engine::UsageBit::EnabledSoftirqRead}));
}

// An NMI's acquire reaches the engine as the raw acquire it is, which the
// engine only checks (verify_lock_unused()).
TEST_F(FactDecoderTest, NmiAcquireBecomesARawAcquireInNmi) {
    lw_record r = record(LW_RECORD_NMI_ACQUIRE);
    r.class_id = 5;
    r.context = LW_CTX_NMI;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_FALSE(out.empty());
    const auto &ev = event<engine::AcquireEvent>(out.back());
    EXPECT_EQ(ev.context, engine::Context::Nmi);
    EXPECT_EQ(ev.cls, 5u);
    engine::Engine eng;
    eng.process(engine::ClassFact{5, "a"});
    engine::UsageFact used;
    used.cls = 5;
    used.bit = engine::UsageBit::Used;
    eng.process(used);
    for (const DecodedRecord &d : out) {
        eng.process(std::get<engine::Event>(d));
    }
    ASSERT_EQ(eng.findings().size(), 1u);
    EXPECT_EQ(*eng.findings()[0].new_bit, engine::UsageBit::InNmi);
}

TEST_F(FactDecoderTest, FirstCallNamesItsCallerWithoutAddresses) {
    lw_record r = record(LW_RECORD_FIRST_CALL);
    r.function = 0;
    r.context = LW_CTX_SOFTIRQ;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u);
    const auto &first = std::get<FirstCall>(out[0]);
    EXPECT_EQ(first.function, 0u);
    EXPECT_EQ(first.context, LW_CTX_SOFTIRQ);
    EXPECT_EQ(first.comm, "repro");
    EXPECT_EQ(first.caller, "io_submit_one+0xc0/0xfc0")
        << "the first frame that is neither BPF nor a lock function";
}

TEST_F(FactDecoderTest, ClassPairGoesToTheClassAgreement) {
    lw_record r = record(LW_RECORD_CLASS_PAIR);
    r.class_id = 10;
    r.prev_class_id = 20;
    r.class_type = LW_CLASS_KMALLOC_ALLOC;
    r.class_offset = 0x28;
    r.object_size = 512;
    r.site = 0xffffffff81000050;
    std::strcpy(r.name, "kmalloc-512");
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u);
    const auto &pair = std::get<ClassPair>(out[0]);
    EXPECT_EQ(pair.lockdep_class, 10u);
    EXPECT_EQ(pair.derived_class, 20u);
    EXPECT_EQ(pair.derived_type, static_cast<uint32_t>(LW_CLASS_KMALLOC_ALLOC));
    EXPECT_EQ(pair.derived_name, "kmalloc-512+0x28@io_submit_one");
}

// A lock instance taken again while held reaches the engine as its class
// meeting itself, and comes out as lockdep's recursive-locking report.
TEST_F(FactDecoderTest, RecursionBecomesARecursiveFinding) {
    engine::Engine engine;
    std::vector<engine::Finding> findings;
    engine.on_finding([&](const engine::Finding &f) { findings.push_back(f); });
    std::vector<DecodedRecord> out;
    lw_record cls = record(LW_RECORD_CLASS);
    cls.class_id = 5;
    cls.class_type = LW_CLASS_SITE;
    cls.class_key = 0xffffffff81000050;
    decoder_.decode(cls, out);
    lw_record again = record(LW_RECORD_RECURSION);
    again.class_id = 5;
    again.class_type = LW_CLASS_SITE;
    again.irq_flags = LW_IRQ_HARDIRQS_ENABLED | LW_IRQ_SOFTIRQS_ENABLED;
    again.prev_site = 0xffffffff81000100;  // where the held instance was taken
    decoder_.decode(again, out);
    for (const auto &decoded : out) {
        engine.process(std::get<engine::Event>(decoded));
    }
    ASSERT_EQ(findings.size(), 1u);
    EXPECT_EQ(findings[0].kind, engine::FindingKind::Recursive);
    ASSERT_TRUE(findings[0].holding->at) << "the held instance's \"at:\"";
    EXPECT_EQ((*findings[0].holding->at)[0].symbol, "io_submit_one");
    EXPECT_EQ(findings[0].acquiring.name, "lock@io_submit_one");
    ASSERT_TRUE(findings[0].holding.has_value());
    EXPECT_EQ(findings[0].holding->name, "lock@io_submit_one");
    EXPECT_EQ(findings[0].title, "possible deadlock in io_submit_one");
}

TEST_F(FactDecoderTest, ReadReacquireInInterruptContextIsNoRecursion) {
    // Both reads, and the second read-recursive: lockdep allows it. (The BPF
    // side sends no record for two reads; the engine's rule must agree.)
    engine::Engine engine;
    int findings = 0;
    engine.on_finding([&](const engine::Finding &) { ++findings; });
    std::vector<DecodedRecord> out;
    lw_record again = record(LW_RECORD_RECURSION);
    again.class_id = 5;
    again.context = LW_CTX_SOFTIRQ;
    again.acquire_flags = LW_ACQ_READ;
    again.prev_acquire_flags = LW_ACQ_READ;
    decoder_.decode(again, out);
    ASSERT_FALSE(out.empty());
    const auto &edge = event<engine::EdgeFact>(out.back());
    EXPECT_EQ(edge.prev, edge.next);
    EXPECT_EQ(edge.next_read, 2);
    EXPECT_EQ(edge.prev_read, 2);
    for (const auto &decoded : out) {
        engine.process(std::get<engine::Event>(decoded));
    }
    EXPECT_EQ(findings, 0);
}

// A kernel whose module area holds BPF programs and, later, a module.
const char *kBootSymbols =
    "ffffffff81000000 T _stext\n"
    "ffffffff81000100 T _raw_spin_lock\n"
    "ffffffff81000200 T do_one_initcall\n"
    "ffffffff82000000 B _end\n"
    "ffffffffc0000000 t bpf_trampoline_6442\t[bpf]\n"
    "ffffffffc0001000 t bpf_prog_abc_fentry\t[bpf]\n";

const char *kScenarios =
    "ffffffffc0200000 t circ_thread\t[lockwatch_scenarios]\n"
    "ffffffffc0200100 t circ_init\t[lockwatch_scenarios]\n"
    "ffffffffc0202000 d circ_a\t[lockwatch_scenarios]\n"
    "ffffffffc0202040 d circ_table\t[lockwatch_scenarios]\n";
const char *kScenariosAt = "lockwatch_scenarios 16384 0 - Live 0xffffffffc0200000 (O)\n";

// The same module loaded again, elsewhere.
const char *kScenariosMoved =
    "ffffffffc0500000 t circ_thread\t[lockwatch_scenarios]\n"
    "ffffffffc0500100 t circ_init\t[lockwatch_scenarios]\n"
    "ffffffffc0502000 d circ_a\t[lockwatch_scenarios]\n"
    "ffffffffc0502040 d circ_table\t[lockwatch_scenarios]\n";
const char *kScenariosMovedAt = "lockwatch_scenarios 16384 0 - Live 0xffffffffc0500000 (O)\n";

Kallsyms table(const std::string &symbols, const std::string &modules = "") {
    std::istringstream in(symbols), mods(modules);
    Kallsyms k = Kallsyms::parse(in);
    k.set_module_extents(Kallsyms::parse_modules(mods));
    return k;
}

class ModuleDecoderTest : public ::testing::Test {
  protected:
    ModuleDecoderTest()
        : kallsyms_(table(kBootSymbols)),
          refresher_(
              kallsyms_, [this] { return table(std::string(kBootSymbols) + now_, now_at_); },
              std::chrono::seconds(1), [this] { return clock_; }),
          namer_(nullptr, &kallsyms_, {}),
          decoder_(namer_, kallsyms_, [this](int32_t) { return stack_; }) {
        decoder_.set_refresher(&refresher_);
    }

    // The module loads (or moves) while lockwatch runs.
    void load(const char *symbols, const char *at) {
        now_ = symbols;
        now_at_ = at;
        clock_ += std::chrono::seconds(2);
    }

    engine::ClassFact decode_class(uint64_t bpf_id, uint64_t address) {
        lw_record r = record(LW_RECORD_CLASS);
        r.class_id = bpf_id;
        r.class_type = LW_CLASS_MODULE;
        r.class_key = address;
        std::vector<DecodedRecord> out;
        decoder_.decode(r, out);
        return out.size() == 1 ? event<engine::ClassFact>(out[0]) : engine::ClassFact{};
    }

    Kallsyms kallsyms_;
    std::string now_, now_at_;
    std::chrono::steady_clock::time_point clock_{};
    KallsymsRefresher refresher_;
    ClassNamer namer_;
    FactDecoder decoder_;
    std::vector<uint64_t> stack_;
};

TEST_F(ModuleDecoderTest, ModuleStaticLockIsNamedAfterItsSymbolAndModule) {
    load(kScenarios, kScenariosAt);
    engine::ClassFact a = decode_class(11, 0xffffffffc0202000);
    EXPECT_EQ(a.name, "circ_a [lockwatch_scenarios]");
    EXPECT_EQ(refresher_.reloads(), 1u) << "the module loaded after the table was read";
    engine::ClassFact inside = decode_class(12, 0xffffffffc0202050);
    EXPECT_EQ(inside.name, "circ_table+0x10 [lockwatch_scenarios]");
    EXPECT_NE(a.id, inside.id);
    EXPECT_EQ(refresher_.reloads(), 1u);
}

TEST_F(ModuleDecoderTest, ReloadedModuleKeepsItsLockClasses) {
    load(kScenarios, kScenariosAt);
    engine::ClassFact first = decode_class(11, 0xffffffffc0202000);
    EXPECT_EQ(first.id, module_class_id("circ_a [lockwatch_scenarios]"));
    load(kScenariosMoved, kScenariosMovedAt);
    engine::ClassFact again = decode_class(21, 0xffffffffc0502000);
    EXPECT_EQ(again.name, first.name);
    EXPECT_EQ(again.id, first.id) << "one class across the reload";
    EXPECT_EQ(refresher_.reloads(), 2u);

    // Facts about either BPF id reach the engine as the one class.
    lw_record edge = record(LW_RECORD_EDGE);
    edge.class_id = 21;
    edge.prev_class_id = 11;
    edge.stack_id = -1;
    lw_record usage = record(LW_RECORD_USAGE);
    usage.class_id = 21;
    usage.usage_bit = LW_USED_IN_HARDIRQ;
    usage.stack_id = -1;
    std::vector<DecodedRecord> out;
    decoder_.decode(edge, out);
    decoder_.decode(usage, out);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(event<engine::EdgeFact>(out[0]).prev, first.id);
    EXPECT_EQ(event<engine::EdgeFact>(out[0]).next, first.id);
    EXPECT_EQ(event<engine::UsageFact>(out[1]).cls, first.id);
    ASSERT_NE(decoder_.class_name(first.id), nullptr);
    EXPECT_EQ(*decoder_.class_name(first.id), "circ_a [lockwatch_scenarios]");
}

TEST_F(ModuleDecoderTest, UnnamedModuleStaticIsAnOffsetInTheModuleArea) {
    engine::ClassFact c = decode_class(13, 0xffffffffc0802468);
    EXPECT_EQ(c.name, "static-lock+0x802468 [module area]");
    EXPECT_EQ(c.id, 13u) << "nothing stable to name it by: the BPF id stays";
}

TEST_F(ModuleDecoderTest, ModuleCallSitesNameTheModuleFunction) {
    load(kScenarios, kScenariosAt);
    lw_record r = record(LW_RECORD_CLASS);
    r.class_id = 14;
    r.class_type = LW_CLASS_SITE;
    r.class_key = 0xffffffffc0200010;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(event<engine::ClassFact>(out[0]).name, "lock@circ_thread [lockwatch_scenarios]");
}

std::string text_of(const engine::Stack &stack) {
    std::string text;
    for (const engine::Frame &f : stack) {
        text += output::format_frame(f) + "\n";
    }
    return text;
}

TEST_F(ModuleDecoderTest, StacksNameModuleFramesAndKeepUnnamedOnes) {
    load(kScenarios, kScenariosAt);
    stack_ = {0xffffffffc0001010,   // the program (BPF)
              0xffffffffc0000020,   // its trampoline (BPF)
              0xffffffff81000105,   // _raw_spin_lock
              0xffffffffc020011c,   // circ_init in the module
              0xffffffffc0900040,   // module area, nothing there by name
              0xffffffff81000210,   // do_one_initcall
              0xffffffff83000000,   // past the image's end
              0xffff888012345678};  // not code at all
    lw_record r = record(LW_RECORD_USAGE);
    r.class_id = 1;
    r.usage_bit = LW_USED_IN_HARDIRQ;
    std::vector<DecodedRecord> out;
    decoder_.decode(r, out);
    ASSERT_EQ(out.size(), 2u);
    const auto &stack = event<engine::StackFact>(out[0]);
    EXPECT_EQ(text_of(stack.frames),
              "_raw_spin_lock+0x5/0x100\n"
              "circ_init+0x1c/0x1f00 [lockwatch_scenarios]\n"
              "0x900040 (unknown) [module area]\n"
              "do_one_initcall+0x10/0xfffe00\n"
              "(unknown) [elsewhere]\n"
              "(unknown) [elsewhere]\n");
    EXPECT_EQ(text_of(stack.frames).find("ffff"), std::string::npos) << "no address leaves";
}

TEST(SymbolizeKernelStack, UnnamedFramesCountFromTheirRegion) {
    // A table that lacks part of the kernel's text (as a partial read would).
    Kallsyms k = table(
        "ffffffff81000000 T _stext\n"
        "ffffffff81000100 T _raw_spin_lock\n"
        "ffffffff81000200 T _etext_marker\n"
        "ffffffff82000000 B _end\n");
    engine::Frame text = symbolize_frame(0xffffffff81000080, k);
    EXPECT_EQ(text.symbol, "_stext");  // named by the symbol below it
    // Before every symbol of the image: an offset from its text start cannot
    // be negative, so it is elsewhere.
    EXPECT_EQ(output::format_frame(symbolize_frame(0xffffffff80ff0000, k)),
              "(unknown) [elsewhere]");
    engine::Frame mod = symbolize_frame(0xffffffffc0123456, k);
    EXPECT_EQ(output::format_frame(mod), "0x123456 (unknown) [module area]");
    // Leading unnamed module frames are BPF's only when a kernel frame
    // follows them; with none they are kept.
    EXPECT_EQ(symbolize_kernel_stack({0xffffffffc0123456, 0xffffffff81000110}, k).size(), 1u);
    EXPECT_EQ(symbolize_kernel_stack({0xffffffffc0123456, 0xffffffffc0123999}, k).size(), 2u);
}

}  // namespace
}  // namespace lockwatch
