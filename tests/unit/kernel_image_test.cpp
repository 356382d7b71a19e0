// Build ids of kernel images and vmlinux files, and which vmlinux
// `lockwatch vm --vmlinux` takes: a small program with debug info
// (debuginfo_fixture.c) stands in for a vmlinux, the same linked with a fixed
// build id for another kernel's vmlinux, and a bzImage is made around the
// first, compressed as kernels are.
#include "debuginfo/kernel_image.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.h"

#include "debuginfo/kernel_debuginfo.h"

namespace lockwatch {
namespace {

namespace fs = std::filesystem;

constexpr const char *kOtherBuildId = "0123456789abcdef0123456789abcdef01234567";

std::vector<unsigned char> slurp(const fs::path &p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<unsigned char>((std::istreambuf_iterator<char>(in)),
                                      std::istreambuf_iterator<char>());
}

void spit(const fs::path &p, const std::vector<unsigned char> &bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
}

// An x86 bzImage as the boot protocol (2.15) lays it out: setup sectors
// with the header, the kernel version string, then the compressed kernel.
std::vector<unsigned char> make_bzimage(const std::vector<unsigned char> &payload) {
    std::vector<unsigned char> b(1024, 0);
    auto put = [&](size_t at, uint32_t v, size_t bytes) {
        for (size_t i = 0; i < bytes; i++) {
            b[at + i] = static_cast<unsigned char>(v >> (8 * i));
        }
    };
    b[0x1f1] = 1;  // one setup sector after the boot sector: the payload starts at 1024
    b[0x1fe] = 0x55;
    b[0x1ff] = 0xaa;
    std::memcpy(&b[0x202], "HdrS", 4);
    put(0x206, 0x020f, 2);
    put(0x20e, 0x100, 2);  // the version string, at 0x200 + 0x100
    const char version[] = "6.1.0-test (builder@host) #1 SMP";
    std::memcpy(&b[0x300], version, sizeof(version));
    put(0x248, 0, 4);
    put(0x24c, static_cast<uint32_t>(payload.size()), 4);
    // The payload, then what follows it in a real image.
    b.resize(1024 + payload.size() + 16, 0);
    std::copy(payload.begin(), payload.end(), b.begin() + 1024);
    return b;
}

class KernelImageTest : public ::testing::Test {
  protected:
    void SetUp() override {
        fixture_id_ = KernelDebugInfo::open(DEBUGINFO_FIXTURE)->build_id();
        ASSERT_EQ(fixture_id_.size(), 40u);
    }
    // The fixture compressed by `compress` (reading stdin, writing stdout)
    // inside a bzImage at `image`; false when that compressor is missing.
    bool bzimage_of_fixture(const std::string &compress, const fs::path &image) {
        fs::path packed = dir_ / "payload";
        std::string cmd = compress + " <'" DEBUGINFO_FIXTURE "' >'" + packed.string() + "'";
        if (std::system(cmd.c_str()) != 0) {
            return false;
        }
        spit(image, make_bzimage(slurp(packed)));
        fs::remove(packed);
        return true;
    }

    test_support::TempDir tmp_{"kimage"};
    const fs::path dir_ = tmp_.path();
    std::string fixture_id_;
};

TEST_F(KernelImageTest, ElfBuildIdIsTheLinkersBuildId) {
    EXPECT_EQ(elf_build_id(DEBUGINFO_FIXTURE), fixture_id_);
    EXPECT_EQ(elf_build_id(DEBUGINFO_FIXTURE_OTHER), kOtherBuildId);
    EXPECT_EQ(elf_build_id(DEBUGINFO_FIXTURE_SOURCE), "") << "not an ELF file";
    EXPECT_EQ(elf_build_id("/nonexistent/vmlinux"), "");
}

TEST_F(KernelImageTest, BzImageGivesTheBuildIdOfTheKernelInside) {
    // gzip is the kernel's default, xz what the test kernels use, lz4 Debian's.
    for (const char *compress : {"gzip -n -c", "xz -c --check=crc32", "lz4 -l -c"}) {
        fs::path image = dir_ / "bzImage";
        if (!bzimage_of_fixture(compress, image)) {
            ADD_FAILURE() << "cannot run " << compress;
            continue;
        }
        std::string why;
        EXPECT_EQ(kernel_image_build_id(image, &why), fixture_id_) << compress << ": " << why;
        EXPECT_EQ(kernel_image_release(image), "6.1.0-test");
    }
}

TEST_F(KernelImageTest, AnElfKernelIsItsOwnImage) {
    std::string why;
    EXPECT_EQ(kernel_image_build_id(DEBUGINFO_FIXTURE, &why), fixture_id_) << why;
    EXPECT_EQ(kernel_image_release(DEBUGINFO_FIXTURE), "");
}

TEST_F(KernelImageTest, WhatIsNoKernelSaysSo) {
    std::string why;
    EXPECT_EQ(kernel_image_build_id(DEBUGINFO_FIXTURE_SOURCE, &why), "");
    EXPECT_NE(why.find("neither an x86 bzImage nor an ELF kernel"), std::string::npos) << why;
    spit(dir_ / "bzImage", make_bzimage({'n', 'o', 'n', 'e'}));
    EXPECT_EQ(kernel_image_build_id(dir_ / "bzImage", &why), "");
    EXPECT_NE(why.find("format lockwatch does not know"), std::string::npos) << why;
}

TEST_F(KernelImageTest, AutoTakesTheVmlinuxBesideTheImageWhenItsBuildIdMatches) {
    fs::path image = dir_ / "bzImage";
    ASSERT_TRUE(bzimage_of_fixture("gzip -n -c", image));
    fs::copy_file(DEBUGINFO_FIXTURE, dir_ / "vmlinux");
    VmlinuxChoice choice = choose_vmlinux("auto", image, (dir_ / "debug").string());
    EXPECT_EQ(choice.path, (dir_ / "vmlinux").string());
    EXPECT_TRUE(choice.warnings.empty()) << choice.warnings[0];
    EXPECT_TRUE(choice.error.empty());
}

TEST_F(KernelImageTest, AutoIgnoresAVmlinuxOfAnotherBuildWithOneWarning) {
    fs::path image = dir_ / "bzImage";
    ASSERT_TRUE(bzimage_of_fixture("gzip -n -c", image));
    fs::copy_file(DEBUGINFO_FIXTURE_OTHER, dir_ / "vmlinux");
    VmlinuxChoice choice = choose_vmlinux("auto", image, (dir_ / "debug").string());
    EXPECT_EQ(choice.path, "") << "a vmlinux of another kernel was used";
    ASSERT_EQ(choice.warnings.size(), 1u);
    EXPECT_EQ(choice.warnings[0], "ignoring " + (dir_ / "vmlinux").string() + ": build id " +
                                      kOtherBuildId + " is not the guest kernel's (" + fixture_id_ +
                                      ")");
    EXPECT_TRUE(choice.error.empty()) << "auto never fails the run";
}

TEST_F(KernelImageTest, AutoLooksInTheDebugDirectoryByRelease) {
    fs::create_directories(dir_ / "kernel");
    fs::path image = dir_ / "kernel" / "vmlinuz";
    ASSERT_TRUE(bzimage_of_fixture("gzip -n -c", image));
    fs::path debug = dir_ / "debug";
    fs::create_directories(debug / "boot");
    fs::create_directories(debug / "lib" / "modules" / "6.1.0-test");
    fs::copy_file(DEBUGINFO_FIXTURE_OTHER, debug / "boot" / "vmlinux-6.1.0-test");
    fs::copy_file(DEBUGINFO_FIXTURE, debug / "lib" / "modules" / "6.1.0-test" / "vmlinux");
    VmlinuxChoice choice = choose_vmlinux("auto", image, debug.string());
    EXPECT_EQ(choice.path, (debug / "lib" / "modules" / "6.1.0-test" / "vmlinux").string());
    ASSERT_EQ(choice.warnings.size(), 1u) << "the wrong one in boot/";
    EXPECT_NE(choice.warnings[0].find("vmlinux-6.1.0-test"), std::string::npos);
}

TEST_F(KernelImageTest, AutoNeverLooksInTheWorkingDirectory) {
    fs::create_directories(dir_ / "kernel");
    fs::path image = dir_ / "kernel" / "vmlinuz";
    ASSERT_TRUE(bzimage_of_fixture("gzip -n -c", image));
    fs::create_directories(dir_ / "cwd");
    fs::copy_file(DEBUGINFO_FIXTURE, dir_ / "cwd" / "vmlinux");  // even the right one
    fs::path old = fs::current_path();
    fs::current_path(dir_ / "cwd");
    VmlinuxChoice choice = choose_vmlinux("auto", image, (dir_ / "debug").string());
    fs::current_path(old);
    EXPECT_EQ(choice.path, "");
    EXPECT_TRUE(choice.warnings.empty());
}

TEST_F(KernelImageTest, AnExplicitVmlinuxOfAnotherBuildIsAnError) {
    fs::path image = dir_ / "bzImage";
    ASSERT_TRUE(bzimage_of_fixture("gzip -n -c", image));
    VmlinuxChoice wrong = choose_vmlinux(DEBUGINFO_FIXTURE_OTHER, image);
    EXPECT_EQ(wrong.path, "");
    EXPECT_NE(wrong.error.find("is not the guest kernel's vmlinux"), std::string::npos)
        << wrong.error;
    VmlinuxChoice right = choose_vmlinux(DEBUGINFO_FIXTURE, image);
    EXPECT_EQ(right.path, DEBUGINFO_FIXTURE);
    EXPECT_TRUE(right.error.empty()) << right.error;
    EXPECT_EQ(choose_vmlinux("none", image).path, "");
}

TEST_F(KernelImageTest, KernelImageInADirectoryIsFoundAsRunVmFindsIt) {
    fs::create_directories(dir_ / "tree" / "arch" / "x86" / "boot");
    spit(dir_ / "tree" / "arch" / "x86" / "boot" / "bzImage", {1});
    EXPECT_EQ(kernel_image_in((dir_ / "tree").string()),
              (dir_ / "tree" / "arch" / "x86" / "boot" / "bzImage").string());
    spit(dir_ / "tree" / "vmlinuz", {1});
    EXPECT_EQ(kernel_image_in((dir_ / "tree").string()), (dir_ / "tree" / "vmlinuz").string());
    EXPECT_EQ(kernel_image_in((dir_ / "none").string()), (dir_ / "none").string());
    fs::create_directories(dir_ / "empty");
    EXPECT_EQ(kernel_image_in((dir_ / "empty").string()), "");
}

}  // namespace
}  // namespace lockwatch
