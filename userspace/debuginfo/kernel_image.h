// What a kernel image says about itself without being booted, and the
// vmlinux with debug info that belongs to it.
//
// `lockwatch vm` puts file:line on the stacks a guest sends with a vmlinux
// found on the host. A vmlinux of another build gives plausible but wrong
// places, and one taken from wherever lockwatch happens to run could be
// anyone's file: a vmlinux is used only when its GNU build id is the guest
// kernel's.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace lockwatch {

// The GNU build id (hex) in an ELF file's notes; empty when it has none or
// is not an ELF file.
std::string elf_build_id(const std::string &path);
std::string elf_build_id(std::span<const unsigned char> image);

// The build id of the kernel that an x86 bzImage boots, from the build-id
// note of the compressed vmlinux inside it (unpacked with gzip, xz, zstd,
// lz4, bzip2 or lzop, whichever the kernel was built with), or of an ELF
// vmlinux given as the image. Empty, with *why set to one line, when it
// cannot be read.
std::string kernel_image_build_id(const std::string &path, std::string *why);

// uname -r of the kernel a bzImage boots, from its setup header ("6.1.0-57-
// cloud-amd64"); empty for anything else.
std::string kernel_image_release(const std::string &path);

// The kernel image qemu boots for --kernel PATH: PATH itself, or for a
// directory the first of vmlinuz, bzImage and arch/x86/boot/bzImage in it
// (as tools/vm/run-vm.sh picks it); empty when there is none.
std::string kernel_image_in(const std::string &path);

struct VmlinuxChoice {
    std::string path;                   // the vmlinux to use; empty: none
    std::vector<std::string> warnings;  // one line each
    std::string error;                  // set when an explicit --vmlinux is not the image's
};

// --vmlinux auto|none|PATH for a guest booting `image`. auto looks only in
// known places: beside the image (a kernel cache entry keeps its vmlinux
// there), at the root of a kernel build tree the image is in, and in
// debug_root's boot/vmlinux-<release> and lib/modules/<release>/vmlinux
// (Debian's -dbg packages). It takes the first whose build id is the
// image's; each other one is skipped with a warning. An explicit PATH with
// another build id is an error.
VmlinuxChoice choose_vmlinux(const std::string &option, const std::string &image,
                             const std::string &debug_root = "/usr/lib/debug");

}  // namespace lockwatch
