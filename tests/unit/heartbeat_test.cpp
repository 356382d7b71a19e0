// lockwatch vm's heartbeats: the line, the build's progress read from
// build-kernel.sh's logs, and a line at every interval while a step runs.
#include "vm/heartbeat.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace lockwatch {
namespace {

namespace fs = std::filesystem;

TEST(Heartbeat, LinesSayElapsedProgressAndWhatIsLeft) {
    EXPECT_EQ(format_heartbeat("fetching Debian's kernel", 42, std::nullopt),
              "lockwatch vm: fetching Debian's kernel: 42s so far");
    EXPECT_EQ(format_heartbeat(
                  "building the seed kernel", 270,
                  BuildProgress{.compiled = 600, .previous_total = 1200, .previous_seconds = 2260}),
              "lockwatch vm: building the seed kernel: 4m30s so far; make: 600 of about 1200 "
              "files (50 %), about 18m50s left (the last build took 37m40s)");
    EXPECT_EQ(format_heartbeat("building the seed kernel", 30, BuildProgress{.compiled = 7}),
              "lockwatch vm: building the seed kernel: 30s so far; make: 7 files compiled (no "
              "earlier build to compare)");
}

TEST(Heartbeat, ProgressFromTheRunningAndThePreviousLog) {
    char tmpl[] = "/tmp/lockwatch-heartbeat-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs::path dir = tmpl;
    auto before = fs::file_time_type::clock::now() - std::chrono::hours(1);
    {
        std::ofstream old(dir / "seed-1111.log");
        for (int i = 0; i < 40; ++i) {
            old << "  CC      kernel/f" << i << ".o\n  LD      x\n";
        }
        std::ofstream other(dir / "lockdep-2222.log");
        other << "  CC      a.o\n";
    }
    fs::last_write_time(dir / "seed-1111.log", before);
    EXPECT_FALSE(read_build_progress(dir, "seed",
                                     fs::file_time_type::clock::now() - std::chrono::minutes(1)))
        << "no build of seed is running";
    {
        std::ofstream now(dir / "seed-3333.log");
        now << "+ make\n  CC      kernel/a.o\n  CC      kernel/b.o\n";
    }
    auto progress = read_build_progress(dir, "seed", before + std::chrono::minutes(1));
    ASSERT_TRUE(progress);
    EXPECT_EQ(progress->compiled, 2u);
    EXPECT_EQ(progress->previous_total, 40u);
    fs::remove_all(dir);
}

TEST(Heartbeat, ALineEveryIntervalUntilTheStepEnds) {
    std::FILE *out = std::tmpfile();
    ASSERT_NE(out, nullptr);
    {
        Heartbeat heartbeat("a step", std::chrono::milliseconds(100), {}, out);
        std::this_thread::sleep_for(std::chrono::milliseconds(350));
    }
    std::rewind(out);
    char line[256];
    int lines = 0;
    while (std::fgets(line, sizeof(line), out)) {
        EXPECT_EQ(std::string(line).rfind("lockwatch vm: a step: ", 0), 0u) << line;
        ++lines;
    }
    std::fclose(out);
    EXPECT_GE(lines, 2);
    EXPECT_LE(lines, 4);
}

}  // namespace
}  // namespace lockwatch
