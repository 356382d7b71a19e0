#include "debuginfo/kernel_image.h"

#include <elf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>

#include <fmt/format.h>

extern char **environ;

namespace lockwatch {

namespace {

namespace fs = std::filesystem;

// Larger than any vmlinux a bzImage carries (the stripped one inside is a
// few tens of MiB): a bound on what a decompressor may make us hold.
constexpr size_t kMaxUnpacked = size_t{1} << 30;

std::string to_hex(const unsigned char *bytes, size_t n) {
    std::string out;
    for (size_t i = 0; i < n; i++) {
        out += fmt::format("{:02x}", bytes[i]);
    }
    return out;
}

// The build id in the notes of `data` (an Elf_Data of type ELF_T_NHDR).
std::string build_id_in_notes(Elf_Data *data) {
    GElf_Nhdr nhdr;
    size_t pos = 0, name_at = 0, desc_at = 0;
    while (data && pos < data->d_size &&
           (pos = gelf_getnote(data, pos, &nhdr, &name_at, &desc_at)) > 0) {
        const auto *bytes = static_cast<const unsigned char *>(data->d_buf);
        if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == 4 &&
            std::memcmp(bytes + name_at, "GNU", 4) == 0 && nhdr.n_descsz > 0) {
            return to_hex(bytes + desc_at, nhdr.n_descsz);
        }
    }
    return "";
}

// The build id from an opened ELF: its PT_NOTE segments, else (an object
// without program headers) its SHT_NOTE sections.
std::string build_id_of(Elf *elf) {
    if (!elf || elf_kind(elf) != ELF_K_ELF) {
        return "";
    }
    size_t phnum = 0;
    if (elf_getphdrnum(elf, &phnum) == 0) {
        for (size_t i = 0; i < phnum; i++) {
            GElf_Phdr phdr;
            if (gelf_getphdr(elf, static_cast<int>(i), &phdr) && phdr.p_type == PT_NOTE) {
                Elf_Data *data =
                    elf_getdata_rawchunk(elf, static_cast<int64_t>(phdr.p_offset),
                                         static_cast<size_t>(phdr.p_filesz), ELF_T_NHDR);
                if (std::string id = build_id_in_notes(data); !id.empty()) {
                    return id;
                }
            }
        }
    }
    for (Elf_Scn *scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
        GElf_Shdr shdr;
        if (gelf_getshdr(scn, &shdr) && shdr.sh_type == SHT_NOTE) {
            if (std::string id = build_id_in_notes(elf_getdata(scn, nullptr)); !id.empty()) {
                return id;
            }
        }
    }
    return "";
}

// The first `limit` bytes of a file (a bzImage is a few MiB).
std::optional<std::vector<unsigned char>> read_file(const std::string &path,
                                                    size_t limit = kMaxUnpacked) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) {
        return std::nullopt;
    }
    std::vector<unsigned char> bytes(std::min(static_cast<size_t>(in.tellg()), limit));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char *>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()))) {
        return std::nullopt;
    }
    return bytes;
}

uint32_t le(const std::vector<unsigned char> &b, size_t at, size_t bytes) {
    uint32_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        v |= static_cast<uint32_t>(b[at + i]) << (8 * i);
    }
    return v;
}

// The x86 boot protocol's setup header (Documentation/arch/x86/boot.rst).
bool is_bzimage(const std::vector<unsigned char> &b) {
    return b.size() >= 0x250 && std::memcmp(b.data() + 0x202, "HdrS", 4) == 0;
}

// The compressed vmlinux a bzImage carries (protocol 2.08 and later).
std::optional<std::span<const unsigned char>> bzimage_payload(const std::vector<unsigned char> &b) {
    if (!is_bzimage(b) || le(b, 0x206, 2) < 0x208) {
        return std::nullopt;
    }
    size_t setup_sects = b[0x1f1] ? b[0x1f1] : 4;
    size_t start = (setup_sects + 1) * 512 + le(b, 0x248, 4);
    size_t length = le(b, 0x24c, 4);
    if (length == 0 || start > b.size() || length > b.size() - start) {
        return std::nullopt;
    }
    return std::span<const unsigned char>(b.data() + start, length);
}

// The program that unpacks a payload, by its magic bytes, as the kernel's
// scripts/extract-vmlinux knows them.
std::vector<const char *> decompressor_for(std::span<const unsigned char> payload) {
    struct Format {
        std::string_view magic;
        std::vector<const char *> argv;
    };
    static const std::vector<Format> formats = {
        {std::string_view("\x1f\x8b", 2), {"gzip", "-dc"}},
        {std::string_view("\xfd"
                          "7zXZ\0",
                          6),
         {"xz", "-dc"}},
        {std::string_view("\x28\xb5\x2f\xfd", 4), {"zstd", "-dc"}},
        {std::string_view("\x02\x21\x4c\x18", 4), {"lz4", "-dc"}},
        {std::string_view("BZh", 3), {"bzip2", "-dc"}},
        {std::string_view("\x5d\x00\x00", 3), {"xz", "--format=lzma", "-dc"}},
        {std::string_view("\x89LZO", 4), {"lzop", "-dc"}},
    };
    for (const Format &f : formats) {
        if (payload.size() >= f.magic.size() &&
            std::memcmp(payload.data(), f.magic.data(), f.magic.size()) == 0) {
            return f.argv;
        }
    }
    return {};
}

// What `argv` writes on stdout for `input` on stdin (a memfd: no second
// thread to feed a pipe). Exit status and stderr are ignored: gzip, for
// one, complains about the bytes after its stream but unpacks it all.
std::optional<std::vector<unsigned char>> run_filter(std::vector<const char *> argv,
                                                     std::span<const unsigned char> input,
                                                     std::string *why) {
    int in = memfd_create("lockwatch-payload", MFD_CLOEXEC);
    if (in < 0 || write(in, input.data(), input.size()) != static_cast<ssize_t>(input.size()) ||
        lseek(in, 0, SEEK_SET) != 0) {
        *why = fmt::format("cannot stage the compressed kernel: {}", std::strerror(errno));
        if (in >= 0) {
            close(in);
        }
        return std::nullopt;
    }
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        *why = fmt::format("pipe: {}", std::strerror(errno));
        close(in);
        return std::nullopt;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, const_cast<char *const *>(argv.data()),
                          environ);
    posix_spawn_file_actions_destroy(&actions);
    close(in);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        *why = fmt::format("cannot run {}: {}", argv[0], std::strerror(rc));
        return std::nullopt;
    }
    std::vector<unsigned char> unpacked;
    unsigned char buf[1 << 16];
    while (unpacked.size() < kMaxUnpacked) {
        ssize_t n = read(out[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        unpacked.insert(unpacked.end(), buf, buf + n);
    }
    close(out[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return unpacked;
}

}  // namespace

std::string elf_build_id(const std::string &path) {
    elf_version(EV_CURRENT);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return "";
    }
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
    std::string id = build_id_of(elf);
    elf_end(elf);
    close(fd);
    return id;
}

std::string elf_build_id(std::span<const unsigned char> image) {
    elf_version(EV_CURRENT);
    // libelf reads the buffer in place (ELF_C_READ_MMAP semantics); it does
    // not write to it.
    Elf *elf =
        elf_memory(const_cast<char *>(reinterpret_cast<const char *>(image.data())), image.size());
    std::string id = build_id_of(elf);
    elf_end(elf);
    return id;
}

std::string kernel_image_build_id(const std::string &path, std::string *why) {
    std::optional<std::vector<unsigned char>> head = read_file(path, SELFMAG);
    if (head && head->size() == SELFMAG && std::memcmp(head->data(), ELFMAG, SELFMAG) == 0) {
        std::string id = elf_build_id(path);  // mapped: a vmlinux can be hundreds of MiB
        if (id.empty()) {
            *why = fmt::format("{} has no build id", path);
        }
        return id;
    }
    std::optional<std::vector<unsigned char>> image = read_file(path);
    if (!image) {
        *why = fmt::format("cannot read {}", path);
        return "";
    }
    std::optional<std::span<const unsigned char>> payload = bzimage_payload(*image);
    if (!payload) {
        *why = fmt::format("{} is neither an x86 bzImage nor an ELF kernel", path);
        return "";
    }
    std::vector<const char *> argv = decompressor_for(*payload);
    if (argv.empty()) {
        *why = fmt::format(
            "{}: the kernel inside is compressed in a format lockwatch does not know", path);
        return "";
    }
    std::optional<std::vector<unsigned char>> vmlinux = run_filter(argv, *payload, why);
    if (!vmlinux) {
        return "";
    }
    std::string id = elf_build_id(*vmlinux);
    if (id.empty()) {
        *why = fmt::format("{}: {} did not unpack a kernel with a build id from it", path, argv[0]);
    }
    return id;
}

std::string kernel_image_release(const std::string &path) {
    // The version string lies in the setup sectors, within the first 64 KiB.
    std::optional<std::vector<unsigned char>> image = read_file(path, 0x10000);
    if (!image || !is_bzimage(*image)) {
        return "";
    }
    size_t at = 0x200 + le(*image, 0x20e, 2);
    if (le(*image, 0x20e, 2) == 0 || at >= image->size()) {
        return "";
    }
    std::string release;
    while (at < image->size() && (*image)[at] != 0 && (*image)[at] != ' ' && release.size() < 64) {
        release += static_cast<char>((*image)[at++]);
    }
    return release;
}

std::string kernel_image_in(const std::string &path) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
        return path;
    }
    for (const char *name : {"vmlinuz", "bzImage", "arch/x86/boot/bzImage"}) {
        if (fs::is_regular_file(fs::path(path) / name, ec)) {
            return (fs::path(path) / name).string();
        }
    }
    return "";
}

namespace {

// Where --vmlinux auto looks for `image`'s vmlinux, in order.
std::vector<fs::path> vmlinux_places(const std::string &image, const std::string &debug_root) {
    std::error_code ec;
    fs::path dir = fs::absolute(image, ec).parent_path();
    std::vector<fs::path> places = {dir / "vmlinux"};
    // A build tree's arch/x86/boot/bzImage: its vmlinux is at the top.
    if (dir.filename() == "boot" && dir.parent_path().filename() == "x86" &&
        dir.parent_path().parent_path().filename() == "arch") {
        places.push_back(dir.parent_path().parent_path().parent_path() / "vmlinux");
    }
    if (std::string release = kernel_image_release(image); !release.empty()) {
        places.push_back(fs::path(debug_root) / "boot" / ("vmlinux-" + release));
        places.push_back(fs::path(debug_root) / "lib" / "modules" / release / "vmlinux");
    }
    return places;
}

}  // namespace

VmlinuxChoice choose_vmlinux(const std::string &option, const std::string &image,
                             const std::string &debug_root) {
    VmlinuxChoice choice;
    if (option == "none") {
        return choice;
    }
    std::vector<fs::path> candidates;
    std::error_code ec;
    if (option != "auto") {
        if (!fs::is_regular_file(option, ec)) {
            choice.path = option;  // opening it says what is wrong
            return choice;
        }
        candidates.push_back(option);
    } else {
        for (const fs::path &place : vmlinux_places(image, debug_root)) {
            if (fs::is_regular_file(place, ec)) {
                candidates.push_back(place);
            }
        }
    }
    if (candidates.empty()) {
        return choice;
    }
    std::string why;
    std::string guest = kernel_image_build_id(image, &why);
    if (guest.empty() && option != "auto") {
        choice.warnings.push_back(
            fmt::format("cannot check that {} belongs to the guest kernel: {}", option, why));
        choice.path = option;
        return choice;
    }
    for (const fs::path &candidate : candidates) {
        std::string id = elf_build_id(candidate.string());
        if (guest.empty()) {
            choice.warnings.push_back(
                fmt::format("not using {}: cannot read the guest kernel's build id: {}",
                            candidate.string(), why));
        } else if (id == guest) {
            choice.path = candidate.string();
            return choice;
        } else if (option != "auto") {
            choice.error =
                fmt::format("{} is not the guest kernel's vmlinux (build id {}, {} has {})", option,
                            id.empty() ? "none" : id, image, guest);
        } else {
            choice.warnings.push_back(
                fmt::format("ignoring {}: build id {} is not the guest kernel's ({})",
                            candidate.string(), id.empty() ? "none" : id, guest));
        }
    }
    return choice;
}

}  // namespace lockwatch
