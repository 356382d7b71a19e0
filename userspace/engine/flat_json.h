// One trace record as the trace reader's typed fields see it: a JSON
// object's members, read either by a small strict reader of the flat shape
// lockwatch writes (read_flat_object()) or from nlohmann::json's DOM
// (read_dom_object()), which reads everything else.
//
// Why two readers: through the DOM alone a 110-byte record cost about
// 2.4 us of CPU (bench/engine_bench BM_TraceReplay: 27.6 s for 10 M events,
// the engine's share under 4 s; perf: the DOM's parser, its std::map node
// and heap string per member and their frees were most of it); read flat,
// about 0.3 us. The flat reader makes no allocation and
// accepts only what it can read exactly like the DOM does; on anything
// else (an escape, a non-ASCII byte, a float, a negative number, a nested
// object, any syntax error) it refuses and the DOM decides, so values and
// error messages are the DOM's. fuzz/trace_fuzz.cpp checks that both agree.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace lockwatch::engine {

struct FlatValue {
    enum class Kind : std::uint8_t { Null, Bool, Unsigned, Integer, Float, String, Array, Object };
    Kind kind = Kind::Null;
    bool boolean = false;
    std::uint64_t number = 0;  // Unsigned; Integer: a negative value (or -0) as int64
    std::string_view text;     // String, without its quotes, unescaped
    std::uint32_t first = 0;   // Array: FlatObject::elements[first, first + count)
    std::uint32_t count = 0;
    const nlohmann::json *object = nullptr;  // Object (DOM only): read with read_dom_object()
};

// A JSON object's members, each with its value.
class FlatObject {
  public:
    std::vector<FlatValue> elements;  // the arrays' elements; an element's own array is empty

    // A new member, Null until its value is set.
    FlatValue &add(std::string_view key) {
        // Built in place: perf showed the copy of a FlatValue made aside
        // stalling on its byte-wide stores.
        Member &m = members_.emplace_back();
        m.key = key;
        return m.value;
    }
    void clear() {
        members_.clear();
        elements.clear();
    }
    // The member named key; the last one if the key repeats (the DOM keeps
    // the last too). nullptr if none. A scan: records have a dozen members,
    // and an index by key made reading a trace no cheaper (callgrind).
    const FlatValue *find(std::string_view key) const {
        for (auto it = members_.rbegin(); it != members_.rend(); ++it) {
            if (it->key == key) {
                return &it->value;
            }
        }
        return nullptr;
    }

  private:
    struct Member {
        std::string_view key;
        FlatValue value;
    };
    std::vector<Member> members_;  // in order
};

// One JSON object, nothing after it but whitespace, whose values are
// strings of printable ASCII without escapes, unsigned integers that fit in
// 64 bits, true, false, null or arrays of such strings. False for anything
// else; out then holds a part of the object. The strings point into text.
bool read_flat_object(std::string_view text, FlatObject *out);

// The members of a DOM object (j.is_object()); strings point into j.
void read_dom_object(const nlohmann::json &j, FlatObject *out);

}  // namespace lockwatch::engine
