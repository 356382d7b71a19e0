#include "state/fact_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/finding_names.h"
#include "engine/trace.h"

namespace lockwatch::state {
namespace {

constexpr const char *kFactsFile = "facts.trace";
constexpr const char *kReportedFile = "reported";
constexpr std::string_view kStateTag = "lockwatch run --state";
// The reported file: one line a finding, at most max_findings of them.
constexpr std::size_t kMaxReportedLine = 512;

[[noreturn]] void fail(const std::string &what) {
    throw std::runtime_error(what);
}

// The whole file; false when it cannot be read.
bool read_all(int fd, std::uint64_t size, std::string *out) {
    out->resize(size);
    std::uint64_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, out->data() + done, size - done, static_cast<off_t>(done));
        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            return false;
        }
        done += n > 0 ? static_cast<std::uint64_t>(n) : 0;
    }
    return true;
}

// Writes as much of `text` as it can; the bytes written, errno in *err.
std::size_t write_some(int fd, std::string_view text, int *err) {
    std::size_t done = 0;
    while (done < text.size()) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n == 0 || errno != EINTR) {
            *err = n == 0 ? EIO : errno;
            break;
        }
    }
    return done;
}

std::uint64_t file_size(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

std::string state_header(const KernelIdentity &kernel) {
    nlohmann::json header = nlohmann::json::parse(engine::trace_header_line());
    header["recorded_by"] = kStateTag;
    header["kernel_release"] = kernel.release;
    header["kernel_build_id"] = kernel.build_id;
    header["hostname"] = kernel.hostname;
    return header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

// Why a state header is not this kernel's; "" when it is.
std::string other_kernel(const std::string &line, const KernelIdentity &kernel) {
    nlohmann::json header = nlohmann::json::parse(line, nullptr, false);
    if (!header.is_object() || header.value("format", "") != engine::kTraceFormatName ||
        header.value("recorded_by", "") != kStateTag) {
        return "its first line is not a lockwatch state header";
    }
    std::string release = header.value("kernel_release", "");
    std::string build_id = header.value("kernel_build_id", "");
    if (release != kernel.release) {
        return fmt::format("its facts are of kernel {}", release);
    }
    if (!build_id.empty() && !kernel.build_id.empty() && build_id != kernel.build_id) {
        return fmt::format("its facts are of another build of {} (build id {})", release, build_id);
    }
    return "";
}

// A finding's line in the reported file, printable and bounded.
std::string reported_line(const engine::Finding &finding) {
    std::string line = fmt::format("{} {} {}", finding.signature,
                                   engine::finding_kind_name(finding.kind), finding.title);
    for (char &c : line) {
        c = static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c;
    }
    return line.substr(0, kMaxReportedLine - 1) + "\n";
}

bool is_signature(std::string_view text) {
    if (text.size() != 16) {
        return false;
    }
    for (char c : text) {
        if (!std::isxdigit(static_cast<unsigned char>(c))) {
            return false;
        }
    }
    return true;
}

}  // namespace

FactStore::FactStore(const std::string &dir, const KernelIdentity &kernel, StateLimits limits)
    : dir_(dir), kernel_(kernel), limits_(limits) {
    open_dir(dir);
    facts_fd_ = open_file(kFactsFile);
    reported_fd_ = open_file(kReportedFile);
    sync_dir();
}

// The files' names made durable (a new file, a rename), as their data is
// at each flush.
void FactStore::sync_dir() const {
    if (::fsync(dir_fd_) != 0) {
        fail(fmt::format("--state: cannot sync {}: {}", dir_, std::strerror(errno)));
    }
}

FactStore::~FactStore() {
    std::string error;
    flush(&error);
    for (int fd : {facts_fd_, reported_fd_, dir_fd_}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

void FactStore::open_dir(const std::string &dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        fail(fmt::format("--state: cannot make {}: {}", dir, std::strerror(errno)));
    }
    dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir_fd_ < 0) {
        fail(fmt::format("--state: refusing {}: {}", dir,
                         errno == ELOOP || errno == ENOTDIR
                             ? "it is a symbolic link or not a directory"
                             : std::strerror(errno)));
    }
    // Another user who can write in DIR could swap the files between our
    // checks and our writes: DIR must be ours alone to write.
    struct stat st {};
    if (::fstat(dir_fd_, &st) != 0 || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0) {
        fail(
            fmt::format("--state: refusing {}: it must belong to this user and be writable by "
                        "no one else (chown it, chmod go-w, or use another directory)",
                        dir));
    }
}

// A regular file of DIR with one link: a link, a FIFO or a second name
// planted in DIR is refused, never followed or waited on (lockwatch runs as
// root).
int FactStore::open_file(const char *name) const {
    int fd = ::openat(dir_fd_, name,
                      O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) {
        fail(fmt::format("--state: cannot open {}/{}: {}", dir_, name,
                         errno == ELOOP ? "it is a symbolic link" : std::strerror(errno)));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
        ::close(fd);
        fail(
            fmt::format("--state: refusing {}/{}: not a regular file with one link; move it "
                        "away or use another --state directory",
                        dir_, name));
    }
    return fd;
}

void FactStore::load(engine::Engine &engine, engine::TraceMerge &merge, std::size_t input) {
    engine_ = &engine;
    std::string text;
    std::size_t body = read_facts(&text);  // first, as it may set `reported` aside too
    load_reported(engine);
    if (body) {
        apply_records(text, body, engine, merge, input);
    }
}

// facts.trace read whole; the offset of its first record, or 0 when a new
// state was begun (none yet, or another kernel's set aside).
std::size_t FactStore::read_facts(std::string *text) {
    std::uint64_t size = file_size(facts_fd_);
    if (size > limits_.max_bytes + (1 << 20) || !read_all(facts_fd_, size, text)) {
        set_aside(size > limits_.max_bytes ? fmt::format("it is over the limit ({} bytes)", size)
                                           : "it cannot be read");
        return 0;
    }
    std::size_t header_end = text->find('\n');
    if (header_end == std::string::npos) {
        start_new(size ? "it has no complete first line" : "");
        return 0;
    }
    if (std::string why = other_kernel(text->substr(0, header_end), kernel_); !why.empty()) {
        set_aside(why);
        return 0;
    }
    return header_end + 1;
}

// Facts of another kernel (or a file that is not a state) renamed to
// facts.trace.old, the findings they made to reported.old (replacing older
// ones), and a new state begun.
// `reported` goes first: a crash between the two renames leaves old facts
// with no findings (reported again, at worst), never old findings that
// silence new facts.
void FactStore::set_aside(const std::string &why) {
    for (auto [name, fd] :
         {std::pair{kReportedFile, &reported_fd_}, std::pair{kFactsFile, &facts_fd_}}) {
        std::string old = std::string(name) + ".old";
        if (::renameat(dir_fd_, name, dir_fd_, old.c_str()) != 0) {
            fail(fmt::format("--state: cannot set {}/{} aside: {}", dir_, name,
                             std::strerror(errno)));
        }
        ::close(*fd);
        *fd = open_file(name);
    }
    sync_dir();
    load_.set_aside =
        fmt::format("{}/{} and {} set aside as *.old ({})", dir_, kFactsFile, kReportedFile, why);
    start_new("");
}

void FactStore::start_new(const std::string &why) {
    if (!why.empty()) {
        cut_at(0, file_size(facts_fd_), why);
    }
    load_.created = true;
    pending_ = state_header(kernel_);
    std::string error;
    if (!flush(&error)) {
        fail("--state: " + error);
    }
    load_.bytes = bytes_;
}

// Applies every record after the header. A last line without its newline
// is a torn write: cut off. O(records).
void FactStore::apply_records(const std::string &text, std::size_t pos, engine::Engine &engine,
                              engine::TraceMerge &merge, std::size_t input) {
    for (std::size_t number = 2; pos < text.size(); ++number) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string::npos) {
            cut_at(pos, text.size(), fmt::format("line {} is incomplete (a torn write)", number));
            break;
        }
        apply_record(std::string_view(text).substr(pos, end - pos), number, engine, merge, input);
        pos = end + 1;
    }
    bytes_ = file_size(facts_fd_);
    load_.bytes = bytes_;
}

// One complete line: a fact given to the engine, or a damaged line skipped
// and counted (the facts after it are independent of it).
void FactStore::apply_record(std::string_view line, std::size_t number, engine::Engine &engine,
                             engine::TraceMerge &merge, std::size_t input) {
    std::optional<engine::TraceError> error;
    std::optional<engine::Event> event = engine::parse_trace_record(line, number, &error);
    if (!event || !(std::holds_alternative<engine::ClassFact>(*event) ||
                    std::holds_alternative<engine::StackFact>(*event) ||
                    std::holds_alternative<engine::UsageFact>(*event) ||
                    std::holds_alternative<engine::EdgeFact>(*event))) {
        if (load_.damaged++ == 0) {
            load_.first_damage =
                error ? error->format(kFactsFile)
                      : fmt::format("line {} is not a class, stack, usage or dependency", number);
        }
        return;
    }
    const auto *stack = std::get_if<engine::StackFact>(&*event);
    engine::StackId file_id = stack ? stack->id : engine::kNoStack;
    last_file_stack_ = std::max(last_file_stack_, largest_stack_named(*event));
    merge.translate(input, *event);
    engine.process(*event);
    if (stack) {
        file_stacks_[stack->id] = file_id;
    }
    note_new(*event);
    ++load_.records;
}

// The largest stack id a record defines or names: new stacks are numbered
// past it, so that one a damaged line lost never gets another's frames.
engine::StackId FactStore::largest_stack_named(const engine::Event &event) {
    if (const auto *stack = std::get_if<engine::StackFact>(&event)) {
        return stack->id;
    }
    if (const auto *usage = std::get_if<engine::UsageFact>(&event)) {
        return usage->stack;
    }
    if (const auto *edge = std::get_if<engine::EdgeFact>(&event)) {
        return std::max(edge->next_stack, edge->prev_stack);
    }
    return engine::kNoStack;
}

void FactStore::cut_at(std::uint64_t offset, std::uint64_t size, std::string reason) {
    if (::ftruncate(facts_fd_, static_cast<off_t>(offset)) != 0) {
        fail(fmt::format("--state: cannot cut the torn end off {}/{}: {}", dir_, kFactsFile,
                         std::strerror(errno)));
    }
    load_.cut_bytes = size - offset;
    load_.cut_reason = std::move(reason);
}

void FactStore::load_reported(engine::Engine &engine) {
    std::uint64_t size = file_size(reported_fd_);
    std::string text;
    std::uint64_t most = engine::EngineOptions{}.max_findings * kMaxReportedLine;
    if (!read_all(reported_fd_, std::min(size, most), &text)) {
        fail(fmt::format("--state: cannot read {}/{}", dir_, kReportedFile));
    }
    std::size_t pos = 0;
    for (std::size_t end; (end = text.find('\n', pos)) != std::string::npos; pos = end + 1) {
        ++reported_lines_;
        std::string_view line = std::string_view(text).substr(pos, end - pos);
        if (is_signature(line.substr(0, 16)) &&
            engine.add_reported(std::string(line.substr(0, 16)))) {
            ++load_.reported;
        }
    }
    if (pos < text.size() && size <= most) {  // a torn last line
        if (::ftruncate(reported_fd_, static_cast<off_t>(pos)) != 0) {
            fail(fmt::format("--state: cannot cut the torn end off {}/{}: {}", dir_, kReportedFile,
                             std::strerror(errno)));
        }
    }
    if (size > most) {
        reported_lines_ = engine::EngineOptions{}.max_findings;  // full: append no more
    }
}

// A class whose name means the same lock in the next run. Not: a class
// with no name, one named by a placeholder ("static-lock", an offset in the
// module area, a function kallsyms could not name), or one TraceMerge kept apart because another
// lock of this run has its name (its id is then not its name's hash).
bool FactStore::keepable_class(const engine::ClassFact &fact) {
    const std::string &name = fact.name;
    // "static-lock+0x1c0 [module area]" moves with where a module loads.
    bool placeholder = name.starts_with("static-lock") || name.ends_with("@unknown") ||
                       name.ends_with("@locker:unknown");
    if (name.empty() || placeholder || fact.id != engine::TraceMerge::class_id_of_name(name)) {
        classes_.erase(fact.id);
        return false;
    }
    if (classes_.size() >= engine::EngineOptions{}.max_classes && !classes_.contains(fact.id)) {
        ++stats_.over_limit;
        return false;
    }
    return classes_.insert(fact.id).second;
}

bool FactStore::insert_bounded(std::unordered_set<std::string> &set, std::string key,
                               std::size_t most) {
    if (set.size() >= most && !set.contains(key)) {
        ++stats_.over_limit;
        return false;
    }
    return set.insert(std::move(key)).second;
}

bool FactStore::note_new(const engine::Event &event) {
    const engine::EngineOptions bounds;
    return std::visit(
        [&](const auto &e) {
            using T = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<T, engine::ClassFact>) {
                return keepable_class(e);
            } else if constexpr (std::is_same_v<T, engine::UsageFact>) {
                if (!classes_.contains(e.cls)) {
                    ++stats_.unnamed;
                    return false;
                }
                return insert_bounded(usages_, fmt::format("{}:{}", e.cls, static_cast<int>(e.bit)),
                                      bounds.max_classes * engine::kNumUsageBits);
            } else if constexpr (std::is_same_v<T, engine::EdgeFact>) {
                if (!classes_.contains(e.prev) || !classes_.contains(e.next)) {
                    ++stats_.unnamed;
                    return false;
                }
                return insert_bounded(
                    edges_,
                    fmt::format("{}:{}:{}:{}:{}", e.prev, e.next, static_cast<int>(e.context),
                                e.prev_read, e.next_read),
                    bounds.max_edges * 4);
            } else {
                return false;  // stacks go with the facts that name them
            }
        },
        event);
}

void FactStore::keep(const engine::Event &event) {
    if (!note_new(event)) {
        return;
    }
    if (bytes() >= limits_.max_bytes) {
        ++stats_.over_limit;
        return;
    }
    append(event);
}

// The fact as the file numbers its stacks.
void FactStore::append(const engine::Event &event) {
    engine::Event copy = event;
    if (auto *usage = std::get_if<engine::UsageFact>(&copy)) {
        keep_stack(&usage->stack);
    } else if (auto *edge = std::get_if<engine::EdgeFact>(&copy)) {
        keep_stack(&edge->next_stack);
        keep_stack(&edge->prev_stack);
    }
    pending_ += engine::trace_record_line(copy);
    pending_ += '\n';
    ++stats_.written;
}

// *id, a merged stack id, becomes the file's: a stack goes in once, under
// the next free file id, before the first fact that names it; one the
// engine did not keep (over its bounds) is left out of the fact too.
void FactStore::keep_stack(engine::StackId *id) {
    if (*id == engine::kNoStack) {
        return;
    }
    if (auto known = file_stacks_.find(*id); known != file_stacks_.end()) {
        *id = known->second;
        return;
    }
    engine::StackRef frames = engine_->stacks().get(*id);
    if (!frames) {
        *id = engine::kNoStack;
        return;
    }
    engine::StackId file_id = ++last_file_stack_;
    file_stacks_.emplace(*id, file_id);
    pending_ += engine::trace_record_line(engine::StackFact{file_id, *frames});
    pending_ += '\n';
    ++stats_.written;
    *id = file_id;
}

bool FactStore::flush(std::string *error) {
    if (pending_.empty()) {
        return true;
    }
    int err = 0;
    std::size_t done = write_some(facts_fd_, pending_, &err);
    bytes_ += done;
    pending_.erase(0, done);
    if (!err && ::fdatasync(facts_fd_) != 0) {
        err = errno;
    }
    if (err) {
        ++stats_.write_errors;
        *error = fmt::format("cannot write {}/{}: {}", dir_, kFactsFile, std::strerror(err));
        return false;
    }
    return true;
}

// The facts that made the finding are flushed first; its signature is
// written even when they could not be (the finding was reported: it is not
// to be again).
bool FactStore::keep_reported(const engine::Finding &finding, std::string *error) {
    std::string facts_error;
    bool facts_kept = flush(&facts_error);
    bool reported_kept = write_reported(finding, error);
    if (!facts_kept) {
        *error = reported_kept ? facts_error : facts_error + "; " + *error;
    }
    return facts_kept && reported_kept;
}

// One whole line, or none: a short write is cut back off.
bool FactStore::write_reported(const engine::Finding &finding, std::string *error) {
    if (reported_lines_ >= engine::EngineOptions{}.max_findings) {
        ++stats_.reported_over;
        return true;
    }
    std::string line = reported_line(finding);
    std::uint64_t before = file_size(reported_fd_);
    int err = 0;
    if (write_some(reported_fd_, line, &err) != line.size() || ::fdatasync(reported_fd_) != 0) {
        err = err ? err : errno;
        if (::ftruncate(reported_fd_, static_cast<off_t>(before)) != 0) {
            err = err ? err : errno;
        }
        *error = fmt::format("cannot write {}/{}: {}", dir_, kReportedFile, std::strerror(err));
        return false;
    }
    ++reported_lines_;
    return true;
}

void keep_then_process(FactStore &state, engine::TraceMerge &merge, std::size_t input,
                       engine::Engine &engine, engine::Event event) {
    merge.translate(input, event);
    state.keep(event);
    engine.process(event);
}

}  // namespace lockwatch::state
