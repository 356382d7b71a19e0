// open_output_file(): "-" is standard output, a file is created or
// appended to, and a symbolic link in its place is refused; and the commands
// that write files a user names refuse one too.
#include "output/output_file.h"
#include "temp_dir.h"
#include "vm/vm_script.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace lockwatch::output {
namespace {

namespace fs = std::filesystem;

class OutputFileTest : public ::testing::Test {
  protected:
    static std::string slurp(const fs::path &p) { return lockwatch::test_support::read_file(p); }
    lockwatch::test_support::TempDir tmp_{"output"};
    const fs::path dir_ = tmp_.path();
};

TEST_F(OutputFileTest, DashIsStandardOutputAndStaysOpen) {
    std::string error;
    {
        OutputFile out = open_output_file("-", &error);
        EXPECT_EQ(out.get(), stdout);
    }
    EXPECT_NE(std::fflush(stdout), EOF) << "standard output was closed";
    EXPECT_TRUE(error.empty());
}

// A restarted daemon keeps the findings of its earlier runs.
TEST_F(OutputFileTest, AppendsToAnExistingFile) {
    fs::path p = dir_ / "findings.jsonl";
    std::ofstream(p) << "{\"earlier\":1}\n";
    std::string error;
    {
        OutputFile out = open_output_file(p, &error);
        ASSERT_TRUE(out) << error;
        std::fputs("{}\n", out.get());
    }
    EXPECT_EQ(slurp(p), "{\"earlier\":1}\n{}\n");
}

// Twice through `lockwatch replay --json`: both runs' lines are there.
TEST_F(OutputFileTest, ReplayAppendsItsJsonLines) {
    fs::path p = dir_ / "findings.jsonl";
    const std::string cmd = std::string(LOCKWATCH_BINARY) +
                            " replay --format none " LOCKWATCH_TRACE_DIR
                            "/seed_000_softirq_safe_to_unsafe.jsonl --json '" +
                            p.string() + "'";
    for (int i = 0; i < 2; ++i) {
        int rc = std::system(cmd.c_str());
        EXPECT_EQ(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 1) << "one finding";
    }
    std::string lines = slurp(p);
    EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 2) << lines;
}

TEST_F(OutputFileTest, CreatesReadableByAll) {
    fs::path p = dir_ / "fresh.jsonl";
    mode_t old_mask = ::umask(0022);
    std::string error;
    OutputFile out = open_output_file(p, &error);
    ::umask(old_mask);
    ASSERT_TRUE(out) << error;
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(OutputFileTest, RefusesASymbolicLink) {
    fs::path target = dir_ / "shadow";
    std::ofstream(target) << "precious\n";
    fs::path link = dir_ / "findings.jsonl";
    fs::create_symlink(target, link);
    std::string error;
    OutputFile out = open_output_file(link, &error);
    EXPECT_FALSE(out);
    EXPECT_EQ(error, "refusing to write " + link.string() + ": it is a symbolic link");
    EXPECT_EQ(slurp(target), "precious\n") << "the link's target was touched";

    fs::path dangling = dir_ / "dangling.jsonl";
    fs::create_symlink(dir_ / "nowhere", dangling);
    EXPECT_FALSE(open_output_file(dangling, &error));
    EXPECT_EQ(error, "refusing to write " + dangling.string() + ": it is a symbolic link");
    EXPECT_FALSE(fs::exists(dir_ / "nowhere")) << "the link's target was created";
}

TEST_F(OutputFileTest, OtherFailuresSayWhyInOneLine) {
    std::string error;
    fs::path missing = dir_ / "no" / "such" / "dir.jsonl";
    EXPECT_FALSE(open_output_file(missing, &error));
    EXPECT_EQ(error, "cannot write " + missing.string() + ": No such file or directory");
    EXPECT_EQ(error.find('\n'), std::string::npos);
}

// --json FILE of `lockwatch replay` and `lockwatch vm`, run as root, with a
// link planted for FILE. (`lockwatch run` opens --json and --ready-file with
// the same open_output_file(), but only once it traces a kernel.)
TEST_F(OutputFileTest, CommandsRefuseALinkForTheirJsonFile) {
    fs::path target = dir_ / "shadow";
    std::ofstream(target) << "precious\n";
    fs::path link = dir_ / "findings.jsonl";
    fs::create_symlink(target, link);
    fs::path err = dir_ / "stderr";
    const std::string json = " --json '" + link.string() + "'";
    auto run = [&](const std::string &args) {
        std::string cmd =
            std::string(LOCKWATCH_BINARY) + " " + args + " >/dev/null 2>'" + err.string() + "'";
        int rc = std::system(cmd.c_str());
        return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    };
    const std::string refusal = "refusing to write " + link.string() + ": it is a symbolic link\n";

    EXPECT_EQ(run("replay " LOCKWATCH_TRACE_DIR "/seed_000_softirq_safe_to_unsafe.jsonl" + json),
              2);
    EXPECT_EQ(slurp(err), "lockwatch replay: " + refusal);
    // Refused before the kernel is even looked at.
    EXPECT_EQ(run("vm --kernel /nonexistent/bzImage --vmlinux none" + json + " -- true"), 2);
    EXPECT_EQ(slurp(err), "lockwatch vm: " + refusal);
    EXPECT_EQ(slurp(target), "precious\n") << "the link's target was touched";
}

// --graph FILE is replaced whole: a link planted there is replaced, its
// target untouched; no temporary file is left behind.
TEST_F(OutputFileTest, ReplaceFileReplacesALinkNeverItsTarget) {
    fs::path target = dir_ / "shadow";
    std::ofstream(target) << "precious\n";
    fs::path link = dir_ / "graph.dot";
    fs::create_symlink(target, link);
    std::string error;
    ASSERT_TRUE(replace_file(link, "digraph {}\n", &error)) << error;
    EXPECT_FALSE(fs::is_symlink(link));
    EXPECT_EQ(slurp(link), "digraph {}\n");
    EXPECT_EQ(slurp(target), "precious\n");
    EXPECT_EQ(fs::status(link).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                  fs::perms::others_read);
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 2);
    EXPECT_FALSE(replace_file(dir_ / "missing" / "g.dot", "x", &error));
    EXPECT_EQ(error, "cannot write " + (dir_ / "missing" / "g.dot").string() +
                         ": No such file or directory");
}

// --record FILE starts a new file in its place: an old trace is replaced,
// and a link, a second hard link or a FIFO planted there is replaced, never
// opened (a FIFO would block the daemon, a link would empty its target).
TEST_F(OutputFileTest, CreateReplacesWhateverWasThereNeverOpensIt) {
    fs::path target = dir_ / "shadow";
    std::ofstream(target) << "precious\n";
    fs::create_symlink(target, dir_ / "sym.jsonl");
    fs::create_hard_link(target, dir_ / "hard.jsonl");
    ASSERT_EQ(::mkfifo((dir_ / "fifo.jsonl").c_str(), 0644), 0);
    std::ofstream(dir_ / "old.jsonl") << "old trace\n";
    for (const char *name : {"sym.jsonl", "hard.jsonl", "fifo.jsonl", "old.jsonl"}) {
        std::string error;
        {
            OutputFile out = create_output_file(dir_ / name, &error);
            ASSERT_TRUE(out) << name << ": " << error;
            std::fputs("new\n", out.get());
        }
        EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir_ / name))) << name;
        EXPECT_EQ(fs::hard_link_count(dir_ / name), 1u) << name;
        EXPECT_EQ(slurp(dir_ / name), "new\n") << name;
    }
    EXPECT_EQ(slurp(target), "precious\n");
    // Nothing left beside them but the files themselves.
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 5);
}

// replay --graph: the seed's graph, its finding's edge in red.
TEST_F(OutputFileTest, ReplayWritesTheGraph) {
    fs::path graph = dir_ / "seed.dot";
    std::string cmd = std::string(LOCKWATCH_BINARY) +
                      " replay " LOCKWATCH_TRACE_DIR
                      "/seed_000_softirq_safe_to_unsafe.jsonl "
                      "--format none --graph '" +
                      graph.string() + "'";
    int rc = std::system(cmd.c_str());
    EXPECT_EQ(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 1);  // 1: findings
    std::string dot = slurp(graph);
    EXPECT_EQ(dot.rfind("digraph lockwatch {", 0), 0u) << dot;
    EXPECT_NE(dot.find("c0 -> c1 [label=\"1\", color=red"), std::string::npos) << dot;
}

// Every write is checked: a full disk is an error and exit 3; a reader that
// went away (`| head -1`) ends the command quietly, not by SIGPIPE (which a
// shell reports as 141), with the status of what it found (1: findings).
TEST_F(OutputFileTest, FailedWritesAreErrorsAndAClosedPipeIsNot) {
    fs::path err = dir_ / "stderr";
    const std::string replay = std::string(LOCKWATCH_BINARY) +
                               " replay " LOCKWATCH_TRACE_DIR
                               "/seed_000_softirq_safe_to_unsafe.jsonl";
    auto run = [&](const std::string &cmd) {
        int rc = std::system(
            ("bash -c " + lockwatch::shell_quote(cmd + " 2>'" + err.string() + "'")).c_str());
        return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    };
    for (const char *args :
         {" >/dev/full", " --format json >/dev/full", " --json /dev/full >/dev/null"}) {
        EXPECT_EQ(run(replay + args), 3) << args;
        EXPECT_EQ(slurp(err), "lockwatch replay: write failed: No space left on device\n") << args;
    }
    // 400 ABBA findings, far more than a pipe holds: the reader is gone
    // long before the last one.
    fs::path many = dir_ / "many.jsonl";
    {
        std::ofstream out(many);
        out << R"({"format":"lockwatch-trace","version":2})"
            << "\n";
        for (int a = 1; a < 800; a += 2) {
            out << R"({"t":"edge","prev":)" << a << R"(,"next":)" << a + 1 << "}\n"
                << R"({"t":"edge","prev":)" << a + 1 << R"(,"next":)" << a << "}\n";
        }
    }
    const std::string replay_many = std::string(LOCKWATCH_BINARY) + " replay " + many.string();
    EXPECT_EQ(run(replay_many + " | wc -l"), 0);
    for (const char *reader : {" | head -1 >/dev/null", " --format json | head -c 1 >/dev/null"}) {
        EXPECT_EQ(run(replay_many + reader + "; exit ${PIPESTATUS[0]}"), 1) << reader;
        EXPECT_EQ(slurp(err), "") << reader;
    }
}

}  // namespace
}  // namespace lockwatch::output
