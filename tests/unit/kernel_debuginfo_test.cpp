// KernelDebugInfo against a small program built with debug info
// (debuginfo_fixture.c) and one built without.
#include "debuginfo/kernel_debuginfo.h"

#include <elf.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "output/json.h"
#include "output/text.h"

namespace lockwatch {
namespace {

// The 1-based line of the fixture source that carries `marker`.
uint32_t fixture_line(const std::string &marker) {
    std::ifstream in(DEBUGINFO_FIXTURE_SOURCE);
    std::string line;
    for (uint32_t n = 1; std::getline(in, line); n++) {
        if (line.find(marker) != std::string::npos) {
            return n;
        }
    }
    return 0;
}

engine::Frame frame(const std::string &symbol, uint64_t offset) {
    engine::Frame f;
    f.symbol = symbol;
    f.offset = offset;
    return f;
}

class KernelDebugInfoTest : public ::testing::Test {
  protected:
    void SetUp() override { info_ = KernelDebugInfo::open(DEBUGINFO_FIXTURE); }
    std::unique_ptr<KernelDebugInfo> info_;
};

TEST_F(KernelDebugInfoTest, FunctionEntryHasItsSourceLine) {
    engine::Stack out = info_->annotate({frame("fixture_plain", 0)});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].symbol, "fixture_plain");
    EXPECT_TRUE(out[0].file.ends_with("debuginfo_fixture.c")) << out[0].file;
    EXPECT_FALSE(out[0].file.starts_with("/")) << "no build-host paths: " << out[0].file;
    EXPECT_EQ(out[0].line, fixture_line("MARK_PLAIN"));
    EXPECT_FALSE(out[0].inlined);
}

TEST_F(KernelDebugInfoTest, InlinedFunctionBecomesAFrameOfItsOwn) {
    // Somewhere in fixture_outer runs the inlined body of fixture_inner.
    bool found = false;
    for (uint64_t off = 1; off < 64 && !found; off++) {
        engine::Stack out = info_->annotate({frame("fixture_outer", off)});
        if (out.size() == 2 && out[0].inlined) {
            found = true;
            EXPECT_EQ(out[0].symbol, "fixture_inner");
            EXPECT_EQ(out[0].line, fixture_line("MARK_INNER_BODY"));
            EXPECT_EQ(out[1].symbol, "fixture_outer");
            EXPECT_EQ(out[1].offset, off);
            EXPECT_FALSE(out[1].inlined);
            EXPECT_EQ(out[1].line, fixture_line("MARK_CALL"));
        }
    }
    EXPECT_TRUE(found) << "no offset of fixture_outer maps into the inlined fixture_inner";
}

TEST_F(KernelDebugInfoTest, UnknownAndAlreadyPlacedFramesPassThrough) {
    engine::Frame placed = frame("fixture_outer", 4);
    placed.file = "fs/aio.c";
    placed.line = 7;
    engine::Stack in = {frame("not_in_this_binary", 16), placed};
    EXPECT_EQ(info_->annotate(in), in);
}

TEST_F(KernelDebugInfoTest, HasTheLinkersBuildId) {
    EXPECT_EQ(info_->build_id().size(), 40u) << info_->build_id();
}

TEST(KernelDebugInfo, RefusesWhatItCannotUse) {
    try {
        KernelDebugInfo::open("/nonexistent/vmlinux");
        FAIL() << "opened a missing file";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/vmlinux"), std::string::npos);
    }
    try {
        KernelDebugInfo::open(DEBUGINFO_FIXTURE_NODEBUG);
        FAIL() << "opened a binary without DWARF";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("no DWARF"), std::string::npos) << e.what();
    }
}

TEST(RunningKernelBuildId, ReadsTheGnuNote) {
    char path[] = "/tmp/lockwatch-notes-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    std::vector<unsigned char> notes;
    auto put_note = [&](uint32_t type, const char *name, const std::vector<unsigned char> &desc) {
        Elf64_Nhdr hdr{static_cast<Elf64_Word>(std::strlen(name) + 1),
                       static_cast<Elf64_Word>(desc.size()), type};
        const auto *h = reinterpret_cast<const unsigned char *>(&hdr);
        notes.insert(notes.end(), h, h + sizeof(hdr));
        notes.insert(notes.end(), name, name + hdr.n_namesz);
        notes.resize((notes.size() + 3) & ~size_t{3});
        notes.insert(notes.end(), desc.begin(), desc.end());
        notes.resize((notes.size() + 3) & ~size_t{3});
    };
    put_note(1, "Xen", {1, 2, 3});
    put_note(NT_GNU_BUILD_ID, "GNU", {0xde, 0xad, 0xbe, 0xef});
    ASSERT_EQ(write(fd, notes.data(), notes.size()), static_cast<ssize_t>(notes.size()));
    close(fd);
    EXPECT_EQ(running_kernel_build_id(path), "deadbeef");

    std::ofstream(path, std::ios::trunc) << "garbage";
    EXPECT_EQ(running_kernel_build_id(path), "");
    unlink(path);
    EXPECT_EQ(running_kernel_build_id("/nonexistent/notes"), "");
}

// A recursive-locking finding whose frames are in the fixture or nowhere.
engine::Finding fixture_finding() {
    engine::StackRef at(engine::Stack{frame("fixture_plain", 0)});
    engine::Frame unknown = frame("not_in_this_binary", 0x10);
    unknown.size = 0x20;
    engine::Finding f;
    f.kind = engine::FindingKind::Recursive;
    f.task.pid = 1;
    f.task.set_comm("stress");
    f.acquiring = {"TCP+0x98", "+.-.", at, 0};
    f.holding = f.acquiring;
    f.held = {f.acquiring};
    f.locks = {f.acquiring};
    f.prev_usage = engine::UsageTrace{engine::UsageBit::UsedInSoftirq, at, f.task, 0, 0, false};
    f.path = {engine::PathEntry{"other+0x8", "....", {*f.prev_usage}, at}};
    f.stack = engine::StackRef(engine::Stack{frame("fixture_plain", 0), unknown});
    return f;
}

TEST_F(KernelDebugInfoTest, EveryStackOfAFindingGainsSourcePlaces) {
    engine::Finding f = fixture_finding();
    annotate_stacks(f, *info_);
    int stacks = 0;
    engine::for_each_stack(f, [&](engine::StackRef &stack) {
        if (!stack) {
            return;
        }
        ++stacks;
        const engine::Frame &first = stack->front();
        EXPECT_EQ(first.symbol, "fixture_plain");
        EXPECT_TRUE(first.file.ends_with("debuginfo_fixture.c")) << first.file;
        EXPECT_EQ(first.line, fixture_line("MARK_PLAIN"));
    });
    // backtrace, locks, acquiring, holding, held, prev_usage, the path usage and acquired_at
    EXPECT_EQ(stacks, 8);
    ASSERT_EQ(f.stack->size(), 2u);
    EXPECT_EQ(f.stack->back().symbol, "not_in_this_binary");
    EXPECT_TRUE(f.stack->back().file.empty()) << "a frame the vmlinux lacks passes through";

    std::string text = output::render_text(f);
    std::string place = "debuginfo_fixture.c:" + std::to_string(fixture_line("MARK_PLAIN"));
    EXPECT_NE(text.find(" (TCP+0x98){+.-.}, at: fixture_plain+0x0 "), std::string::npos) << text;
    EXPECT_NE(text.find(place + "\n"), std::string::npos) << text;
    EXPECT_NE(text.find(" not_in_this_binary+0x10/0x20\n"), std::string::npos) << text;
}

TEST_F(KernelDebugInfoTest, AFindingFromJsonGainsSourcePlaces) {
    // The way `lockwatch vm` treats what a guest sends.
    std::optional<engine::Finding> f =
        output::finding_from_json(output::finding_to_json(fixture_finding()));
    ASSERT_TRUE(f);
    annotate_stacks(*f, *info_);
    nlohmann::json j = output::finding_to_json(*f);
    const nlohmann::json &top = j["stacks"]["backtrace"][0];
    EXPECT_TRUE(top.value("file", "").ends_with("debuginfo_fixture.c")) << j.dump();
    EXPECT_EQ(top.value("line", 0u), fixture_line("MARK_PLAIN"));
    EXPECT_EQ(j["held"][0]["stack"][0]["line"], fixture_line("MARK_PLAIN"));
}

}  // namespace
}  // namespace lockwatch
