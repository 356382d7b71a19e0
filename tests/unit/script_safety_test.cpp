// The file-safety rules of lockwatch's scripts (tools/lib/safe-files.sh),
// which run as root: a cache or state directory that someone else could
// write is refused, a symbolic link planted where a script writes is never
// followed, and a Debian kernel is checked against apt's SHA256 when it is
// downloaded and against its package every time it is used. Everything runs
// in a scratch directory, with apt-get, apt-cache and depmod replaced by
// stand-ins and a small package built here: no network, no VM.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;

constexpr const char *kVersion = "6.1.0-99-cloud-amd64";
constexpr uid_t kNobody = 65534;

std::string slurp(const fs::path &p) {
    return lockwatch::test_support::read_file(p);
}

void spit(const fs::path &p, const std::string &text,
          fs::perms perms = fs::perms::owner_read | fs::perms::owner_write) {
    std::ofstream(p, std::ios::trunc) << text;
    fs::permissions(p, perms);
}

unsigned mode_of(const fs::path &p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0 ? (st.st_mode & 07777) : ~0u;
}

using ScriptRun = lockwatch::test_support::ShellRun;

// Stand-ins for the Debian tools fetch-kernel.sh runs. apt-get download
// copies $FAKE_DEB and logs the call; apt-cache answers with $FAKE_SHA.
constexpr const char *kFakeAptGet = R"(#!/bin/sh
echo "apt-get $*" >>"$FAKE_LOG"
[ "$1" = download ] || exit 0
for pkg; do :; done
cp "$FAKE_DEB" "./${pkg}_1.0_amd64.deb"
)";
constexpr const char *kFakeAptCache = R"(#!/bin/sh
case $1 in
depends) printf 'linux-image-cloud-amd64\n  Depends: linux-image-%s-unsigned\n' "$FAKE_VERSION" ;;
show) printf 'Package: %s\nVersion: 1.0\nSHA256: %s\n\n' "${2%%=*}" "$FAKE_SHA" ;;
esac
)";
constexpr const char *kFakeDepmod = R"(#!/bin/sh
while [ $# -gt 1 ]; do case $1 in -b) base=$2; shift 2 ;; -F) shift 2 ;; *) shift ;; esac; done
echo 'kernel/drivers/fake.ko:' >"$base/lib/modules/$1/modules.dep"
)";

class ScriptSafety : public ::testing::Test {
  protected:
    void SetUp() override {
        cache_ = dir_ / "cache";
        victim_ = dir_ / "victim";
        spit(victim_, "precious\n");
        fs::create_directories(dir_ / "bin");
        auto exec = fs::perms::owner_all;
        spit(dir_ / "bin" / "apt-get", kFakeAptGet, exec);
        spit(dir_ / "bin" / "apt-cache", kFakeAptCache, exec);
        spit(dir_ / "bin" / "depmod", kFakeDepmod, exec);
    }
    void TearDown() override {
        // A test may have given the cache away.
        [[maybe_unused]] int rc = ::chown(cache_.c_str(), ::geteuid(), ::getegid());
    }

    // `cmd` run by bash in the scratch directory with the stand-ins first in
    // PATH and the cache in the scratch directory.
    ScriptRun run(const std::string &cmd) {
        std::string script =
            "cd '" + dir_.string() + "' && export PATH='" + (dir_ / "bin").string() +
            "':$PATH LOCKWATCH_CACHE='" + cache_.string() + "' FAKE_LOG='" +
            (dir_ / "apt.log").string() + "' FAKE_DEB='" + (dir_ / "fake.deb").string() +
            "' FAKE_VERSION=" + kVersion + " FAKE_SHA=" + fake_sha_ + " && { " + cmd + "; }";
        return lockwatch::test_support::run_shell("bash -c " + quote(script), dir_);
    }
    static std::string quote(const std::string &s) {
        std::string q = "'";
        for (char c : s) {
            q += c == '\'' ? std::string("'\\''") : std::string(1, c);
        }
        return q + "'";
    }
    static std::string tool(const std::string &name) {
        return quote(std::string(LOCKWATCH_SOURCE_DIR) + "/tools/" + name);
    }

    // A linux-image package as Debian builds it: the kernel's files under
    // boot/, a module, and md5sums of them all. Its SHA256 is what the
    // apt-cache stand-in gives from now on.
    void build_package() {
        fs::path root = dir_ / "pkg";
        std::string v = kVersion;
        fs::create_directories(root / "DEBIAN");
        fs::create_directories(root / "boot");
        fs::create_directories(root / "lib/modules" / v / "kernel/drivers");
        spit(root / "boot" / ("vmlinuz-" + v), "the kernel\n");
        spit(root / "boot" / ("System.map-" + v), "ffffffff81000000 T _text\n");
        spit(root / "boot" / ("config-" + v), "CONFIG_BPF=y\n");
        spit(root / "lib/modules" / v / "kernel/drivers/fake.ko", "a module\n");
        spit(root / "DEBIAN/control",
             "Package: linux-image-" + v +
                 "-unsigned\nVersion: 1.0\nArchitecture: amd64\n"
                 "Maintainer: nobody <nobody@example.org>\n"
                 "Description: a stand-in\n",
             fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                 fs::perms::others_read);
        ScriptRun r =
            run("(cd pkg && find boot lib -type f | sort | xargs md5sum >DEBIAN/md5sums) && "
                "dpkg-deb --root-owner-group -Zgzip --build pkg fake.deb >/dev/null && "
                "sha256sum <fake.deb | cut -d' ' -f1");
        ASSERT_EQ(r.status, 0) << r.err;
        ASSERT_EQ(r.out.size(), 65u) << r.out;
        fake_sha_ = r.out.substr(0, 64);
    }
    fs::path entry() const { return cache_ / "kernels" / ("debian-" + std::string(kVersion)); }
    ScriptRun fetch() { return run(tool("vm/fetch-kernel.sh") + " --version " + kVersion); }
    int downloads() {
        std::string log = slurp(dir_ / "apt.log");
        int n = 0;
        for (size_t at = 0; (at = log.find("apt-get download", at)) != std::string::npos; at++) {
            n++;
        }
        return n;
    }
    static bool one_line(const std::string &s) {
        return !s.empty() && s.find('\n') == s.size() - 1;
    }

    lockwatch::test_support::TempDir tmp_{"scripts"};
    const fs::path dir_ = tmp_.path();
    fs::path cache_, victim_;
    std::string fake_sha_ = std::string(64, '0');
};

// ---- cache directories ----------------------------------------------------

TEST_F(ScriptSafety, ACacheOfAnotherUserIsRefused) {
    if (::geteuid() != 0) {
        GTEST_SKIP() << "needs root to give a directory to another user";
    }
    fs::create_directory(cache_);
    ASSERT_EQ(::chown(cache_.c_str(), kNobody, kNobody), 0);
    ScriptRun r = fetch();
    EXPECT_EQ(r.status, 3);
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("refusing to use " + cache_.string() + ": it belongs to uid 65534"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("LOCKWATCH_CACHE=DIR"), std::string::npos) << "says what to do: " << r.err;
    EXPECT_FALSE(fs::exists(cache_ / "kernels")) << "wrote into it anyway";
}

TEST_F(ScriptSafety, AWorldWritableCacheIsRefused) {
    fs::create_directory(cache_);
    fs::permissions(cache_, fs::perms::all);
    ScriptRun r = fetch();
    EXPECT_EQ(r.status, 3);
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("it is writable by group or others (mode 0777); run chmod go-w"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(cache_ / "kernels"));
}

TEST_F(ScriptSafety, ACacheInADirectoryOthersCanWriteIsRefused) {
    // Whoever can write the directory above can rename the cache away and
    // put their own in its place; /tmp's sticky bit prevents that.
    fs::create_directory(dir_ / "open");
    fs::permissions(dir_ / "open", fs::perms::all);
    cache_ = dir_ / "open" / "cache";
    ScriptRun r = fetch();
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.err.find((dir_ / "open").string() +
                         " above it is writable by group or others without the sticky bit"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(cache_)) << "made the cache there anyway";
}

TEST_F(ScriptSafety, ANewCacheIsPrivate) {
    cache_ = dir_ / "fresh" / "cache";
    fetch();  // the download fails: no package yet
    EXPECT_EQ(mode_of(dir_ / "fresh"), 0700u);
    EXPECT_EQ(mode_of(cache_), 0700u);
    EXPECT_EQ(mode_of(cache_ / "kernels"), 0700u);
}

TEST_F(ScriptSafety, APlantedLinkForTheVersionMemoIsNotFollowed) {
    fs::create_directories(cache_ / "kernels");
    fs::permissions(cache_, fs::perms::owner_all);
    fs::permissions(cache_ / "kernels", fs::perms::owner_all);
    fs::create_symlink(victim_, cache_ / "kernels" / ".debian-current");
    ScriptRun r = run(tool("vm/fetch-kernel.sh"));  // resolves the version: writes the memo
    EXPECT_EQ(r.status, 3);
    EXPECT_EQ(r.err, "fetch-kernel.sh: refusing to write " +
                         (cache_ / "kernels" / ".debian-current").string() +
                         ": it is a symbolic link; remove it\n");
    EXPECT_EQ(slurp(victim_), "precious\n");
}

// ---- Debian's kernel package ----------------------------------------------

TEST_F(ScriptSafety, ADownloadIsCheckedAgainstAptsSha256AndKept) {
    ASSERT_NO_FATAL_FAILURE(build_package());
    ScriptRun r = fetch();
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, entry().string() + "\n");
    EXPECT_EQ(slurp(entry() / "vmlinuz"), "the kernel\n");
    EXPECT_EQ(slurp(entry() / "package.sha256"), fake_sha_ + "  package.deb\n");
    EXPECT_TRUE(fs::is_regular_file(entry() / "package.deb"));
    EXPECT_EQ(downloads(), 1);

    r = fetch();  // from the cache, checked again, no download
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, entry().string() + "\n");
    EXPECT_EQ(downloads(), 1);
}

TEST_F(ScriptSafety, ADownloadWithAnotherSha256IsNotUsed) {
    ASSERT_NO_FATAL_FAILURE(build_package());
    std::string right = fake_sha_;
    fake_sha_ = std::string(64, 'a');
    ScriptRun r = fetch();
    EXPECT_EQ(r.status, 3);
    EXPECT_TRUE(one_line(r.err.substr(r.err.find('\n') + 1))) << r.err;  // after "downloading"
    EXPECT_NE(r.err.find("has SHA256 " + right + ", not the " + fake_sha_ +
                         " of apt's metadata: a corrupt or tampered download, not used"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(entry())) << "kept a package apt does not vouch for";
}

TEST_F(ScriptSafety, ACachedKernelThatChangedIsAnErrorNotReused) {
    ASSERT_NO_FATAL_FAILURE(build_package());
    ASSERT_EQ(fetch().status, 0);
    std::ofstream(entry() / "vmlinuz", std::ios::app) << "planted\n";
    ScriptRun r = fetch();
    EXPECT_EQ(r.status, 3);
    EXPECT_TRUE(one_line(r.err)) << r.err;
    EXPECT_NE(r.err.find("the cached kernel changed since it was fetched: vmlinuz in " +
                         entry().string() + " does not match package.deb; remove " +
                         entry().string() + " to fetch it again"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(downloads(), 1) << "fetched it again silently";
    EXPECT_EQ(slurp(entry() / "vmlinuz"), "the kernel\nplanted\n");

    // A module the package does not have.
    spit(entry() / "vmlinuz", "the kernel\n");
    fs::path extra = entry() / "modules/lib/modules" / kVersion / "kernel/evil.ko";
    spit(extra, "x");
    r = fetch();
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.err.find(extra.string() + " is not part of package.deb"), std::string::npos)
        << r.err;
    fs::remove(extra);
    EXPECT_EQ(fetch().status, 0);

    // The package itself.
    std::ofstream(entry() / "package.deb", std::ios::app) << "x";
    r = fetch();
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.err.find("package.deb has SHA256"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("not the " + fake_sha_ + " verified when it was fetched"),
              std::string::npos)
        << r.err;
}

TEST_F(ScriptSafety, AKernelCachedWithoutItsPackageIsCheckedAgainstIt) {
    // As an older fetch-kernel.sh left it: unpacked files only.
    ASSERT_NO_FATAL_FAILURE(build_package());
    ASSERT_EQ(fetch().status, 0);
    fs::remove(entry() / "package.deb");
    fs::remove(entry() / "package.sha256");
    ScriptRun r = fetch();
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(slurp(entry() / "package.sha256"), fake_sha_ + "  package.deb\n");

    fs::remove(entry() / "package.deb");
    fs::remove(entry() / "package.sha256");
    spit(entry() / "config", "CONFIG_BPF=n\n");
    r = fetch();
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.err.find("the cached kernel does not match"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("config in " + entry().string()), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(entry() / "package.deb"));
}

// ---- files the VM scripts write --------------------------------------------

TEST_F(ScriptSafety, RunVmNeverWritesTheConsoleLogThroughALink) {
    spit(dir_ / "bzImage", "not booted\n");
    fs::create_symlink(victim_, dir_ / "console.log");
    ScriptRun r = run("LOCKWATCH_QEMU=/bin/true " + tool("vm/run-vm.sh") +
                      " --kernel bzImage --accel tcg --console console.log -- true");
    EXPECT_EQ(r.status, 240);
    EXPECT_EQ(r.err,
              "lockwatch-vm: error: --console: refusing to write console.log: it is a symbolic "
              "link; remove it\n");
    EXPECT_EQ(slurp(victim_), "precious\n");
}

TEST_F(ScriptSafety, MakeInitramfsNeverWritesThroughALink) {
    fs::create_symlink(victim_, dir_ / "initramfs.cpio");
    std::ofstream(dir_ / "token") << "0123456789abcdef0123456789abcdef\n";
    const std::string make = tool("vm/make-initramfs.sh") + " --token-file token";
    ScriptRun r = run(make + " --out initramfs.cpio --run true");
    EXPECT_EQ(r.status, 3);
    EXPECT_EQ(r.err,
              "make-initramfs.sh: refusing to write initramfs.cpio: it is a symbolic link; "
              "remove it\n");
    EXPECT_EQ(slurp(victim_), "precious\n");

    fs::remove(dir_ / "initramfs.cpio");
    r = run(make + " --out initramfs.cpio --run true");
    if (r.err.find("not found") != std::string::npos) {
        GTEST_SKIP() << r.err;  // busybox or cpio missing: tools/setup.sh
    }
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(mode_of(dir_ / "initramfs.cpio"), 0644u);
    for (const auto &entry : fs::directory_iterator(dir_)) {
        EXPECT_EQ(entry.path().filename().string().find("initramfs.cpio."), std::string::npos)
            << "left " << entry.path();
    }
}

TEST_F(ScriptSafety, BuildModuleRefusesAnOutDirectoryOthersCanWrite) {
    fs::create_directory(dir_ / "module");
    fs::permissions(dir_ / "module", fs::perms::all);
    ScriptRun r = run(tool("kmod/build-module.sh") + " --version " + kVersion + " --out module");
    EXPECT_EQ(r.status, 3);
    EXPECT_NE(r.err.find("build-module.sh: --out: refusing to use " + (dir_ / "module").string() +
                         ": it is writable by group or others"),
              std::string::npos)
        << r.err;

    fs::permissions(dir_ / "module", fs::perms::owner_all);
    fs::create_symlink(victim_, dir_ / "module" / "build.log");
    r = run(tool("kmod/build-module.sh") + " --version " + kVersion + " --out module");
    EXPECT_EQ(r.status, 3);
    EXPECT_EQ(r.err,
              "build-module.sh: refusing to write module/build.log: it is a symbolic link; "
              "remove it\n");
    EXPECT_EQ(slurp(victim_), "precious\n");
}

TEST_F(ScriptSafety, BuildKernelNeverWritesItsLockOrLogThroughALink) {
    // A source tarball of its own keeps the real one and its cache key out.
    spit(dir_ / "linux.tar.xz", "not a tarball\n");
    fs::create_directories(cache_ / "kernels");
    fs::permissions(cache_, fs::perms::owner_all);
    fs::permissions(cache_ / "kernels", fs::perms::owner_all);
    fs::create_symlink(victim_, cache_ / "kernels" / ".build-seed.lock");
    ScriptRun r =
        run("LOCKWATCH_LINUX_SOURCE=linux.tar.xz " + tool("kernel/build-kernel.sh") + " seed");
    if (r.err.find("not found: apt-get install") != std::string::npos) {
        GTEST_SKIP() << r.err;  // the kernel build's tools are missing: tools/setup.sh
    }
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "build-kernel: error: refusing to write " +
                         (cache_ / "kernels" / ".build-seed.lock").string() +
                         ": it is a symbolic link; remove it\n");
    EXPECT_EQ(slurp(victim_), "precious\n");

    fs::remove(cache_ / "kernels" / ".build-seed.lock");
    fs::permissions(cache_ / "kernels", fs::perms::all);
    r = run("LOCKWATCH_LINUX_SOURCE=linux.tar.xz " + tool("kernel/build-kernel.sh") + " seed");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.err.find("refusing to use " + (cache_ / "kernels").string() +
                         ": it is writable by group or others"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(cache_ / "kernels" / ".build-seed.lock")) << "wrote into it anyway";
}

// build-kernel.sh hashes its own text into the cache key, all but the lines
// between its file-safety markers: those can change without a rebuild of
// the cached kernels; any other line changes the key.
TEST_F(ScriptSafety, BuildKernelKeyLeavesOutTheFileSafetyLines) {
    spit(dir_ / "linux.tar.xz", "not a tarball\n");
    auto key_of = [&](const std::string &edit) {
        ScriptRun r =
            run("rm -rf tools cache && mkdir -p tools/kernel && cp -r " + tool("lib") +
                " tools/ && cp " + tool("kernel") + "/* tools/kernel/ && " + edit +
                " && LOCKWATCH_LINUX_SOURCE=linux.tar.xz tools/kernel/build-kernel.sh seed");
        size_t at = r.err.find("(key ");
        return at == std::string::npos ? r.err : r.err.substr(at + 5, 16);
    };
    std::string key = key_of("true");
    if (key.find("not found: apt-get install") != std::string::npos) {
        GTEST_SKIP() << key;  // the kernel build's tools are missing: tools/setup.sh
    }
    ASSERT_EQ(key.size(), 16u) << key;
    EXPECT_EQ(key_of("sed -i '/^# <<< file safety/i : a new check' tools/kernel/build-kernel.sh"),
              key);
    EXPECT_NE(key_of("sed -i '/^# <<< file safety/a : a build step' tools/kernel/build-kernel.sh"),
              key);
}

}  // namespace
